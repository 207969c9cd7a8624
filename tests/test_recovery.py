"""Weights rebuilt from a dual solution (MATH.md section 7).

The recovered weights must have exactly the shapes ``(d_i, d_{i-1})``, be balanced (every
layer carries the H-th roots of the product's singular values) and be certified optimal:
``objective(weights) - D* <= 1e-8`` relative, where ``D*`` is a lower bound by weak duality.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import duallinear as dl
import duallinear.recovery as recovery_module
from cases import (
    GENERAL_CASES,
    IDENTITY_CASES,
    REPEATED_SV_CASES,
    Case,
    direct_objective,
    dual_of,
    expect_warning,
    primal_of,
    problem_of,
    product,
    reduced_rank_value,
    rel_diff,
    zero_threshold,
)
from duallinear._linalg import truncation_error

pytestmark = pytest.mark.usefixtures("single_thread_blas")

RTOL = 1e-8
ROUNDING = 1e-12
ALL_CASES = IDENTITY_CASES + GENERAL_CASES + REPEATED_SV_CASES


def _ids(cases: list[Case]) -> list[str]:
    return [c.id + (f"-{c.y_kind}Y-frac={c.frac:g}" if c.y_kind != "gaussian" else "")
            for c in cases]


def _assert_shapes(problem: dl.DeepLinearProblem, weights: list[np.ndarray]) -> None:
    assert isinstance(weights, list)
    assert len(weights) == problem.depth
    dims = problem.dims
    for i, W in enumerate(weights):
        assert W.shape == (dims[i + 1], dims[i]), (i, W.shape)
        assert W.dtype == np.float64


def _assert_balanced(weights: list[np.ndarray]) -> None:
    """All layers carry the same singular values, and their H-th powers are the singular
    values of the product W_H..W_1 (so each layer holds the H-th roots of the product's)."""
    H = len(weights)
    m = np.linalg.svd(product(weights), compute_uv=False)
    layers = [np.linalg.svd(W, compute_uv=False) for W in weights]
    p = min(sv.size for sv in layers)
    top = max(float(layers[0][0]) if layers[0].size else 0.0, 1e-300)
    for i, sv in enumerate(layers):
        np.testing.assert_allclose(sv[:p], layers[0][:p], rtol=0, atol=1e-12 * top,
                                   err_msg=f"layer {i + 1} differs from layer 1")
        assert np.all(sv[p:] <= 1e-12 * top), f"layer {i + 1} has extra singular values"
    q = min(p, m.size)
    np.testing.assert_allclose(layers[0][:q] ** H, m[:q], rtol=0,
                               atol=1e-12 * max(float(m[0]) if m.size else 0.0, 1e-300),
                               err_msg="layer singular values are not H-th roots of the product's")


def _assert_certified(problem: dl.DeepLinearProblem, weights: list[np.ndarray],
                      lower: float) -> float:
    value = dl.objective(problem, weights)
    assert value - lower <= RTOL * abs(lower), (value, lower)
    assert value >= lower - ROUNDING * max(1.0, abs(lower))  # weak duality
    return value


# ------------------------------------------------------------ certified on every case
@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_recovered_weights_are_certified_optimal(case: Case) -> None:
    problem = problem_of(case)
    dual = dual_of(case, "dr")
    weights = dl.recover_weights(problem, dual)
    _assert_shapes(problem, weights)
    lower = dl.closed_form(problem).value if problem.is_whitened else dual.value
    value = _assert_certified(problem, weights, lower)
    # The objective agrees with the formula evaluated straight from X and Y.
    X, Y, gamma = case.data()
    assert rel_diff(value, direct_objective(X, Y, weights, gamma)) <= 1e-12
    # And the best primal restart cannot beat it by more than the certified tolerance.
    if case in IDENTITY_CASES or case in GENERAL_CASES:
        assert value <= primal_of(case).value * (1 + RTOL)


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_recovery_is_balanced_and_reports_itself(case: Case) -> None:
    problem = problem_of(case)
    dual = dual_of(case, "dr")
    rec = dl.recover(problem, dual)
    assert rec.certified and rec.relative_gap <= 1e-9, rec.message
    assert rec.value == pytest.approx(dl.objective(problem, rec.weights), rel=1e-14)
    # The gap: objective minus the float64 dual value, plus the rounding allowance for the data
    # as given (second order for weights recovered from the dual point: tiny here).
    plain = rec.value - dual.float_value
    assert plain - 1e-14 <= rec.gap <= plain + 1e-10 * abs(rec.value) + 1e-14
    assert rec.gap == pytest.approx(dl.duality_gap(problem, rec.weights, dual),
                                    rel=1e-12, abs=1e-14)
    if not rec.repaired:
        _assert_balanced(rec.weights)
        # Balanced factors attain the variational bound sum_i ||W_i||_{S_H}^H = H ||M||_*.
        H = problem.depth
        reg = sum(float(np.sum(np.linalg.svd(W, compute_uv=False) ** H)) for W in rec.weights)
        nuc = float(np.sum(np.linalg.svd(product(rec.weights), compute_uv=False)))
        assert reg == pytest.approx(H * nuc, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("case", GENERAL_CASES[::3] + IDENTITY_CASES[::4],
                         ids=_ids(GENERAL_CASES[::3] + IDENTITY_CASES[::4]))
def test_recovery_from_the_cvxpy_dual(case: Case) -> None:
    problem = problem_of(case)
    dual = dual_of(case, "cvxpy")
    weights = dl.recover_weights(problem, dual)
    _assert_shapes(problem, weights)
    _assert_certified(problem, weights, dual.value)


@pytest.mark.parametrize("case", [c for c in IDENTITY_CASES if c.d0 <= 10],
                         ids=_ids([c for c in IDENTITY_CASES if c.d0 <= 10]))
def test_identity_x_product_is_the_closed_form_product(case: Case) -> None:
    """With distinct singular values the optimal product is unique: M* = soft-thresholded
    top-k part of Y (MATH.md section 6); the recovered product must be that matrix."""
    problem = problem_of(case)
    _, _, gamma = case.data()
    X, Y, _ = case.data()
    P, sig, Qt = np.linalg.svd(Y)
    k, t = problem.k, problem.rho
    assert sig[k - 1] > sig[k] + 1e-6  # unique truncation (checked, not assumed)
    expected = (P[:, :k] * np.maximum(sig[:k] - t, 0.0)) @ Qt[:k]
    got = product(dl.recover_weights(problem, dual_of(case, "dr")))
    np.testing.assert_allclose(got, expected, atol=1e-6 * np.abs(expected).max())
    _, N = dl.closed_form(problem)
    np.testing.assert_allclose((N / problem.s) @ problem.U.T, expected,
                               atol=1e-10 * np.abs(expected).max())


# ----------------------------------------------------------------------------- edges
@pytest.mark.parametrize("factor", [1.0, 1.5, 50.0])
@pytest.mark.parametrize("x_kind,d0,dH,n,hidden", [
    ("identity", 6, 6, 6, (3,)),
    ("gaussian", 6, 4, 15, (2, 2)),
    ("rank_deficient", 8, 5, 12, (3, 3, 3)),
])
def test_zero_network_is_recovered_exactly(x_kind, d0, dH, n, hidden, factor) -> None:
    """rho >= ||Y X^T||_op: the optimum is the zero network, and the recovered weights must
    be zero (not a tiny product whose H-th roots are visible), with no division by zero."""
    X, Y, _ = Case(x_kind, d0, dH, n, hidden, seed=d0 + n).data()
    H = len(hidden) + 1
    problem = dl.DeepLinearProblem(X, Y, hidden, factor * zero_threshold(X, Y) / H)
    dual = dl.solve_dual(problem)
    rec = dl.recover(problem, dual)
    _assert_shapes(problem, rec.weights)
    assert rel_diff(rec.value, problem.zero_value) <= RTOL
    for i, W in enumerate(rec.weights):
        assert np.abs(W).max() <= 1e-10, f"W_{i + 1} has entries up to {np.abs(W).max():.2e}"


@pytest.mark.parametrize("case", [
    Case("identity", 6, 6, 6, (2,), seed=1),
    Case("gaussian", 7, 5, 15, (2, 3), seed=2),
    Case("rank_deficient", 8, 6, 20, (2, 8, 8), seed=3),
    Case("ill_conditioned", 7, 5, 15, (2, 2), seed=5),
], ids=lambda c: c.id)
def test_gamma_zero_recovery(case: Case) -> None:
    X, Y, _ = case.data()
    problem = dl.DeepLinearProblem(X, Y, case.hidden, 0.0)
    weights = dl.recover_weights(problem, dl.solve_dual(problem))
    _assert_shapes(problem, weights)
    expected = reduced_rank_value(X, Y, problem.k)
    assert rel_diff(dl.objective(problem, weights), expected) <= RTOL
    assert np.linalg.matrix_rank(product(weights), tol=1e-8) <= problem.k


@pytest.mark.parametrize("case", [
    Case("gaussian", 7, 5, 15, (9, 6), seed=12),     # hidden wider than min(d0, dH)
    Case("gaussian", 6, 1, 12, (3, 2), seed=22),     # dH = 1
    Case("gaussian", 1, 5, 12, (4, 1), seed=25),     # d0 = 1
    Case("identity", 1, 1, 1, (1, 1), frac=0.3, seed=26),
    Case("wide", 8, 1, 5, (2, 2, 2), seed=23),
], ids=lambda c: c.id)
def test_degenerate_shapes_recovery(case: Case) -> None:
    problem = problem_of(case)
    dual = dl.solve_dual(problem)
    weights = dl.recover_weights(problem, dual)
    _assert_shapes(problem, weights)
    _assert_certified(problem, weights, dual.value)
    _assert_balanced(weights)


def test_inexact_dual_is_repaired_and_reported() -> None:
    """From a dual stopped after one iteration the truncation is poor; recover polishes it
    (never making it worse), says so, and warns because the certificate stays loose."""
    case = GENERAL_CASES[4]
    problem = problem_of(case)
    with expect_warning(dl.ConvergenceWarning):
        rough = dl.solve_dual(problem, max_iter=1)
    with expect_warning(dl.RecoveryWarning, match="certified only"):
        plain = dl.recover(problem, rough, polish=False)
    with expect_warning(dl.RecoveryWarning):
        rec = dl.recover(problem, rough)
    assert not plain.repaired and not plain.certified
    assert rec.repaired and not rec.certified
    assert rec.value <= plain.value
    # The polished weights reach the optimum; the loose certificate comes from the dual side.
    assert rel_diff(rec.value, dual_of(case, "dr").value) <= 1e-7
    assert rec.gap == pytest.approx(rec.value - rough.value, rel=1e-12)
    _assert_shapes(problem, rec.weights)


def test_recover_rejects_foreign_duals() -> None:
    a, b = problem_of(GENERAL_CASES[0]), problem_of(GENERAL_CASES[6])
    dual_b = dual_of(GENERAL_CASES[6], "dr")
    with pytest.raises(ValueError, match="dual"):
        dl.recover(a, dual_b)
    with pytest.raises(TypeError, match="dual"):
        dl.recover(a, {"Lambda": dual_b.Lambda})
    with pytest.raises(TypeError, match="problem"):
        dl.recover_weights(b.A, dual_b)
    with pytest.raises(ValueError, match="tol"):
        dl.recover(b, dual_b, tol=-1.0)


# ----------------------------------------------------------------- balanced_factors
@pytest.mark.parametrize("dims,rank", [
    ((5, 3, 4), 3), ((5, 3, 4), 1), ((6, 4, 2, 7), 2), ((3, 8, 8, 8, 2), 2), ((1, 1, 1), 1),
    ((4, 6, 5), 4),
])
def test_balanced_factors_reconstruct_and_balance(dims, rank) -> None:
    rng = np.random.default_rng(sum(dims) + rank)
    M = rng.standard_normal((dims[-1], rank)) @ rng.standard_normal((rank, dims[0]))
    weights = dl.balanced_factors(M, dims)
    assert [W.shape for W in weights] == [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]
    np.testing.assert_allclose(product(weights), M, atol=1e-12 * np.abs(M).max())
    _assert_balanced(weights)


def test_balanced_factors_of_zero_are_zero() -> None:
    weights = dl.balanced_factors(np.zeros((3, 4)), (4, 2, 5, 3))
    assert [W.shape for W in weights] == [(2, 4), (5, 2), (3, 5)]
    for W in weights:
        np.testing.assert_array_equal(W, 0.0)


def test_balanced_factors_with_repeated_singular_values() -> None:
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    M = 2.0 * Q[:, :3] @ Q[:, :3].T  # three singular values equal to 2, rank 3
    weights = dl.balanced_factors(M, (5, 3, 3, 5))
    np.testing.assert_allclose(product(weights), M, atol=1e-13)
    for W in weights:
        sv = np.linalg.svd(W, compute_uv=False)
        np.testing.assert_allclose(sv[:3], 2.0 ** (1 / 3), rtol=1e-13)


def test_factors_of_M_are_a_thin_svd_of_M() -> None:
    # M = N diag(s)^-1 U^T through a k x k core must equal the SVD of M formed explicitly.
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((9, 14)), rng.standard_normal((7, 14))
    problem = dl.DeepLinearProblem(X, Y, (3, 4), 0.3)
    Gamma = 0.1 * rng.standard_normal(problem.A.shape)
    Uk, sk, Vtk = recovery_module.truncation(problem, Gamma, partial=False)
    P, m, Qt = recovery_module.factors_of_M(problem, Uk, sk, Vtk)
    M = ((Uk * sk) @ (Vtk / problem.s)) @ problem.U.T
    np.testing.assert_allclose((P * m) @ Qt, M, atol=1e-13 * np.linalg.norm(M))
    np.testing.assert_allclose(m, np.linalg.svd(M, compute_uv=False)[:3], rtol=1e-12)
    np.testing.assert_allclose(P.T @ P, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(Qt @ Qt.T, np.eye(3), atol=1e-13)


def test_recovery_from_leading_triplets_on_a_large_problem(monkeypatch) -> None:
    # Leading triplets (by default from min(dH, r) = 1500): the truncation comes from them, not
    # a full SVD (made to fail here to prove it). Asked for explicitly to keep the test quick.
    d = 500
    rng = np.random.default_rng(4)
    X = rng.standard_normal((d, d + 20))
    W = rng.standard_normal((d, 3)) @ rng.standard_normal((3, d)) / d
    Y = W @ X + 0.1 * rng.standard_normal((d, d + 20))
    problem = dl.DeepLinearProblem(X, Y, (3, 3), 0.3 * np.sqrt(d) / 3)
    dual = dl.solve_dual(problem, tol=1e-9, partial_svd=True)
    assert dual.converged and dual.diagnostics.partial_svd, dual.message
    small_svd = recovery_module.svd

    def no_large_svd(Z):
        assert min(Z.shape) < d, f"full SVD of a {Z.shape} matrix in recover()"
        return small_svd(Z)

    monkeypatch.setattr(recovery_module, "svd", no_large_svd)
    # (A copy drops the truncation the certificate kept, so that recover computes it.)
    rec = dl.recover(problem, dataclasses.replace(dual), partial_svd=True)
    assert rec.certified and rec.relative_gap <= 1e-9, rec.message
    assert rec.value == pytest.approx(dl.objective(problem, rec.weights), rel=1e-13)


@pytest.mark.parametrize("partial", [False, True])
def test_recover_reuses_the_truncation_the_certificate_kept(partial, monkeypatch) -> None:
    # The certificate's k triplets of A - Gamma travel with the result: recover needs no
    # decomposition of A - Gamma (made to fail here) and builds its weights from them. They
    # need not be LAPACK's (leading triplets; a refined point's subspaces, whose residuals
    # are the refinement's stationarity, 8e-8 relative here): the truncation recover computes
    # afresh lies within their Wedin distance, and both are certified to the same value.
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 80))
    W = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 60)) / 60
    problem = dl.DeepLinearProblem(X, W @ X + 0.1 * rng.standard_normal((60, 80)), (3, 3),
                                   0.3 * np.sqrt(60) / 3)
    dual = dl.solve_dual(problem, partial_svd=partial)
    assert dual.converged and dual._truncation is not None, dual.message
    fresh = dl.recover(problem, dataclasses.replace(dual), partial_svd=partial)

    def no_truncation(*args, **kwargs):
        raise AssertionError("recover() decomposed A - Gamma again")

    monkeypatch.setattr(recovery_module, "truncation", no_truncation)
    kept = dl.recover(problem, dual, partial_svd=partial)
    assert kept.certified and fresh.certified, (kept.message, fresh.message)
    assert kept.value == pytest.approx(fresh.value, rel=1e-12)
    Uk, sk, Vtk = dual._truncation
    N = (Uk * sk) @ Vtk
    E_kept, E_fresh = dl.end_to_end(kept.weights), dl.end_to_end(fresh.weights)
    np.testing.assert_allclose(E_kept, (N / problem.s) @ problem.U.T,
                               atol=1e-12 * np.abs(E_kept).max())
    B = problem.A - dual.Gamma
    distance = truncation_error(Uk, np.linalg.svd(B, compute_uv=False), Vtk, B)
    assert distance < 1e-4 * np.linalg.norm(N)
    lapack = 1e-13 * np.linalg.norm(B)  # (the fresh truncation's own distance, generously)
    assert np.linalg.norm(E_kept - E_fresh) <= (distance + lapack) / problem.s[-1]


