"""The convex dual (5): Douglas-Rachford and the CVXPY reference against independent oracles.

Oracles: the whitened closed form (MATH.md section 6), the other dual method, the best of
several primal restarts (an upper bound, so agreement certifies both), the reduced-rank
regression optimum at ``gamma = 0``, the zero network for large ``gamma``, and a direct CVXPY
nuclear-norm formulation when the rank bound is inactive.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import (
    GENERAL_CASES,
    IDENTITY_CASES,
    Case,
    dual_of,
    expect_warning,
    make_X,
    make_Y,
    nuclear_norm_value,
    primal_of,
    problem_of,
    reduced_rank_value,
    rel_diff,
    zero_threshold,
)
from duallinear._dr.refine import projected_primal

pytestmark = pytest.mark.usefixtures("single_thread_blas")

RTOL = 1e-8
# A dual value is a lower bound and a primal value an upper bound on the same optimum; allow
# only rounding on the wrong side.
ROUNDING = 1e-12


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


def _check_lower_bound(lower: float, optimum: float) -> None:
    assert lower <= optimum + ROUNDING * max(1.0, abs(optimum))


# ---------------------------------------------------------------- agreement of all paths
@pytest.mark.parametrize("case", IDENTITY_CASES, ids=_ids(IDENTITY_CASES))
def test_identity_x_closed_form_dr_cvxpy_primal_agree(case: Case) -> None:
    problem = problem_of(case)
    assert problem.is_whitened
    optimum = dl.closed_form(problem).value
    dr = dual_of(case, "dr")
    cvx = dual_of(case, "cvxpy")
    primal = primal_of(case)
    assert dr.converged and cvx.converged, (dr.message, cvx.message)
    for name, value in [("dr", dr.value), ("cvxpy", cvx.value), ("primal", primal.value)]:
        assert rel_diff(value, optimum) <= RTOL, (name, value, optimum)
    _check_lower_bound(dr.value, optimum)
    _check_lower_bound(cvx.value, optimum)
    _check_lower_bound(optimum, primal.value)


@pytest.mark.parametrize("case", GENERAL_CASES, ids=_ids(GENERAL_CASES))
def test_general_x_dr_cvxpy_primal_agree(case: Case) -> None:
    problem = problem_of(case)
    assert not problem.is_whitened
    dr = dual_of(case, "dr")
    cvx = dual_of(case, "cvxpy")
    primal = primal_of(case)
    assert dr.converged, dr.message
    assert cvx.converged, cvx.message
    assert rel_diff(dr.value, cvx.value) <= RTOL
    assert rel_diff(dr.value, primal.value) <= RTOL
    assert rel_diff(cvx.value, primal.value) <= RTOL
    # Weak duality between independent paths.
    _check_lower_bound(dr.value, primal.value)
    _check_lower_bound(cvx.value, primal.value)


@pytest.mark.parametrize("seed", range(8))
def test_dr_converges_on_ill_conditioned_x(seed: int) -> None:
    """Condition number 1e3 with default settings: DR must meet its tolerance and match the
    CVXPY reference (the rank bound is active, so there is no simpler oracle)."""
    case = Case("ill_conditioned", 8, 6, 20, (3,), frac=0.15, seed=1000 + seed)
    problem = problem_of(case)
    dr = dl.solve_dual(problem)
    assert dr.converged, dr.message
    cvx = dl.solve_dual(problem, method="cvxpy")
    assert rel_diff(dr.value, cvx.value) <= RTOL


def test_general_x_cases_are_what_they_claim() -> None:
    """The data generators really produce the four kinds of X the agreement tests promise."""
    kinds = {c.x_kind: problem_of(c) for c in GENERAL_CASES}
    assert kinds["gaussian"].rank == kinds["gaussian"].d0
    assert kinds["rank_deficient"].rank < min(kinds["rank_deficient"].d0,
                                               kinds["rank_deficient"].n)
    wide = kinds["wide"]
    assert wide.d0 > wide.n and wide.rank == wide.n
    ill = kinds["ill_conditioned"]
    assert ill.s[0] / ill.s[-1] == pytest.approx(1e3, rel=1e-8)
    for c in GENERAL_CASES:  # the rank bound is active in all of them
        assert problem_of(c).k < min(problem_of(c).rank, c.dH)


# --------------------------------------------------------------------- the result object
@pytest.mark.parametrize("case", [GENERAL_CASES[4], IDENTITY_CASES[4]],
                         ids=["general", "identity"])
@pytest.mark.parametrize("method", ["dr", "cvxpy"])
def test_result_is_a_feasible_certified_point(case: Case, method: str) -> None:
    problem = problem_of(case)
    res = dual_of(case, method)
    assert res.method == method
    assert res.Lambda.shape == (problem.dH, problem.d0)
    assert res.Gamma.shape == problem.A.shape
    # Lambda = Gamma diag(s) U^T: it lies in the row space of X ...
    np.testing.assert_allclose(res.Lambda, (res.Gamma * problem.s) @ problem.U.T,
                               atol=1e-12 * max(1.0, np.abs(res.Lambda).max()))
    # ... is feasible (||Lambda||_op <= rho) ...
    assert np.linalg.norm(res.Lambda, 2) <= problem.rho * (1 + 1e-10)
    # ... and value is the dual objective there, recomputed from Lambda.
    assert rel_diff(dl.dual_value(problem, res.Lambda), res.float_value) <= 1e-10
    # value is that, lowered by the rounding margin for the data as given.
    assert res.value == pytest.approx(max(res.float_value - sum(res.rounding), 0.0),
                                      rel=1e-12, abs=1e-300)
    # The recovered weights' value is an upper bound; the gap of the pair lies within the
    # interval [value, upper_bound] (the first-order rounding shift cancels in the pair).
    assert res.upper_bound >= res.value - ROUNDING * abs(res.value)
    interval = dl.relative_gap(res.upper_bound, res.value, problem.zero_value)
    assert 0.0 <= res.relative_gap <= interval * (1 + 1e-9) + 1e-15
    assert res.time >= 0.0 and isinstance(res.message, str) and res.message


def test_dr_reports_its_history() -> None:
    case = GENERAL_CASES[1]
    res = dual_of(case, "dr")
    assert res.status == "converged"
    assert res.iterations == len(res.residuals) >= 1
    assert res.gaps.size >= 1 and np.all(np.isfinite(res.gaps))
    assert res.relative_gap <= 1e-10
    assert res.gaps.min() <= 1e-10
    assert np.all(res.residuals >= 0)


def test_cvxpy_alternative_solver_agrees() -> None:
    case = GENERAL_CASES[0]
    problem = problem_of(case)
    res = dl.solve_dual(problem, method="cvxpy", solver="CLARABEL")
    assert res.converged, res.message
    assert rel_diff(res.value, dual_of(case, "dr").value) <= 1e-7
    assert "CLARABEL" in res.message


@pytest.mark.parametrize("method", ["dr", "cvxpy"])
def test_badly_scaled_data_is_solved_accurately(method: str) -> None:
    """Scaling (MATH.md section 6): (c Y, c gamma) has optimum c^2 P*; data scaled by 1e4 must
    not throw a conic solver off (it is normalised before it is handed over)."""
    case = GENERAL_CASES[3]
    X, Y, gamma = case.data()
    base = dual_of(case, "dr").value
    for c in (1e4, 1e-3):
        scaled = dl.DeepLinearProblem(X, c * Y, case.hidden, c * gamma)
        res = dl.solve_dual(scaled, method=method)
        assert res.converged, res.message
        assert rel_diff(res.value, c**2 * base) <= RTOL, (c, res.value, c**2 * base)


# --------------------------------------------------------------- edge cases with answers
GAMMA0_CASES = [
    Case("identity", 6, 6, 6, (2,), seed=1),
    Case("gaussian", 7, 5, 15, (2, 3), seed=2),
    Case("rank_deficient", 8, 6, 20, (2, 8, 8), seed=3),
    Case("wide", 9, 4, 5, (3,), seed=4),
    Case("ill_conditioned", 7, 5, 15, (2, 2), seed=5),
]


@pytest.mark.parametrize("case", GAMMA0_CASES, ids=_ids(GAMMA0_CASES))
def test_gamma_zero_is_reduced_rank_regression(case: Case) -> None:
    """gamma = 0: D* = 1/2||Y||^2 - 1/2||Y P_X||_(k)^2 (classical reduced-rank regression)."""
    X, Y, _ = case.data()
    problem = dl.DeepLinearProblem(X, Y, case.hidden, 0.0)
    expected = reduced_rank_value(X, Y, problem.k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)  # (ConditioningWarning too)
        dr = dl.solve_dual(problem)
        cvx = dl.solve_dual(problem, method="cvxpy")
    primal = dl.solve_primal(problem, restarts=3, seed=case.seed)
    if problem.dropped_energy > 0:
        # X of rank below its size (a product of factors, rounded): the directions below the
        # rank cut carry part of Y, and at gamma = 0 a fit along them costs nothing, so the
        # problem as given cannot be certified in float64; the rounded problem is solved.
        assert dr.status == cvx.status == "ill_conditioned", (dr.message, cvx.message)
        assert dr.value <= expected and cvx.value <= expected
        for value in (dr.float_value, cvx.float_value, primal.value):
            assert rel_diff(value, expected) <= RTOL
        return
    assert dr.converged and cvx.converged
    for value in (dr.value, cvx.value, primal.value):
        assert rel_diff(value, expected) <= RTOL
    if problem.is_whitened:
        assert rel_diff(dl.closed_form(problem).value, expected) <= 1e-12


ZERO_NET_CASES = [
    Case("identity", 6, 4, 6, (2,), seed=6),
    Case("gaussian", 6, 4, 15, (2, 2), seed=7),
    Case("rank_deficient", 8, 5, 12, (3, 3, 3), seed=8),
    Case("wide", 9, 3, 4, (2, 5), seed=9),
]


@pytest.mark.parametrize("factor", [1.0, 1.5, 100.0])
@pytest.mark.parametrize("case", ZERO_NET_CASES, ids=_ids(ZERO_NET_CASES))
def test_large_gamma_zero_network_is_optimal(case: Case, factor: float) -> None:
    """rho = gamma H >= ||Y X^T||_op: the optimum is the zero network's 1/2 ||Y||^2."""
    X, Y, _ = case.data()
    H = len(case.hidden) + 1
    gamma = factor * zero_threshold(X, Y) / H
    problem = dl.DeepLinearProblem(X, Y, case.hidden, gamma)
    expected = 0.5 * float(np.sum(Y * Y))
    assert problem.zero_value == pytest.approx(expected, rel=1e-15)
    for method in ("dr", "cvxpy"):
        res = dl.solve_dual(problem, method=method)
        assert res.converged, res.message
        assert rel_diff(res.value, expected) <= RTOL
        _check_lower_bound(res.value, expected)
    if problem.is_whitened:
        assert rel_diff(dl.closed_form(problem).value, expected) <= 1e-12
        np.testing.assert_array_equal(dl.closed_form(problem).N, 0.0)


