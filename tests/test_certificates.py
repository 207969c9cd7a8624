"""Dual values, duality gaps and the whitened closed form (MATH.md sections 5 and 6).

Oracles: weak duality on random pairs (hypothesis), an independent formula for the dual
function when X has full row rank, the closed form evaluated from the singular values of Y,
and CVXPY for whitened X other than the identity.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import (
    GENERAL_CASES,
    IDENTITY_CASES,
    dual_of,
    make_X,
    make_Y,
    problem_of,
    problems,
    random_weights,
    rel_diff,
)
from duallinear.certificates import GAP_FLOOR

pytestmark = pytest.mark.usefixtures("single_thread_blas")

ROUNDING = 1e-12


# ----------------------------------------------------------------------- weak duality
@settings(max_examples=60, deadline=None)
@given(data=problems(), lam_scale=st.sampled_from([0.0, 0.01, 0.3, 1.0, 10.0, 1e3]),
       w_scale=st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]))
def test_weak_duality_on_random_pairs(data, lam_scale, w_scale) -> None:
    """D(Lambda) <= P(W) for every Lambda (made feasible) and every W."""
    problem, X, Y, rng = data
    for _ in range(3):
        Lam = lam_scale * rng.standard_normal((problem.dH, problem.d0))
        weights = random_weights(problem, rng, w_scale)
        lower = dl.dual_value(problem, Lam)
        upper = dl.objective(problem, weights)
        assert np.isfinite(lower)
        assert lower <= upper + ROUNDING * max(1.0, abs(upper)), (lower, upper)
        # The dual function is bounded by the zero network too, and is never below the
        # value at Lambda = 0 by more than... nothing: it is a valid bound, not an optimum.
        assert lower <= problem.zero_value * (1 + ROUNDING) + ROUNDING


@settings(max_examples=30, deadline=None)
@given(data=problems(max_dim=4), lam_scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_dual_values_never_exceed_the_certified_optimum(data, lam_scale) -> None:
    problem, X, Y, rng = data
    res = dl.solve_dual(problem, max_iter=20000)
    upper = res.upper_bound  # objective of weights recovered from the dual solution
    for _ in range(3):
        Lam = lam_scale * rng.standard_normal((problem.dH, problem.d0))
        assert dl.dual_value(problem, Lam) <= upper + ROUNDING * max(1.0, abs(upper))
    assert res.value <= upper + ROUNDING * max(1.0, abs(upper))


# ------------------------------------------------------------ the dual function itself
def _dual_full_row_rank(X: np.ndarray, Y: np.ndarray, Lam: np.ndarray, k: int) -> float:
    """min_{rank M <= k} 1/2||M X - Y||^2 + <Lambda, M> for X of full row rank:
    1/2||Y||^2 - 1/2 ||(Y X^T - Lambda)(X X^T)^(-1/2)||_(k)^2 (complete the square)."""
    w, V = np.linalg.eigh(X @ X.T)
    inv_sqrt = (V / np.sqrt(w)) @ V.T
    sv = np.linalg.svd((Y @ X.T - Lam) @ inv_sqrt, compute_uv=False)
    return 0.5 * float(np.sum(Y * Y)) - 0.5 * float(np.sum(sv[:k] ** 2))


@pytest.mark.parametrize("seed", range(4))
def test_dual_value_matches_an_independent_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = make_X("gaussian", 4, 9, rng)
    Y = make_Y("gaussian", 3, 9, rng)
    problem = dl.DeepLinearProblem(X, Y, [2, 5], 0.4)
    for scale in (0.0, 0.1, 1.0, 50.0):
        Lam = scale * rng.standard_normal((3, 4))
        # The library scales an infeasible Lambda into the ball ||Lambda||_op <= rho.
        norm = np.linalg.norm(Lam, 2)
        feasible = Lam * min(1.0, problem.rho / norm) if norm > 0 else Lam
        expected = _dual_full_row_rank(X, Y, feasible, problem.k)
        assert rel_diff(dl.dual_value(problem, Lam), expected) <= 1e-10


def test_dual_value_ignores_directions_outside_the_data() -> None:
    """Only Lambda U U^T matters when X is rank-deficient (MATH.md section 5)."""
    case = next(c for c in GENERAL_CASES if c.x_kind == "rank_deficient")
    problem = problem_of(case)
    rng = np.random.default_rng(0)
    Lam = 0.1 * rng.standard_normal((problem.dH, problem.d0))
    inside = Lam @ problem.U @ problem.U.T
    outside = 0.1 * rng.standard_normal((problem.dH, problem.d0))
    outside -= outside @ problem.U @ problem.U.T
    assert np.linalg.norm(outside) > 0.1
    assert dl.dual_value(problem, inside + outside) == pytest.approx(
        dl.dual_value(problem, inside), rel=1e-12)


def test_dual_value_at_the_dual_solution_is_its_value() -> None:
    case = IDENTITY_CASES[5]
    problem = problem_of(case)
    res = dual_of(case, "dr")
    assert dl.dual_value(problem, res.Lambda) == pytest.approx(res.value, rel=1e-10)
    assert rel_diff(dl.dual_value(problem, res.Lambda), dl.closed_form(problem).value) <= 1e-8


def test_dual_value_rejects_bad_lambda() -> None:
    problem = problem_of(GENERAL_CASES[0])
    with pytest.raises(ValueError, match=r"Lambda must have shape \(dH, d0\)"):
        dl.dual_value(problem, np.zeros((problem.d0, problem.dH)))
    with pytest.raises(ValueError, match="Lambda must contain only finite"):
        dl.dual_value(problem, np.full((problem.dH, problem.d0), np.nan))
    with pytest.raises(TypeError, match="Lambda must be real"):
        dl.dual_value(problem, np.zeros((problem.dH, problem.d0), dtype=complex))
    with pytest.raises(ValueError, match="Lambda must be 2-D"):
        dl.dual_value(problem, np.zeros(problem.d0))


# ------------------------------------------------------------------------- duality gap
@pytest.mark.parametrize("case", [GENERAL_CASES[2], GENERAL_CASES[10], IDENTITY_CASES[3]],
                         ids=lambda c: c.id)
def test_duality_gap_is_a_certificate(case) -> None:
    problem = problem_of(case)
    res = dual_of(case, "dr")
    rng = np.random.default_rng(1)
    for scale in (0.0, 0.3, 1.0):
        weights = random_weights(problem, rng, scale)
        gap = dl.duality_gap(problem, weights, res)
        # objective - dual value of the float64 reduction, plus the rounding allowance for
        # the data as given: never less, and tiny here (a well-conditioned X).
        plain = dl.objective(problem, weights) - res.float_value
        # (First order for weights far from the dual point's map, still tiny here.)
        assert plain <= gap <= plain + 1e-9 * abs(dl.objective(problem, weights))
        assert res.float_value - res.value == pytest.approx(sum(res.rounding), rel=1e-12)
        assert gap >= -ROUNDING * abs(res.value)
    optimal = dl.recover_weights(problem, res)
    gap = dl.duality_gap(problem, optimal, res)
    assert -ROUNDING * abs(res.value) <= gap <= 1e-8 * abs(res.value)


def test_duality_gap_rejects_foreign_or_fake_duals() -> None:
    a, b = GENERAL_CASES[0], GENERAL_CASES[6]
    pa = problem_of(a)
    weights = random_weights(pa, np.random.default_rng(0))
    with pytest.raises(ValueError, match="dual"):
        dl.duality_gap(pa, weights, dual_of(b, "dr"))
    with pytest.raises(TypeError, match="dual"):
        dl.duality_gap(pa, weights, 3.0)
    with pytest.raises(ValueError, match="weights"):
        dl.duality_gap(pa, weights[:-1], dual_of(a, "dr"))


@pytest.mark.parametrize("upper,lower,zero,expected", [
    (2.0, 1.0, 10.0, 0.5),
    (-2.0, -3.0, 10.0, 0.5),
    (1.0, 1.0, 10.0, 0.0),
    (0.0, 0.0, 0.0, 0.0),
    (0.0, -1e-3, 1.0, 1e-3 / GAP_FLOOR),    # denominator floored at GAP_FLOOR * zero_value
    (1e-15, 0.0, 1.0, 1e-15 / GAP_FLOOR),
    (0.0, -1.0, 0.0, float("inf")),
])
def test_relative_gap_formula(upper, lower, zero, expected) -> None:
    assert dl.relative_gap(upper, lower, zero) == pytest.approx(expected, rel=1e-14)


# ------------------------------------------------------------------------ closed form
def _closed_form_from_y(Y: np.ndarray, k: int, t: float) -> float:
    """MATH.md section 6 for X = I, computed from the singular values of Y alone."""
    sv = np.linalg.svd(Y, compute_uv=False)
    top, tail = sv[:k], sv[k:]
    h = np.where(top > t, t * top - t * t / 2, top * top / 2)
    return float(np.sum(h)) + 0.5 * float(np.sum(tail**2))


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.id)
def test_closed_form_value_and_product(case) -> None:
    problem = problem_of(case)
    _, Y, _ = case.data()
    value, N = dl.closed_form(problem)
    assert rel_diff(value, _closed_form_from_y(Y, problem.k, problem.rho)) <= 1e-12
    cf = dl.closed_form(problem)
    assert cf.value == value and cf.N is not None and N.shape == (problem.dH, problem.rank)
    # N is the optimal reduced product: its objective (6) equals the closed-form value.
    M = (N / problem.s) @ problem.U.T
    assert np.linalg.matrix_rank(M, tol=1e-9) <= problem.k
    fit = 0.5 * float(np.sum((M - Y) ** 2))
    assert rel_diff(fit + problem.rho * float(np.sum(np.linalg.svd(M, compute_uv=False))),
                    value) <= 1e-12


@pytest.mark.parametrize("c,n,rank", [(3.0, 10, 4), (0.2, 7, 4), (5.0, 6, 2)])
def test_closed_form_for_scaled_orthogonal_x(c, n, rank) -> None:
    """X X^T = c^2 I on its range (including rank-deficient X): closed form with t = rho / c,
    checked against the CVXPY reference and Douglas-Rachford."""
    rng = np.random.default_rng(int(10 * c) + n)
    Q, _ = np.linalg.qr(rng.standard_normal((n, rank)))
    X = c * Q.T
    if rank < 4:
        X = np.vstack([X, np.zeros((4 - rank, n))])  # zero rows: rank-deficient, d0 = 4
    Y = make_Y("gaussian", 3, n, rng)
    problem = dl.DeepLinearProblem(X, Y, [2], 0.15 * np.linalg.norm(Y @ X.T, 2) / 2)
    assert problem.is_whitened
    value = dl.closed_form(problem).value
    cvx = dl.solve_dual(problem, method="cvxpy")
    dr = dl.solve_dual(problem)
    assert rel_diff(cvx.value, value) <= 1e-8
    assert rel_diff(dr.value, value) <= 1e-8


def test_closed_form_requires_whitened_x() -> None:
    problem = problem_of(GENERAL_CASES[0])
    with pytest.raises(ValueError, match="whitened"):
        dl.closed_form(problem)
    with pytest.raises(TypeError, match="problem"):
        dl.closed_form(np.eye(3))


def test_closed_form_scaling() -> None:
    """(c Y, c gamma) has optimum c^2 P* (MATH.md section 6)."""
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((5, 5))
    base = dl.closed_form(dl.DeepLinearProblem(np.eye(5), Y, [2, 3], 0.4)).value
    for c in (1e-4, 7.0, 1e5):
        scaled = dl.closed_form(dl.DeepLinearProblem(np.eye(5), c * Y, [2, 3], c * 0.4)).value
        assert rel_diff(scaled, c**2 * base) <= 1e-12


# ------------------------------------------------------------- pruned upper bounds
def _objective_of_N(A, N, s, rho, residual_sq) -> float:
    return (0.5 * float(np.sum((N - A) ** 2)) + 0.5 * residual_sq
            + rho * float(np.sum(np.linalg.svd(N / s, compute_uv=False))))


@pytest.mark.parametrize("seed", range(4))
def test_truncation_value_is_the_best_of_the_pruned_candidates(seed: int) -> None:
    # N = U diag(sk) Vt of rank 4 whose M = N diag(s)^-1 carries two values below 1e-6 of the
    # largest (what rounding leaves, amplified by an ill-conditioned X): the bound is the
    # objective of N with those dropped when that is lower.
    from duallinear._reduced import truncation_value

    rng = np.random.default_rng(seed)
    dH, r = 7, 9
    A = rng.standard_normal((dH, r))
    s = np.logspace(0, -6, r)
    P = np.linalg.qr(rng.standard_normal((dH, 4)))[0]
    Q = np.linalg.qr(rng.standard_normal((r, 4)))[0]
    M = (P * [2.0, 1.0, 1e-7, 3e-8]) @ Q.T
    U, sv, Vt = np.linalg.svd(M * s, full_matrices=False)  # N = M diag(s)
    rho, residual_sq = 0.7, 1.3
    bound = truncation_value(A, U[:, :4], sv[:4], Vt[:4], s, rho, residual_sq)
    full = _objective_of_N(A, M * s, s, rho, residual_sq)
    pruned = _objective_of_N(A, ((P[:, :2] * [2.0, 1.0]) @ Q[:, :2].T) * s, s, rho, residual_sq)
    assert full - pruned > 1e-9 * full  # dropping them helps here...
    assert bound == pytest.approx(pruned, rel=1e-13)  # ...and the bound finds it
