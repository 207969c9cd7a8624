"""Upper bounds on the dual optimum: the k-support norm, the relaxed primal U(N), the tie
family, and ``DualResult.dual_upper`` against independent paths (closed form, SCS, Clarabel).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import GENERAL_CASES, IDENTITY_CASES, dual_of, problem_of, problems
from duallinear import survey
from duallinear._reduced import Reduced
from duallinear._upper import (
    capped_simplex,
    ksupport_sq,
    relaxed_value,
    relaxed_value_low_rank,
    tie_family,
)

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _variational(w: np.ndarray, k: int) -> float:
    """``min {sum w_i^2 / theta_i : 0 < theta_i <= 1, sum theta = k}`` by bisection on the
    level ``lam`` of ``theta_i = min(1, w_i / lam)`` (an independent formula)."""
    w = np.abs(w)
    if np.count_nonzero(w) <= k:
        return float(w @ w)
    lo, hi = 0.0, float(w.max()) * w.size
    for _ in range(300):
        lam = 0.5 * (lo + hi)
        if np.minimum(1.0, w / lam).sum() > k:
            lo = lam
        else:
            hi = lam
    theta = np.minimum(1.0, w / hi)
    nz = w > 0
    return float(np.sum(w[nz] ** 2 / theta[nz]))


# (Subnormal entries excluded: the bisection oracle divides them by each other, 0/0.)
@given(st.lists(st.floats(0.0, 10.0, allow_subnormal=False), min_size=1, max_size=9),
       st.integers(1, 6))
def test_ksupport_matches_its_variational_form(values, k) -> None:
    w = np.sort(np.array(values))[::-1]
    ks = ksupport_sq(w, k)
    assert ks.value == pytest.approx(_variational(w, k), rel=1e-9, abs=1e-12)
    assert ks.value >= float(w @ w) * (1 - 1e-12)
    assert ks.excess == pytest.approx(ks.value - float(w @ w), rel=1e-8, abs=1e-9)


@given(st.lists(st.floats(0.01, 5.0), min_size=2, max_size=7), st.integers(1, 5),
       st.integers(0, 2**31))
def test_ksupport_is_the_dual_norm_of_the_top_k_norm(values, k, seed) -> None:
    # <w, u> <= ||w||_(k)* whenever sum of the k largest u_i^2 is at most 1, with equality
    # at the maximiser built from the structure (w_i for the top, the level for the rest).
    w = np.sort(np.array(values))[::-1]
    ks = ksupport_sq(w, k)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        u = rng.standard_normal(w.size)
        u /= np.sqrt(np.sum(np.sort(u**2)[::-1][:k]))
        assert float(w @ u) <= np.sqrt(ks.value) * (1 + 1e-12)
    mu = w.copy()
    mu[ks.top:] = np.where(w[ks.top:] > 0, ks.level, 0.0)
    top_k = np.sqrt(np.sum(np.sort(mu**2)[::-1][:k]))
    assert float(w @ mu) / top_k == pytest.approx(np.sqrt(ks.value), rel=1e-10)


def test_capped_simplex_projection() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        lam = rng.standard_normal(6) * 2
        total = float(rng.uniform(0, 6))
        x = capped_simplex(lam, total)
        assert np.all(x >= 0) and np.all(x <= 1)
        assert x.sum() == pytest.approx(total, abs=1e-12)
        # optimality: x = clip(lam - tau) for one shift tau
        inside = (x > 1e-12) & (x < 1 - 1e-12)
        if inside.sum() >= 2:
            assert np.ptp(lam[inside] - x[inside]) <= 1e-10


def _reduced_optimum(case) -> tuple[Reduced, float]:
    problem = problem_of(case)
    return Reduced.of(problem), dual_of(case, "cvxpy").value / Reduced.of(problem).a ** 2


@pytest.mark.parametrize("case", GENERAL_CASES[:4], ids=lambda c: c.id)
def test_relaxed_value_bounds_the_dual_optimum_from_above(case) -> None:
    # Any N: random, truncations of random dual points, the tie family; D* from SCS.
    red, d_star = _reduced_optimum(case)
    rng = np.random.default_rng(1)
    scale = red.zero_value
    for _ in range(30):
        N = rng.standard_normal(red.A.shape) * rng.uniform(0.0, 1.0)
        assert relaxed_value(red.A, N, red.s, red.rho, red.k, red.residual_sq) >= (
            d_star - 1e-8 * scale)
        Gamma = rng.standard_normal(red.A.shape) * 0.1
        family = tie_family(red.A, Gamma, red.s, red.rho, red.k, red.residual_sq, steps=30)
        assert family.value >= d_star - 1e-8 * scale


def test_relaxed_value_of_a_rank_k_matrix_is_the_primal_objective() -> None:
    problem = problem_of(GENERAL_CASES[0])
    red = Reduced.of(problem)
    rng = np.random.default_rng(2)
    N = rng.standard_normal((red.A.shape[0], red.k)) @ rng.standard_normal((red.k,
                                                                            red.A.shape[1]))
    M = (N * red.a / problem.s) @ problem.U.T
    weights = dl.balanced_factors(M, problem.dims)
    value = relaxed_value(red.A, N, red.s, red.rho, red.k, red.residual_sq) * red.a**2
    assert value == pytest.approx(dl.objective(problem, weights), rel=1e-10)
    low, _ = relaxed_value_low_rank(red.A, N, red.k, red.s, red.rho, red.k, red.residual_sq)
    assert low * red.a**2 == pytest.approx(value, rel=1e-10)


@pytest.mark.parametrize("case", IDENTITY_CASES[:6], ids=lambda c: c.id)
def test_dual_upper_brackets_the_closed_form(case) -> None:
    problem = problem_of(case)
    exact = dl.closed_form(problem).value
    for method in ("dr", "cvxpy"):
        dual = dual_of(case, method)
        assert dual.value <= exact * (1 + 1e-12)
        assert dual.dual_upper >= exact * (1 - 1e-12)


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: c.id)
def test_dual_upper_brackets_scs(case) -> None:
    dr, scs = dual_of(case, "dr"), dual_of(case, "cvxpy")
    scale = problem_of(case).zero_value
    # SCS's value is a dual value at a feasible point: a lower bound on D* like DR's.
    assert scs.value <= dr.dual_upper + 1e-12 * scale
    assert dr.value <= scs.dual_upper + 1e-12 * scale
    assert dr.value <= dr.dual_upper


@settings(max_examples=25)
@given(data=problems(max_dim=4))
def test_dual_upper_is_above_every_dual_value(data) -> None:
    # value <= D* <= dual_upper, whatever the route and however DR ended (here capped at a
    # few iterations too): against the dual values of Clarabel and of random feasible points.
    import cvxpy as cp

    problem, _, _, rng = data
    for kwargs in ({}, {"max_iter": 3}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dl.ConvergenceWarning)
            dr = dl.solve_dual(problem, **kwargs)
        scale = max(problem.zero_value, 1e-300)
        assert dr.value <= dr.dual_upper + 1e-12 * scale
        for _ in range(5):
            Lam = rng.standard_normal((problem.dH, problem.d0)) * (problem.rho + 1.0)
            assert dl.dual_value(problem, Lam) <= dr.dual_upper + 1e-12 * scale
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = dl.solve_dual(problem, method="cvxpy", solver="CLARABEL")
    except cp.error.SolverError:
        return
    assert ref.value <= dr.dual_upper + 1e-9 * scale


def _gap_problem() -> dl.DeepLinearProblem:
    # A survey instance with a proved duality gap (tests/test_gaps.py proves it).
    return survey.instance(GAP_SEED, k=2, cond=100.0, frac=GAP_FRAC)


GAP_SEED, GAP_FRAC = 123, 0.01


@pytest.mark.parametrize("solver", ["SCS", "CLARABEL"])
def test_two_sided_interval_on_a_gap_instance_contains_the_conic_optimum(solver) -> None:
    problem = _gap_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        dr = dl.solve_dual(problem)
        conic = dl.solve_dual(problem, method="cvxpy", solver=solver,
                              **({"solver_options": {"eps": 1e-10}} if solver == "SCS" else {}))
    assert dr.status == "duality_gap", dr.message
    assert dr.diagnostics.relaxed_rank > problem.k
    width = (dr.dual_upper - dr.value) / dr.value
    assert 0 <= width <= 1e-10
    assert conic.value <= dr.dual_upper * (1 + 1e-12)
    assert conic.dual_upper >= dr.value * (1 - 1e-12)
    # The conic solver lands inside the interval to its own accuracy.
    assert conic.value == pytest.approx(dr.value, rel=1e-6)


def test_tie_family_at_the_dual_optimum_pins_it_and_shows_the_rank_signal() -> None:
    import cvxpy as cp

    problem = _gap_problem()
    red = Reduced.of(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        dr = dl.solve_dual(problem)
    Gamma = dr.Gamma / red.a
    lower = dr.value / red.a**2
    family = tie_family(red.A, Gamma, red.s, red.rho, red.k, red.residual_sq)
    assert lower <= family.value <= lower * (1 + 1e-9)
    assert family.rank > red.k
    assert np.any((family.weights > 1e-3) & (family.weights < 1 - 1e-3))
    # The same family minimised by an SDP (independent formulation through CVXPY).
    U, sv, Vt = np.linalg.svd(red.A - Gamma)
    first, last = family.block
    m, c = last - first + 1, red.k - first
    WL, WR = U[:, :last + 1], Vt[:last + 1].T
    G = cp.Variable((m, m), symmetric=True)
    level = float(np.mean(sv[first:last + 1]))
    K = cp.bmat([[np.diag(sv[:first]), np.zeros((first, m))],
                 [np.zeros((m, first)), level * G]])
    N = WL @ K @ WR.T
    # On the family ||N||_(k)*^2 is constant (sum of the top values squared + c level^2):
    # U(N(G)) = const - <N(G), A> + rho ||N(G) diag(s)^-1||_*, convex in G.
    const = 0.5 * red.residual_sq + 0.5 * float(np.vdot(red.A, red.A)) + 0.5 * (
        float(np.sum(sv[:first] ** 2)) + c * level**2)
    objective = const - cp.sum(cp.multiply(N, red.A)) + red.rho * cp.normNuc(
        N @ np.diag(1 / red.s))
    prob = cp.Problem(cp.Minimize(objective), [G >> 0, np.eye(m) - G >> 0, cp.trace(G) == c])
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    assert family.value <= prob.value + 1e-8 * abs(prob.value)
    assert prob.value >= lower * (1 - 1e-8)