WIDE_HIDDEN_CASES = [  # k >= min(d0, dH): the rank bound is inactive
    Case("gaussian", 7, 5, 15, (5,), seed=11),          # k == dH
    Case("gaussian", 7, 5, 15, (9, 6), seed=12),        # k > dH
    Case("rank_deficient", 8, 6, 20, (4, 10), seed=13),  # k == rank(X) < dH
    Case("wide", 9, 6, 5, (9,), seed=14),
    Case("ill_conditioned", 5, 7, 12, (6, 6, 6), seed=15),
]


@pytest.mark.parametrize("case", WIDE_HIDDEN_CASES, ids=_ids(WIDE_HIDDEN_CASES))
def test_wide_hidden_layers_give_the_convex_nuclear_norm_problem(case: Case) -> None:
    X, Y, gamma = case.data()
    problem = dl.DeepLinearProblem(X, Y, case.hidden, gamma)
    expected = nuclear_norm_value(X, Y, problem.rho)
    dr = dl.solve_dual(problem)
    assert dr.converged, dr.message
    assert rel_diff(dr.value, expected) <= 1e-7  # Clarabel's own accuracy
    primal = dl.solve_primal(problem, restarts=2, seed=case.seed)
    assert rel_diff(primal.value, dr.value) <= RTOL
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.ConvergenceWarning)
        cvx = dl.solve_dual(problem, method="cvxpy")
    assert cvx.converged, cvx.message
    assert rel_diff(cvx.value, dr.value) <= RTOL


def test_wide_hidden_identity_x_matches_closed_form() -> None:
    rng = np.random.default_rng(16)
    Y = rng.standard_normal((6, 6))
    for hidden in [(6,), (8, 7), (6, 6, 6)]:
        problem = dl.DeepLinearProblem(np.eye(6), Y, hidden, 0.5)
        res = dl.solve_dual(problem)
        assert rel_diff(res.value, dl.closed_form(problem).value) <= RTOL


THIN_CASES = [
    Case("gaussian", 6, 1, 12, (1,), seed=21),           # dH = 1
    Case("gaussian", 6, 1, 12, (3, 2), seed=22),         # dH = 1, H = 3
    Case("wide", 8, 1, 5, (2, 2, 2), seed=23),           # dH = 1, d0 > n
    Case("gaussian", 1, 5, 12, (1,), seed=24),           # d0 = 1
    Case("gaussian", 1, 5, 12, (4, 1), seed=25),         # d0 = 1, H = 3
    Case("identity", 1, 1, 1, (1, 1), frac=0.3, seed=26),  # d0 = dH = n = 1
]


@pytest.mark.parametrize("case", THIN_CASES, ids=_ids(THIN_CASES))
def test_single_output_or_single_input(case: Case) -> None:
    """dH = 1 or d0 = 1: M is a vector, the nuclear norm its 2-norm, the rank bound void."""
    X, Y, gamma = case.data()
    problem = dl.DeepLinearProblem(X, Y, case.hidden, gamma)
    expected = nuclear_norm_value(X, Y, problem.rho)
    dr = dl.solve_dual(problem)
    cvx = dl.solve_dual(problem, method="cvxpy")
    primal = dl.solve_primal(problem, restarts=2, seed=case.seed)
    assert dr.converged and cvx.converged
    assert rel_diff(dr.value, expected) <= 1e-7
    assert rel_diff(cvx.value, dr.value) <= RTOL
    assert rel_diff(primal.value, dr.value) <= RTOL


def test_zero_targets() -> None:
    """Y = 0: every method returns 0 without dividing by zero."""
    rng = np.random.default_rng(27)
    X = make_X("gaussian", 4, 9, rng)
    problem = dl.DeepLinearProblem(X, np.zeros((3, 9)), (2,), 0.1)
    for method in ("dr", "cvxpy"):
        res = dl.solve_dual(problem, method=method)
        assert res.value == pytest.approx(0.0, abs=1e-14)
        assert res.converged


# ------------------------------------------------------------------- stopping early
def _general_problem() -> tuple[dl.DeepLinearProblem, float]:
    case = GENERAL_CASES[3]
    return problem_of(case), primal_of(case).value