def test_whitened_tie_at_k_takes_the_closed_form() -> None:
    # X = I, A = P diag(2, 1, 1) Q^T, k = 1, t = rho = 1. The dual optimum Gamma = P diag(1, 0, 0)
    # Q^T leaves A - Gamma with three equal singular values, so its rank-1 truncation may point
    # anywhere in that block (found by the fuzzer: the truncation's gap was 0.17).
    rng = np.random.default_rng(5)
    P = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    Q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    problem = dl.DeepLinearProblem(np.eye(3), (P * [2.0, 1.0, 1.0]) @ Q.T, (1,), 0.5)
    value, _ = dl.closed_form(problem)
    dual = dl.solve_dual(problem)  # (DR lands on another dual optimum; used as a template)
    U_A, sv_A, Vt_A = np.linalg.svd(problem.A)
    assert np.allclose(sv_A, [2.0, 1.0, 1.0])
    Gamma = U_A[:, :1] @ Vt_A[:1]
    Lambda = (Gamma * problem.s) @ problem.U.T
    tied = dataclasses.replace(dual, Gamma=Gamma, Lambda=Lambda,
                               value=dl.dual_value(problem, Lambda))
    assert tied.value == pytest.approx(value, rel=1e-12)  # a dual optimum
    assert np.allclose(np.linalg.svd(problem.A - Gamma, compute_uv=False), 1.0)
    rec = dl.recover(problem, tied)
    assert rec.certified and rec.repaired, rec.message
    assert "closed form" in rec.message
    assert rec.value == pytest.approx(value, rel=1e-12)
    assert rec.value == pytest.approx(dl.objective(problem, rec.weights), rel=1e-13)