# (The primal refinement certifies this problem from the 2nd iteration: max_iter=3 stops
# plain DR.)
@pytest.mark.parametrize("kwargs", [{"max_iter": 1}, {"max_iter": 3, "primal_refine": False},
                                    {"tol": 0.0, "max_iter": 60}],
                         ids=["max_iter=1", "max_iter=3-plain", "tol=0"])
def test_dr_stopped_early_warns_and_is_still_a_lower_bound(kwargs: dict) -> None:
    problem, optimum = _general_problem()
    with expect_warning(dl.ConvergenceWarning, match="did not converge"):
        res = dl.solve_dual(problem, **kwargs)
    assert res.converged is False
    assert res.status != "converged"
    assert np.isfinite(res.value)
    _check_lower_bound(res.value, optimum)
    assert np.linalg.norm(res.Lambda, 2) <= problem.rho * (1 + 1e-10)
    assert res.upper_bound >= optimum * (1 - ROUNDING)


def test_cvxpy_stopped_early_warns_and_is_still_a_lower_bound() -> None:
    problem, optimum = _general_problem()
    with expect_warning(dl.ConvergenceWarning, match="did not converge"):
        res = dl.solve_dual(problem, method="cvxpy", solver_options={"max_iters": 3})
    assert res.converged is False
    assert res.status != "optimal"
    assert res.status in res.message  # the conic solver's status is passed on
    _check_lower_bound(res.value, optimum)


def test_converged_run_is_silent() -> None:
    problem, _ = _general_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = dl.solve_dual(problem)
    assert res.converged


# ----------------------------------------------------------------------- bad arguments
def test_bad_arguments() -> None:
    problem = problem_of(GENERAL_CASES[0])
    with pytest.raises(TypeError, match="problem"):
        dl.solve_dual("not a problem")
    with pytest.raises(ValueError, match="method"):
        dl.solve_dual(problem, method="admm")
    with pytest.raises(ValueError, match="tol"):
        dl.solve_dual(problem, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        dl.solve_dual(problem, max_iter=0)
    with pytest.raises(TypeError, match="max_iter"):
        dl.solve_dual(problem, max_iter=2.5)
    with pytest.raises(ValueError, match="relaxation"):
        dl.solve_dual(problem, relaxation=2.0)
    with pytest.raises(ValueError, match="step"):
        dl.solve_dual(problem, step=0.0)
    with pytest.raises(TypeError, match="solver_options"):
        dl.solve_dual(problem, method="cvxpy", solver_options=[("eps", 1e-6)])


def test_from_statistics_problem_has_the_same_dual() -> None:
    case = GENERAL_CASES[1]
    X, Y, gamma = case.data()
    stats = dl.DeepLinearProblem.from_statistics(X @ X.T, Y @ X.T, float(np.sum(Y * Y)),
                                                 case.hidden, gamma, n=X.shape[1])
    res = dl.solve_dual(stats)
    assert res.converged
    assert rel_diff(res.value, dual_of(case, "dr").value) <= RTOL


def test_make_y_orthogonal_has_unit_singular_values() -> None:
    rng = np.random.default_rng(0)
    for shape in [(5, 5), (3, 7), (7, 3)]:
        sv = np.linalg.svd(make_Y("orthogonal", *shape, rng), compute_uv=False)
        np.testing.assert_allclose(sv, 1.0, atol=1e-14)


# ---------------------------------------------- leading triplets instead of full SVDs
def _maps_from_leading(result: dl.DualResult) -> tuple[int, int]:
    d = result.diagnostics
    assert d.partial_svd, result.message
    return d.maps_leading, d.maps_leading + d.maps_gram + d.maps_svd


def _structured_problem(d: int, rank: int, k: int, seed: int) -> dl.DeepLinearProblem:
    # Y = W* X + noise with W* of low rank: the proximal maps change few triplets.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d, 2 * d))
    W = rng.standard_normal((d, rank)) @ rng.standard_normal((rank, d)) / d
    Y = W @ X + 0.1 * rng.standard_normal((d, 2 * d))
    return dl.DeepLinearProblem(X, Y, (k, k), 0.3 * np.sqrt(d) / 3)


def test_leading_triplets_match_full_svds_and_are_certified() -> None:
    problem = _structured_problem(120, 5, 5, seed=0)
    full = dl.solve_dual(problem, partial_svd=False)
    lead = dl.solve_dual(problem, partial_svd=True)
    assert full.converged and lead.converged, (full.message, lead.message)
    used, calls = _maps_from_leading(lead)
    assert used == calls > 0
    assert "leading triplets" not in full.message
    assert rel_diff(lead.value, full.value) <= RTOL
    # The reported value is the exact dual value of the returned point ...
    assert rel_diff(dl.dual_value(problem, lead.Lambda), lead.float_value) <= 1e-12
    assert lead.value <= lead.float_value
    # ... and weights recovered from it (full SVDs) reach it: an independent certificate.
    rec = dl.recover(problem, lead)
    assert rec.relative_gap <= 1e-9
    primal = dl.solve_primal(problem, restarts=2, seed=0)
    assert rel_diff(lead.value, primal.value) <= RTOL
    _check_lower_bound(lead.value, primal.value)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.floats(-8.0, 0.0),
       st.floats(-3.0, 3.0), st.booleans(), st.integers(0, 10**6))
def test_structured_norm_bounds_the_exact_norm_in_the_ball(dH, r, c, log_s, log_rho,
                                                            orthonormal, seed) -> None:
    # The start's candidate Gamma = (rho P Q^T) / s is certified with this bound instead of
    # its singular values: it must bound ||Gamma diag(s)||_op of the float Gamma, exactly.
    from duallinear._dr.refine import structured_norm

    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((dH, c)), rng.standard_normal((r, c))
    if orthonormal:
        P, Q = np.linalg.qr(P)[0], np.linalg.qr(Q)[0]
        c = min(P.shape[1], Q.shape[1])
        P, Q = P[:, :c], Q[:, :c]
    s = 10.0 ** rng.uniform(log_s, 0.0, r)
    rho = 10.0**log_rho
    Gamma = (rho * (P @ Q.T)) / s
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    exact = mp.matrix([[mp.mpf(float(Gamma[i, j])) * mp.mpf(float(s[j])) for j in range(r)]
                       for i in range(dH)])
    top = max(mp.svd_r(exact, compute_uv=False))
    assert float(top) <= structured_norm(P, Q, rho)
    assert structured_norm(P, Q, rho) <= float(top) * (1 + 1e-12) + 1e-300 or not orthonormal


def _exact_norm_sq_of_scaled(Gamma: np.ndarray, s: np.ndarray):
    """``||Gamma diag(s)||_op^2`` of the float entries, as a 40-digit number (not rounded)."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    Z = mp.matrix([[mp.mpf(float(Gamma[i, j])) * mp.mpf(float(s[j]))
                    for j in range(Gamma.shape[1])] for i in range(Gamma.shape[0])])
    return mp, max(mp.eigsy(Z.T * Z, eigvals_only=True))


@pytest.mark.parametrize("seed", [5, 8, 12, 14, 16])
def test_regression_make_feasible_puts_a_point_on_the_boundary_inside_the_ball(seed) -> None:
    # A dual point scaled onto the boundary on LAPACK's largest singular value (as the ball
    # projection leaves DR's points) was kept as it was when that value came out <= rho; on
    # these seeds the exact norm of the float matrix was above rho by 2e-17..2.3e-16
    # (relative), so its dual value was not that of a feasible point. make_feasible now
    # allows for LAPACK's error and for the rounding of its own scaling.
    from duallinear._reduced import make_feasible, op_norm

    rng = np.random.default_rng(seed)
    Gamma, s = rng.standard_normal((12, 12)), np.sort(rng.uniform(0.1, 1.0, 12))[::-1]
    rho = 0.7
    Gamma = Gamma * (rho / op_norm(Gamma * s))
    assert op_norm(Gamma * s) <= rho  # the old rule kept this point
    mp, old = _exact_norm_sq_of_scaled(Gamma, s)
    assert old > mp.mpf(rho) ** 2  # ... which was outside the ball
    out = make_feasible(Gamma, s, rho)
    mp, new = _exact_norm_sq_of_scaled(out, s)
    assert new <= mp.mpf(rho) ** 2
    assert float(new) >= rho**2 * (1.0 - 1e-12)  # shrunk by rounding-level amounts only


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.floats(-8.0, 0.0), st.floats(-3.0, 3.0),
       st.floats(-1.0, 1.0), st.integers(0, 10**6))
def test_make_feasible_is_inside_the_ball_in_exact_arithmetic(dH, r, log_s, log_rho,
                                                              log_excess, seed) -> None:
    # Property: whatever the input's norm (from far inside to 10x outside, and at the
    # boundary as computed), the float matrix returned has ||Gamma diag(s)||_op <= rho
    # exactly; a point that had to be scaled ends within rounding of the boundary.
    from duallinear._reduced import make_feasible, op_norm

    rng = np.random.default_rng(seed)
    Gamma = rng.standard_normal((dH, r))
    s = 10.0 ** rng.uniform(log_s, 0.0, r)
    rho = 10.0**log_rho
    at_boundary = Gamma * (rho / op_norm(Gamma * s))
    for point in (at_boundary, at_boundary * 10.0**log_excess):
        out = make_feasible(point, s, rho)
        mp, norm_sq = _exact_norm_sq_of_scaled(out, s)
        assert norm_sq <= mp.mpf(rho) ** 2
        if op_norm(point * s) > rho * (1.0 + 1e-12):
            assert float(norm_sq) >= rho**2 * (1.0 - 1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.floats(-8.0, 0.0),
       st.floats(-3.0, 3.0), st.integers(0, 10**6))
def test_start_candidate_scaled_on_its_bound_is_inside_the_ball(dH, r, c, log_s, log_rho,
                                                                seed) -> None:
    # The refinement's start candidate (rho P Q^T) / s is scaled into the ball on
    # structured_norm, in place, by the same factor as make_feasible (its rounding
    # included), and then certified as inside with the bound returned: in exact arithmetic
    # it must be inside, and below that bound.
    from duallinear._dr.refine import start_candidate

    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((dH, c)), rng.standard_normal((r, c))  # (not orthonormal)
    s = 10.0 ** rng.uniform(log_s, 0.0, r)
    rho = 10.0**log_rho
    G, bound = start_candidate(P, Q, rho, s)
    mp, norm_sq = _exact_norm_sq_of_scaled(G, s)
    assert norm_sq <= mp.mpf(rho) ** 2 and norm_sq <= mp.mpf(bound) ** 2


def _exact_op_norm(Z: np.ndarray, column_scale: np.ndarray | None = None) -> float:
    """``||Z diag(column_scale)||_op`` of the float entries, in 40-digit arithmetic."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    m, n = Z.shape
    scale = np.ones(n) if column_scale is None else column_scale
    exact = mp.matrix([[mp.mpf(float(Z[i, j])) * mp.mpf(float(scale[j])) for j in range(n)]
                       for i in range(m)])
    return float(max(mp.svd_r(exact, compute_uv=False)))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.floats(-8.0, 0.0),
       st.floats(-3.0, 3.0), st.floats(-16.0, 0.0), st.floats(0.0, 1.5),
       st.sampled_from(["orthonormal", "perturbed", "arbitrary"]), st.integers(0, 10**6))
def test_candidate_norm_bounds_the_exact_norm_in_the_ball(dH, r, c, log_s, log_rho, log_leak,
                                                          w_scale, kind, seed) -> None:
    # A held point's candidate Gamma = (W + rho P Q^T) / s is certified with this bound
    # instead of its singular values: it must bound ||Gamma diag(s)||_op of the float Gamma
    # exactly, for any W of norm <= w_norm (here W leaks into the ranges of P and Q by
    # 10^log_leak, and exceeds rho by up to 1.5x), and for P, Q only nearly orthonormal.
    from duallinear._dr.refine import candidate_norm

    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((dH, c)), rng.standard_normal((r, c))
    if kind != "arbitrary":
        P, Q = np.linalg.qr(P)[0], np.linalg.qr(Q)[0]
        c = min(P.shape[1], Q.shape[1])
        P, Q = P[:, :c], Q[:, :c]
        if kind == "perturbed":
            P = P + 1e-9 * rng.standard_normal(P.shape)
            Q = Q + 1e-9 * rng.standard_normal(Q.shape)
    rho = 10.0**log_rho
    W = rng.standard_normal((dH, r))
    W -= P @ np.linalg.lstsq(P, W, rcond=None)[0]  # (as orthogonal as floats make it)
    W -= np.linalg.lstsq(Q, W.T, rcond=None)[0].T @ Q.T
    w = _exact_op_norm(W)
    W *= w_scale * rho / w if w > 1e-12 else 0.0  # (no room beside P and Q: W = the leak)
    W += 10.0**log_leak * rho * rng.standard_normal((dH, r))
    w_norm = _exact_op_norm(W) * (1 + 1e-15)
    s = 10.0 ** rng.uniform(log_s, 0.0, r)
    Gamma = (W + rho * (P @ Q.T)) / s
    top = _exact_op_norm(Gamma, s)
    bound = candidate_norm(W, P, Q, rho, w_norm)
    assert top <= bound
    if kind == "orthonormal" and log_leak <= -12:
        # Tight where it is used: W orthogonal to P and Q up to rounding.
        assert bound <= max(w_norm, rho) * (1 + 1e-10) + 1e-300


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_certify_in_a_basis_keeps_the_exact_lower_bound_and_prices_its_own_matrix(
        seed: int, exact: bool) -> None:
    # Reduced.certify(basis=...): the dual value is the one every route computes (LAPACK's
    # values of A - Gamma), and the upper bound is the objective of the rank-k matrix built
    # in the basis, whatever the basis (the exact leading subspaces: the usual truncation's
    # objective; a random one: a worse but valid matrix, priced independently here).
    from duallinear._reduced import Reduced, make_feasible

    rng = np.random.default_rng(seed)
    d, n, k = 9, 12, 3
    problem = dl.DeepLinearProblem(rng.standard_normal((d, n)), rng.standard_normal((d, n)),
                                   (k,), 0.3)
    red = Reduced.of(problem)
    Gamma = make_feasible(rng.standard_normal(red.A.shape), red.s, red.rho)
    _, lower, upper = red.certify(Gamma)
    B = red.A - Gamma
    U, _, Vt = np.linalg.svd(B)
    if exact:
        left, right = U[:, :k], Vt[:k].T
    else:
        left = np.linalg.qr(rng.standard_normal((red.A.shape[0], k)))[0]
        right = np.linalg.qr(rng.standard_normal((red.A.shape[1], k)))[0]
    _, lower_b, upper_b = red.certify(Gamma, basis=(left, right))
    assert lower_b == pytest.approx(lower, rel=1e-13, abs=1e-15)
    sv = np.linalg.svd(B, compute_uv=False)
    # (The matrix priced: the core's vectors with A - Gamma's leading values.)
    Uc, _, Vct = np.linalg.svd(left.T @ B @ right)
    N = ((left @ Uc) * sv[:k]) @ (Vct @ right.T)
    value = (0.5 * np.sum((N - red.A) ** 2) + 0.5 * red.residual_sq
             + red.rho * np.sum(np.linalg.svd(N / red.s, compute_uv=False)))
    assert upper_b == pytest.approx(min(value, red.zero_value), rel=1e-12)
    if exact:
        assert upper_b == pytest.approx(upper, rel=1e-12)


def test_a_candidate_short_of_tol_by_the_bounds_slack_is_certified_with_the_exact_norm(
        ) -> None:
    # _certify_candidate: with the bound the candidate misses tol by less than the bound's
    # slack can cost, so the exact norm is tried; far from tol it is not (one certificate).
    from duallinear._dr.refine import _certify_candidate, candidate_norm
    from duallinear._reduced import Reduced

    rng = np.random.default_rng(0)
    problem = dl.DeepLinearProblem(rng.standard_normal((6, 9)), rng.standard_normal((5, 9)),
                                   (2,), 0.2)
    red = Reduced.of(problem)
    P, Q = (np.linalg.qr(rng.standard_normal(shape))[0] for shape in ((5, 2), (6, 2)))
    W = np.zeros((5, 6))
    G = (W + red.rho * (P @ Q.T)) / red.s
    slack = candidate_norm(W, P, Q, red.rho, 0.0) / red.rho - 1.0
    assert 0.0 < slack < 1e-13
    tol = 1e-10
    for miss, retried in ((0.5, True), (1e3, False)):
        calls = []

        def certify(Gamma, norm=None, miss=miss, calls=calls):
            calls.append(norm)
            upper = 1.0
            # With the bound: short of tol by `miss` times the bound's slack.
            lower = upper - 0.5 * tol - (0.0 if norm is None else (0.5 * tol + miss * slack))
            return Gamma, lower, upper

        point = _certify_candidate(red, certify, tol, G, W, P, Q, bounds=True)
        assert calls[0] is not None and (calls[1:] == [None]) == retried
        assert met_tol(point.gap, tol) == retried
        calls.clear()
        _certify_candidate(red, certify, tol, G, W, P, Q, bounds=False)
        assert calls == [None]  # (without a bound on ||W||: the exact norm only)


def met_tol(gap: float, tol: float) -> bool:
    from duallinear._dr.outcome import met

    return met(gap, tol)


def _graded_matrix(m: int, n: int, log_scale: float, log_cond: float, seed: int,
                   top_values: int) -> np.ndarray:
    """A random m x n matrix of norm 10^log_scale, its other singular values spread down to
    10^-log_cond of it, the largest repeated ``top_values`` times."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, m)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    k = min(m, n)
    sv = np.sort(10.0 ** rng.uniform(-log_cond, 0.0, k))[::-1]
    sv[:top_values] = 1.0
    return 10.0**log_scale * ((U[:, :k] * sv) @ V[:, :k].T)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.floats(-150.0, 150.0), st.floats(0.0, 12.0),
       st.integers(0, 10**6))
def test_largest_by_gram_bound_is_above_the_exact_norm(m, n, log_scale, log_cond,
                                                       seed) -> None:
    # The free block is scaled into the ball on this bound, and the held point's certificate
    # relies on the result's norm being at most rho: an upper bound in exact arithmetic, for
    # any scale and conditioning, and close to the norm.
    from duallinear._linalg import largest_by_gram

    Z = _graded_matrix(m, n, log_scale, log_cond, seed, top_values=1)
    bound = largest_by_gram(Z, bound=True)
    top = _exact_op_norm(Z)
    assert top <= bound
    assert bound <= top * (1 + 1e-12)
    assert largest_by_gram(np.zeros((m, n)), bound=True) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.floats(-100.0, 100.0), st.floats(0.0, 8.0),
       st.floats(-1e-3, 1e-3), st.integers(0, 10**6))
def test_gram_norm_below_decides_the_norm_against_a_level(m, n, log_scale, log_cond, shift,
                                                          seed) -> None:
    # The readiness filter (Held.ready_blocks) decides ||T||_op < level by a Cholesky
    # factorisation instead of a norm: right wherever the level is not within 1e-9 of it,
    # clustered top values (a repeated largest value) included.
    from duallinear._linalg import gram_norm_below, smaller_gram

    Z = _graded_matrix(m, n, log_scale, log_cond, seed, top_values=max(1, min(m, n) // 2))
    top = _exact_op_norm(Z)
    level = top * (1.0 + shift)
    if abs(shift) > 1e-9:
        assert gram_norm_below(smaller_gram(Z), level) == (shift > 0)
    assert not gram_norm_below(smaller_gram(Z), 0.0)


@pytest.mark.parametrize("partial", [False, True])
def test_a_gap_at_k_certifies_from_the_truncation_of_a_before_any_iteration(partial) -> None:
    # Targets of rank k plus noise: A has a gap at k, and the refinement from Gamma = 0
    # certifies before DR allocates its iterates. Against DR without that start.
    problem = _structured_problem(120, 5, 5, seed=0)
    early = dl.DRSettings(refine_start_min_dim=100)
    first = dl.solve_dual(problem, partial_svd=partial, settings=early)
    plain = dl.solve_dual(problem, partial_svd=partial,
                          settings=dl.DRSettings(refine_start_min_dim=10**9))
    assert first.converged and plain.converged, (first.message, plain.message)
    assert first.iterations == 0 and first.diagnostics.refine_start
    assert first.diagnostics.refine_route and "before any iteration" in first.message
    assert plain.iterations > 0 and not plain.diagnostics.refine_start
    assert rel_diff(first.value, plain.value) <= RTOL
    rec = dl.recover(problem, first)
    assert rec.relative_gap <= 1e-9
    _check_lower_bound(first.value, rec.value)


def test_no_gap_at_k_skips_the_start_from_zero() -> None:
    # Gaussian targets: sigma_k(A) / sigma_{k+1}(A) is about 1, the start is not tried (from
    # zero the refinement lands in a local minimum on such data).
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((60, 120)), rng.standard_normal((60, 120))
    problem = dl.DeepLinearProblem(X, Y, (12, 12), 0.3 * np.sqrt(60) / 3)
    result = dl.solve_dual(problem, settings=dl.DRSettings(refine_start_min_dim=10))
    assert result.converged, result.message
    assert not result.diagnostics.refine_start and result.iterations > 0


def test_rounding_bound_from_kept_leading_triplets_is_the_full_svds() -> None:
    # A certificate through leading triplets keeps them (with every singular value) for the
    # rounding bound at its point, instead of a full SVD there: the same terms.
    from duallinear._linalg import LeadingSVD
    from duallinear._reduced import Reduced

    problem = _structured_problem(120, 5, 5, seed=0)
    dual = dl.solve_dual(problem, partial_svd=False)
    kept, fresh = Reduced.of(problem), Reduced.of(problem)
    Gamma = dual.Gamma / kept.a
    point = kept.certify_leading(Gamma, LeadingSVD())
    assert kept.knows(point[0]) and kept.factors(point[0])[0].shape[1] == problem.k
    assert point[1:] == pytest.approx(fresh.certify(Gamma)[1:], rel=1e-13)
    mine, full = kept.rounding(point[0]), fresh.rounding(point[0])
    for name in ("first", "dual_second", "primal_second"):
        assert getattr(mine, name) == pytest.approx(getattr(full, name), rel=1e-9), name
    mine_M, full_M = mine.M[0] @ mine.M[1], full.M[0] @ full.M[1]  # (kept factored)
    np.testing.assert_allclose(mine_M, full_M, atol=1e-10 * np.abs(full_M).max())


def test_regression_rounding_bound_allows_for_loose_leading_triplets() -> None:
    # The rounding bound cancels the first-order shift of the pair (dual value, truncation's
    # objective) as if the kept triplets were the exact truncation's. Leading triplets from a
    # subspace iteration are so only to its tolerance: with triplets 1e-6 off (kept as
    # certify_leading keeps them, with every singular value), the part of the shift that
    # does not cancel was missing from dual_second, which equalled the full SVD's. Now the
    # Wedin bound on their distance from the exact truncation is added.
    from duallinear._linalg import svd
    from duallinear._reduced import Reduced, _mismatch

    problem = _structured_problem(120, 5, 5, seed=0)
    dual = dl.solve_dual(problem, partial_svd=False)
    kept, fresh = Reduced.of(problem), Reduced.of(problem)
    Gamma, _, _ = fresh.certify(dual.Gamma / kept.a)
    U, sv, Vt = svd(kept.A - Gamma)
    k, rng = problem.k, np.random.default_rng(0)
    Uk = np.linalg.qr(U[:, :k] + 1e-6 * rng.standard_normal(U[:, :k].shape))[0]
    Vk = np.linalg.qr(Vt[:k].T + 1e-6 * rng.standard_normal(Vt[:k].T.shape))[0]
    Uk *= np.sign(np.sum(Uk * U[:, :k], axis=0))
    Vk *= np.sign(np.sum(Vk * Vt[:k].T, axis=0))
    kept.remember(Gamma, (Uk, sv, Vk.T))
    mine, full = kept.rounding(Gamma), fresh.rounding(Gamma)
    missing = _mismatch(mine.M, full.M, kept.s, kept.A)[0] * kept.eps_x
    assert missing > 10.0 * full.dual_second  # the loose triplets' map is measurably off ...
    assert mine.dual_second >= full.dual_second + missing  # ... and the bound allows for it
    assert mine.first >= full.first


def test_leading_triplets_fall_back_on_unstructured_data() -> None:
    # Gaussian targets: no spectral gap, the maps fall back to full SVDs and still converge.
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((60, 120)), rng.standard_normal((60, 120))
    problem = dl.DeepLinearProblem(X, Y, (12, 12), 0.3 * np.sqrt(60) / 3)
    lead = dl.solve_dual(problem, partial_svd=True)
    assert lead.converged, lead.message
    used, calls = _maps_from_leading(lead)
    assert used < calls
    assert rel_diff(lead.value, dl.solve_dual(problem, partial_svd=False).value) <= RTOL


@pytest.mark.parametrize("case", GENERAL_CASES, ids=_ids(GENERAL_CASES))
def test_general_x_agreement_through_leading_triplets(case: Case) -> None:
    # Small problems need the whole spectrum: let the block be as large as the matrix.
    # Plain DR: the primal refinement would certify most cases after two iterations.
    dr = dl.solve_dual(problem_of(case), partial_svd=True, primal_refine=False,
                       settings=dl.DRSettings(partial_max_fraction=1.0))
    assert dr.converged, dr.message
    assert _maps_from_leading(dr)[0] > 0  # the leading path really ran
    assert rel_diff(dr.value, dual_of(case, "cvxpy").value) <= RTOL
    assert rel_diff(dr.value, primal_of(case).value) <= RTOL
    _check_lower_bound(dr.value, primal_of(case).value)


@pytest.mark.parametrize("case", GENERAL_CASES, ids=_ids(GENERAL_CASES))
def test_general_x_agreement_through_gram_eigendecompositions(case: Case) -> None:
    # The Gram route normally starts at d = 64: force it on the small agreement cases.
    dr = dl.solve_dual(problem_of(case), primal_refine=False,  # plain DR: many maps
                       settings=dl.DRSettings(gram_min_dim=1))
    assert dr.converged, dr.message
    assert dr.diagnostics.maps_gram > 0, "the Gram route never ran"
    assert rel_diff(dr.value, dual_of(case, "cvxpy").value) <= RTOL
    assert rel_diff(dr.value, primal_of(case).value) <= RTOL
    _check_lower_bound(dr.value, primal_of(case).value)


def test_partial_svd_is_validated() -> None:
    problem = _structured_problem(10, 2, 2, seed=2)
    with pytest.raises(TypeError, match="partial_svd"):
        dl.solve_dual(problem, partial_svd="yes")


# ------------------------------------- a non-zero duality gap: DR pins D* and says so
def _stall_instance(seed: int) -> dl.DeepLinearProblem:
    # Instances on which the duality gap is not zero (found by a scan; see
    # benchmarks/duality_gap_survey.py): rank-deficient or condition-1e4 X, Gaussian Y.
    rng = np.random.default_rng(seed)
    kind = ("rank_deficient", "ill_conditioned", "gaussian")[seed % 3]
    d = int(rng.integers(12, 30))
    n = 2 * d
    if kind == "rank_deficient":
        X = rng.standard_normal((d, d // 2)) @ rng.standard_normal((d // 2, n))
    else:
        X = make_X("ill_conditioned", d, n, rng, cond=1e4)
    Y = rng.standard_normal((d, n))
    rho = float(10 ** rng.uniform(-2, 0)) * np.linalg.norm(Y @ X.T, 2)
    return dl.DeepLinearProblem(X, Y, (max(1, d // 5),) * 2, rho / 3)


@pytest.mark.parametrize("seed", [169, 180, 187])
def test_dr_pins_the_dual_optimum_where_the_relaxation_is_not_tight(seed: int) -> None:
    problem = _stall_instance(seed)
    with expect_warning(dl.ConvergenceWarning, "duality gap"):
        dr = dl.solve_dual(problem)
    assert dr.status == "duality_gap", dr.message
    assert dr.diagnostics.relaxed_rank > problem.k
    with warnings.catch_warnings():
        # SCS's point and the recovered weights are not certified either: the gap is real.
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        warnings.simplefilter("ignore", dl.RecoveryWarning)
        cvx = dl.solve_dual(problem, method="cvxpy", tol=1e-12)
        rec = dl.recover(problem, dr)
    # The interval [value, dual_upper] is as narrow as tol and holds SCS's dual value (a
    # lower bound at SCS's feasible point), which agrees with DR's to 1e-9.
    assert 0 <= dr.dual_upper - dr.value <= 1e-10 * abs(dr.value)
    assert cvx.value <= dr.dual_upper * (1 + ROUNDING)
    assert rel_diff(dr.value, cvx.value) <= 1e-9
    _check_lower_bound(dr.value, rec.value)
    # The recovered weights stay above the whole interval: evidence of a gap (no proof here:
    # prove_gap's search space, the Grassmannian of null spaces, has dimension >= 20).
    assert rel_diff(rec.value, dr.dual_upper) > 1e-6


def test_without_the_two_sided_track_dr_stalls_on_the_dual_optimum() -> None:
    # DRSettings(two_sided=False) keeps the earlier behaviour: DR runs until its iterate has
    # converged and stops "stalled", reporting the converged iterate.
    problem = _stall_instance(169)
    with expect_warning(dl.ConvergenceWarning, "converged"):
        dr = dl.solve_dual(problem, settings=dl.DRSettings(two_sided=False))
    assert dr.status == "stalled", dr.message
    assert dr.diagnostics.two_sided_from == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        reference = dl.solve_dual(problem)  # the two-sided track's pinned value
    assert rel_diff(dr.value, reference.value) <= 1e-9
    assert dr.value <= reference.dual_upper * (1 + ROUNDING)


# --------------------------------------------------- certificate through a primal refinement
@pytest.mark.parametrize("case", GENERAL_CASES, ids=_ids(GENERAL_CASES))
def test_general_x_agreement_with_plain_dr(case: Case) -> None:
    # The default certifies most general cases through the primal refinement: keep plain DR
    # (primal_refine=False) checked against the same oracles.
    dr = dl.solve_dual(problem_of(case), primal_refine=False)
    assert dr.converged, dr.message
    assert "primal refinement" not in dr.message
    assert rel_diff(dr.value, dual_of(case, "cvxpy").value) <= RTOL
    assert rel_diff(dr.value, primal_of(case).value) <= RTOL


def test_primal_refinement_certifies_early_and_agrees_with_plain_dr() -> None:
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((60, 120)), rng.standard_normal((60, 120))
    problem = dl.DeepLinearProblem(X, Y, (12, 12), 0.3 * np.sqrt(60) / 3)
    refined = dl.solve_dual(problem)
    plain = dl.solve_dual(problem, primal_refine=False)
    assert refined.converged and plain.converged
    assert "primal refinement" in refined.message, refined.message
    assert refined.iterations < plain.iterations
    assert rel_diff(refined.value, plain.value) <= 1e-10
    # An ordinary certified point: exact dual value, and recover() reaches it.
    assert rel_diff(dl.dual_value(problem, refined.Lambda), refined.value) <= 1e-12
    rec = dl.recover(problem, refined)
    assert rec.certified and not rec.repaired, rec.message


@pytest.mark.parametrize("gram", [False, True, None], ids=["direct", "gram", "default"])
@pytest.mark.parametrize("shape", [(7, 5, 3), (4, 9, 2), (6, 6, 6)], ids=str)
def test_projected_primal_is_the_joint_objective_with_L_minimised_out(shape, gram) -> None:
    # _refine minimises g(R) = min_L f(L, R): check g against f at the returned L(R), that L(R)
    # zeroes the L-gradient of f, and g's gradient against central differences; both
    # evaluations (directly, and through K = (A S)^T (A S)) and the default choice.
    dH, r, k = shape
    rng = np.random.default_rng(sum(shape))
    A = rng.standard_normal((dH, r))
    s = rng.uniform(0.2, 1.0, r)
    rho = 0.3
    m = np.sort(rng.uniform(0.1, 2.0, k))[::-1]
    Qt = np.linalg.qr(rng.standard_normal((r, k)))[0].T if k <= r else rng.standard_normal((k, r))
    fun, left, scale, start = projected_primal(A, s, rho, m, Qt, gram=gram)
    assert scale.shape == (r, k) and start.shape == (r * k,)
    # The start is the balanced factor Q diag(m)^(1/2), in the preconditioned variable.
    np.testing.assert_allclose(start.reshape(r, k) * scale, Qt.T * np.sqrt(m))
    x = rng.standard_normal(r * k)
    R = x.reshape(r, k) * scale
    L = left(R)

    def joint(L, R):
        res = (L @ R.T) * s - A
        return 0.5 * np.vdot(res, res) + 0.5 * rho * (np.vdot(L, L) + np.vdot(R, R))

    value, grad = fun(x)
    assert value == pytest.approx(joint(L, R), rel=1e-12)
    grad_L = ((L @ R.T) * s - A) * s @ R + rho * L
    assert np.linalg.norm(grad_L) <= 1e-12 * np.linalg.norm(L)
    # A nearby L does worse (L(R) is the minimiser, not only a stationary point).
    assert joint(L + 1e-3 * rng.standard_normal(L.shape), R) > value
    h = 1e-6
    numeric = np.array([(fun(x + h * e)[0] - fun(x - h * e)[0]) / (2 * h)
                        for e in np.eye(x.size)])
    assert np.allclose(grad, numeric, rtol=1e-6, atol=1e-7 * np.abs(grad).max())


@pytest.mark.parametrize("seed", [0, 3])
def test_refinement_when_the_rank_bound_is_inactive(seed: int) -> None:
    # Y = W* X + noise with rank(W*) = 2 < k = 6: the optimal M has rank < k, the columns of
    # the factored search beyond it shrink only slowly, and the certificate comes from
    # the low-rank route (Gamma = A - N, clipped into the ball). Plain DR needs 70-85 iterations.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 60))
    W = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 30)) / 30
    Y = W @ X + 0.1 * rng.standard_normal((30, 60))
    gamma = 0.1 * np.linalg.norm(Y @ X.T, 2) / 3
    problem = dl.DeepLinearProblem(X, Y, (6, 6), gamma)
    refined = dl.solve_dual(problem)
    plain = dl.solve_dual(problem, primal_refine=False)
    assert refined.converged and plain.converged
    assert refined.diagnostics.refine_route == "low_rank"  # the certificate came from that route
    assert refined.iterations < plain.iterations
    assert rel_diff(refined.value, plain.value) <= 1e-9
    rec = dl.recover(problem, refined)
    assert rec.certified, rec.message
    product = np.linalg.svd(rec.weights[2] @ rec.weights[1] @ rec.weights[0], compute_uv=False)
    assert np.sum(product > 1e-6 * product[0]) < 6  # the rank bound is indeed inactive


def _gaussian_benchmark_problem(d: int, seed: int) -> dl.DeepLinearProblem:
    """The benchmarks' square Gaussian instance (benchmarks/common.py: H = 3, k = d/5)."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    return dl.DeepLinearProblem(X, Y, (d // 5, d // 5), 0.3 * np.sqrt(d) / 3)


def test_regression_failed_refinement_is_revisited_with_later_free_blocks() -> None:
    # d = 100, seed 9: the refinements at the 2nd and 6th iterate found the optimal rank-k
    # M but not a free block whose truncation keeps it (certified gaps about 1e-3), and DR
    # certified only at the 55th iterate. Holding the first attempt's M and testing the
    # later iterates' (mixed) free blocks certifies at the 4th.
    problem = _gaussian_benchmark_problem(100, 9)
    held = dl.solve_dual(problem)
    alone = dl.solve_dual(problem, settings=dl.DRSettings(refine_mix=(), refine_revisit=0))
    assert held.converged and alone.converged, (held.message, alone.message)
    assert held.iterations <= 5 < alone.iterations
    assert held.diagnostics.refine_revisits >= 1
    assert held.diagnostics.refine_route == "rank_k"
    assert rel_diff(held.value, alone.value) <= 2e-10
    # An ordinary certified point: its dual value (before the rounding margin of the data
    # as given), and recover() reaches it.
    assert rel_diff(dl.dual_value(problem, held.Lambda), held.float_value) <= 1e-12
    # value = float_value - both rounding terms, up to the rounding of the units' scaling
    # (exact equality held by chance: 75c5e4c's numbers differ from it by one ulp).
    margin = held.float_value - held.rounding[0] - held.rounding[1]
    assert abs(held.value - margin) <= 8 * np.spacing(abs(held.value))
    rec = dl.recover(problem, held)
    assert rec.certified, rec.message
    # The certificate re-evaluated exactly (40 digits) on the original X and Y: the bounds
    # bracket, and the exact gap is within tol (about 70 s at d = 100).
    exact = dl.verify(problem, rec.weights, held, digits=40)
    assert held.value <= exact.dual + 1e-14 * problem.zero_value
    assert exact.dual <= exact.primal + 1e-14 * problem.zero_value
    assert exact.relative_gap <= 1e-10, exact


def test_regression_refinement_on_the_rank_signal_certifies_before_dr_alone() -> None:
    # d = 100, seed 14: no refinement at the 2nd or 6th iterate certified, and the two-sided
    # track ran to the 55th iterate. Its shadow's rank came down to k by the 35th, and the
    # refinement tried there (DRSettings.refine_on_rank) certifies.
    problem = _gaussian_benchmark_problem(100, 14)
    ranked = dl.solve_dual(problem)
    alone = dl.solve_dual(problem, settings=dl.DRSettings(refine_on_rank=False))
    assert ranked.converged and alone.converged, (ranked.message, alone.message)
    assert ranked.iterations <= 40 < alone.iterations
    assert ranked.diagnostics.refine_attempts == alone.diagnostics.refine_attempts + 1
    assert ranked.diagnostics.refine_route == "rank_k"
    assert ranked.dual_upper >= ranked.value
    assert rel_diff(ranked.value, alone.value) <= 2e-10
    assert rel_diff(dl.dual_value(problem, ranked.Lambda), ranked.float_value) <= 1e-12
    rec = dl.recover(problem, ranked)
    assert rec.certified, rec.message
    assert rec.relative_gap <= 1e-10, rec.relative_gap
    # The certificate re-evaluated exactly (40 digits) on the original X and Y.
    exact = dl.verify(problem, rec.weights, ranked, digits=40)
    assert ranked.value <= exact.dual + 1e-14 * problem.zero_value
    assert exact.dual <= exact.primal + 1e-14 * problem.zero_value
    assert exact.relative_gap <= 1e-10, exact


def test_refinement_on_the_rank_signal_is_not_tried_with_a_duality_gap(monkeypatch) -> None:
    # d = 100, seed 19 has a duality gap: its shadow keeps rank above k, so the rank-signal
    # refinement never fires (the same attempts as without it, and the same verdict).
    problem = _gaussian_benchmark_problem(100, 19)
    ranked = dl.solve_dual(problem, tol=1e-8)
    alone = dl.solve_dual(problem, tol=1e-8, settings=dl.DRSettings(refine_on_rank=False))
    assert ranked.status == alone.status == "duality_gap"
    assert ranked.diagnostics.relaxed_rank > problem.k
    assert ranked.diagnostics.refine_attempts == alone.diagnostics.refine_attempts
    assert ranked.iterations == alone.iterations


def test_held_point_ready_block_gives_a_dual_point_truncating_to_it(monkeypatch) -> None:
    # Held's account of the dual points with Gamma diag(s) = rho P Q^T + W (W orthogonal to
    # P and Q): A - Gamma = N + T with T orthogonal to P and to diag(s) Q, W = E - T diag(s).
    # A ready block must then give a feasible point whose k-th value keeps refine_ready
    # above the rest and whose truncation is N (up to the stationarity of the held M).
    import duallinear._dr.product as product
    from duallinear._dr.refine import revisit as real_revisit
    from duallinear._reduced import op_norm

    seen = []

    def spy(red, held, Gamma, *args, **kwargs):
        seen.append((red, held, Gamma.copy()))
        return real_revisit(red, held, Gamma, *args, **kwargs)

    monkeypatch.setattr(product, "revisit", spy)
    result = dl.solve_dual(_gaussian_benchmark_problem(100, 9))
    assert result.converged and seen
    settings = dl.DRSettings()
    red, held, Gamma = seen[-1]  # the revisit that certified
    ready = held.ready_blocks(red, Gamma, op_norm, settings, settings.refine_mix)
    assert ready, "the certifying revisit had a ready block"
    ratio, _mix, W = ready[0]
    A, s, rho, k = red.A, red.s, red.rho, red.k
    P, Q = held.P, held.Q
    N, sigma, E, _right = held.parts()
    scale = np.linalg.norm(W)
    assert np.linalg.norm(P.T @ W) <= 1e-12 * scale and np.linalg.norm(W @ Q) <= 1e-12 * scale
    G = (W + rho * (P @ Q.T)) / s
    assert op_norm(G * s) <= rho * (1 + 1e-12)  # feasible
    sv = np.linalg.svd(A - G, compute_uv=False)
    assert ratio <= 1 - settings.refine_ready
    assert sv[k] <= (1 - settings.refine_ready) * sigma * (1 + 1e-9)
    assert sv[k - 1] == pytest.approx(sigma, rel=1e-6)
    U, sv, Vt = np.linalg.svd(A - G)
    top = (U[:, :k] * sv[:k]) @ Vt[:k]
    # The blocks that couple N to the rest are the stationarity residual of the held
    # (loose-stage) M; the truncation then stays on N as Wedin's bound says, with the
    # ready margin as the separation.
    rest = A - G - N
    coupling = np.linalg.norm(P.T @ rest) + np.linalg.norm(rest @ _right)
    assert coupling <= 1e-5 * np.linalg.norm(N)
    separation = sigma * (1 - ratio)
    bound = 2 * coupling / separation * np.linalg.norm(N, 2) + coupling
    assert np.linalg.norm(top - N) <= bound


def test_regression_a_near_ready_block_tries_the_second_weight(monkeypatch) -> None:
    # d = 100 square seed 2: at the 2nd iterate the free block of weight 0.75 misses ready by
    # under refine_near while weight 0.9 is ready; testing it too certifies there instead of
    # at the 3rd iterate (found measuring issue 15's target 1).
    from duallinear._dr.refine import Held

    found = []
    ready_blocks = Held.ready_blocks

    def spy(self, *args, **kwargs):
        out = ready_blocks(self, *args, **kwargs)
        found.extend(mix for _ratio, mix, _W in out)
        return out

    monkeypatch.setattr(Held, "ready_blocks", spy)
    problem = _gaussian_benchmark_problem(100, 2)
    near = dl.solve_dual(problem)
    assert near.converged and near.iterations == 2, near.message
    assert found == [dl.DRSettings().refine_near_mix]
    found.clear()
    alone = dl.solve_dual(problem, settings=dl.DRSettings(refine_near=0.0))
    assert alone.converged and alone.iterations == 3, alone.message
    assert dl.DRSettings().refine_near_mix not in found


def test_a_skipped_hopeless_certificate_could_not_have_certified(monkeypatch) -> None:
    # A fresh attempt skips the certificate of its own free block when ||T|| exceeds
    # sigma_k enough that the truncation must lose more than 100 tol (Held.hopeless): each
    # skipped candidate, certified anyway here, misses tol by far.
    from duallinear._dr.refine import Held
    from duallinear._reduced import Reduced

    skipped = []
    hopeless = Held.hopeless

    def spy(self, red, G, upper, tol):
        out = hopeless(self, red, G, upper, tol)
        if out:
            _, lower, upper_c = Reduced.certify(red, G)
            skipped.append(red.gap(upper_c, lower) / tol)
        return out

    monkeypatch.setattr(Held, "hopeless", spy)
    tol = 1e-10
    for seed in (9, 10):  # (their first attempts fail on the free block)
        result = dl.solve_dual(_gaussian_benchmark_problem(100, seed), tol=tol)
        assert result.converged, result.message
    assert len(skipped) >= 2 and min(skipped) > 100.0, skipped


def test_regression_largest_by_gram_bounds_the_norm_when_the_eigensolver_fails() -> None:
    # syevr reports an internal error on a Gram matrix with every eigenvalue equal (here a
    # 7 x 7 orthogonal matrix, found by hypothesis): the fallback returned LAPACK's largest
    # singular value, 1.0, below the exact norm 1 + 4e-16, where an upper bound was asked.
    from duallinear._linalg import largest_by_gram

    rng = np.random.default_rng(862)
    U = np.linalg.qr(rng.standard_normal((7, 7)))[0]
    V = np.linalg.qr(rng.standard_normal((7, 7)))[0]
    Z = U @ V.T
    assert _exact_op_norm(Z) <= largest_by_gram(Z, bound=True) <= 1.0 + 1e-13
