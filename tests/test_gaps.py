"""prove_gap and its branch-and-bound: brute force on tiny instances, never a gap where the
gap is zero, lower bounds never above an attainable objective, and a proved gap from a seed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import duallinear as dl
from cases import GENERAL_CASES, problem_of, product
from duallinear import survey
from duallinear._bnb import Data, RankOne, Side, branch_and_bound
from duallinear._reduced import Reduced

pytestmark = pytest.mark.usefixtures("single_thread_blas")

#: A survey instance (``duallinear gaps``: seed 123, k = 2, cond(X) = 100, gamma at 1% of the
#: zero-network threshold) with a non-zero duality gap, found by the survey's own search.
GAP = {"seed": 123, "k": 2, "cond": 100.0, "frac": 0.01}


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        warnings.simplefilter("ignore", dl.RecoveryWarning)
        return func(*args, **kwargs)


def _data(problem: dl.DeepLinearProblem) -> tuple[Reduced, Data]:
    red = Reduced.of(problem)
    return red, Data(red.A, red.s, red.rho, red.k, red.residual_sq)


# ------------------------------------------------------------------ brute force, k = 1
def _brute_force_rank_one(red: Reduced, grid: int = 720) -> float:
    """``min P(N)`` over ``N = a x w^T`` (``dH = r = 2``): a grid over the angles of the unit
    vectors ``x`` and ``w`` with ``a >= 0`` in closed form, polished from the best grid points.
    Works on the reduced objective directly, not through the branch-and-bound's bounds."""
    A, s, rho = red.A, red.s, red.rho
    const = 0.5 * red.residual_sq + 0.5 * float(np.vdot(A, A))

    def value(angles: np.ndarray) -> float:
        x = np.array([np.cos(angles[0]), np.sin(angles[0])])
        w = np.array([np.cos(angles[1]), np.sin(angles[1])])
        fit = float(x @ A @ w)
        cost = rho * float(np.linalg.norm(w / s))
        a = max(fit - cost, 0.0)
        return const - a * fit + 0.5 * a * a + a * cost

    alpha = np.linspace(0, 2 * np.pi, grid, endpoint=False)
    beta = np.linspace(0, np.pi, grid // 2, endpoint=False)
    X = np.stack([np.cos(alpha), np.sin(alpha)])
    W = np.stack([np.cos(beta), np.sin(beta)])
    fit = X.T @ A @ W
    cost = rho * np.linalg.norm(W / s[:, None], axis=0)[None, :]
    a = np.maximum(fit - cost, 0.0)
    values = const - a * fit + 0.5 * a * a + a * cost
    best = math.inf
    for flat in np.argsort(values, axis=None)[:5]:
        i, j = np.unravel_index(flat, values.shape)
        out = minimize(value, np.array([alpha[i], beta[j]]), method="Nelder-Mead",
                       options={"xatol": 1e-12, "fatol": 1e-16, "maxiter": 4000})
        best = min(best, float(out.fun), float(values[i, j]))
    return best


@pytest.mark.parametrize("seed", range(3))
def test_lower_bounds_match_brute_force_for_rank_one_outputs_of_two(seed) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, 3)) * 10.0 ** rng.uniform(-1, 0.5, size=3)
    Y = rng.standard_normal((2, 3))
    gamma = 10.0 ** rng.uniform(-2, -0.3) * np.linalg.norm(Y @ X.T, 2) / 2
    problem = dl.DeepLinearProblem(X, Y, (1,), gamma)
    red, data = _data(problem)
    brute = _brute_force_rank_one(red)
    for route in (Side(data, left=True), Side(data, left=False), RankOne(data)):
        # Bracket P* to 1e-6: close every cell whose bound is within that of the best value.
        out = branch_and_bound(route, -np.inf, np.inf, time_limit=30.0,
                               prune_at=lambda u: u - 1e-6 * abs(u))
        assert out.reason == "closed", (type(route).__name__, out.reason)
        assert out.lower <= brute + 1e-12 * data.zero_value, type(route).__name__
        assert out.lower >= brute * (1 - 3e-6), type(route).__name__
        assert out.upper >= brute - 1e-9 * data.zero_value  # nothing beats the minimum


# --------------------------------------------------------------- never a gap where zero
@settings(max_examples=8)
@given(st.integers(0, 10**6), st.sampled_from([1, 2]), st.sampled_from([1.0, 10.0, 100.0]),
       st.sampled_from([0.003, 0.03, 0.3]))
def test_lower_bounds_never_exceed_an_attainable_objective(seed, k, cond, frac) -> None:
    # Survey instances (whitened ones included, bypassing the theorem): the search's lower
    # bound stays below the objective of weights the library finds, and below the closed form.
    problem = survey.instance(seed, k=k, cond=cond, frac=frac)
    dual = _quiet(dl.solve_dual, problem)
    rec = _quiet(dl.recover, problem, dual)
    red, data = _data(problem)
    route = Side(data, left=True)
    out = branch_and_bound(route, -np.inf, np.inf, time_limit=3.0,
                           prune_at=lambda u: u - 1e-3 * abs(u))
    lower = out.lower * red.a**2
    assert lower <= rec.value + 1e-12 * problem.zero_value
    assert lower <= dual.dual_upper + 1e-12 * problem.zero_value or not dual.converged
    if problem.is_whitened:
        assert lower <= dl.closed_form(problem).value * (1 + 1e-12)


@pytest.mark.parametrize("cond", [1.0, 10.0])
def test_zero_gap_verdicts(cond) -> None:
    for seed in range(3):
        proof = dl.prove_gap(survey.instance(seed, k=2, cond=cond, frac=0.03))
        assert proof.verdict == "zero", proof.message
        assert proof.route in ("certificate", "theorem")
        assert proof.primal_lower <= proof.primal_upper
        assert proof.relative_gap == 0.0


def test_whitened_and_convex_instances_are_zero_by_theorem_even_uncertified() -> None:
    problem = survey.instance(0, k=2, cond=1.0, frac=0.03)
    dual = _quiet(dl.solve_dual, problem, max_iter=1, tol=1e-300)
    proof = dl.prove_gap(problem, dual, zero_tol=0.0)
    assert proof.verdict == "zero" and proof.route in ("theorem", "certificate")
    convex = survey.instance(0, k=3, cond=100.0, frac=0.03)
    assert dl.prove_gap(convex, zero_tol=0.0).verdict == "zero"


# ------------------------------------------------------------------ a proved gap, seeded
@pytest.fixture(scope="module")
def gap_problem() -> dl.DeepLinearProblem:
    return survey.instance(**GAP)


@pytest.fixture(scope="module")
def gap_proof(gap_problem) -> dl.GapProof:
    return dl.prove_gap(gap_problem, time_limit=60.0)


def test_seeded_instance_has_a_proved_duality_gap(gap_problem, gap_proof) -> None:
    proof = gap_proof
    assert proof.verdict == "gap", proof.message
    assert proof.route in ("left", "right") and proof.dimension == 2
    assert proof.primal_lower > proof.dual_upper + proof.rounding
    assert proof.relative_gap > 0
    assert proof.dual_lower <= proof.dual_upper
    assert proof.dual.status == "duality_gap"
    assert proof.dual.diagnostics.relaxed_rank > gap_problem.k
    # The weights are what they claim; the lower bound is below every objective found.
    assert dl.objective(gap_problem, proof.weights) == pytest.approx(proof.primal_upper,
                                                                     rel=1e-12)
    primal = _quiet(dl.solve_primal, gap_problem, restarts=20, seed=0)
    assert proof.primal_lower <= primal.value
    assert proof.primal_lower <= proof.primal_upper


def test_seeded_gap_against_the_conic_dual(gap_problem, gap_proof) -> None:
    for solver in ("SCS", "CLARABEL"):
        conic = _quiet(dl.solve_dual, gap_problem, method="cvxpy", solver=solver)
        assert conic.value <= gap_proof.dual_upper * (1 + 1e-12)
        assert conic.value == pytest.approx(gap_proof.dual_lower, rel=1e-6)


def _restricted_optimum(red: Reduced, z: np.ndarray) -> float:
    """``min {P(N) : z^T N = 0}`` by CVXPY (Clarabel) on the reduced data: the convex problem
    of one null direction, solved independently of the branch-and-bound's own solver."""
    import cvxpy as cp

    Q, _ = np.linalg.qr(np.column_stack([z, np.eye(z.size)]))
    perp = Q[:, 1:]
    N2 = cp.Variable((perp.shape[1], red.A.shape[1]))
    objective = (0.5 * red.residual_sq + 0.5 * cp.sum_squares(perp @ N2 - red.A)
                 + red.rho * cp.normNuc(N2 @ np.diag(1.0 / red.s)))
    prob = cp.Problem(cp.Minimize(objective))
    prob.solve(solver="CLARABEL")
    return float(prob.value)


def test_seeded_gap_bracketed_tightly_agrees_with_an_independent_solver(gap_problem,
                                                                        gap_proof) -> None:
    proof = dl.prove_gap(gap_problem, gap_proof.dual, rtol=1e-4, time_limit=60.0)
    assert proof.verdict == "gap"
    assert proof.primal_upper - proof.primal_lower <= 1e-4 * proof.primal_upper
    # Most of the apparent gap is proved, not only its sign.
    apparent = proof.primal_upper - proof.dual_upper
    assert proof.primal_lower - proof.dual_upper >= 0.9 * apparent
    # The best weights' left null direction, and P* restricted to it by Clarabel: between the
    # proved lower bound and the objective of the weights.
    red = Reduced.of(gap_problem)
    M = product(proof.weights)
    z = np.linalg.svd(M @ gap_problem.U)[0][:, -1]
    restricted = _restricted_optimum(red, z) * red.a**2
    assert proof.primal_lower <= restricted <= proof.primal_upper * (1 + 1e-7)
    # Local search does no better than the proved bound (here it does much worse: 20
    # L-BFGS restarts stop about 6e-3 above the optimum the search found).
    primal = _quiet(dl.solve_primal, gap_problem, restarts=20, seed=1)
    assert primal.value >= proof.primal_lower


def test_undecided_keeps_valid_intervals(gap_problem, gap_proof) -> None:
    proof = dl.prove_gap(gap_problem, gap_proof.dual, time_limit=1e-3)
    assert proof.verdict == "undecided"
    assert "time limit" in proof.message
    assert proof.dual_lower <= proof.primal_lower <= gap_proof.primal_lower + 1e-12
    assert proof.primal_upper >= gap_proof.primal_lower


def test_too_large_instances_are_undecided_not_guessed() -> None:
    problem = problem_of(GENERAL_CASES[0])  # dH = 6, k = 3: a Grassmannian of dimension 9
    dual = _quiet(dl.solve_dual, problem, max_iter=1)
    proof = dl.prove_gap(problem, dual, zero_tol=0.0, max_dimension=8)
    assert proof.verdict == "undecided" and proof.route == "too_large"
    assert proof.primal_lower == dual.value
    # The charts are counted, not listed: C(40, 30) of them would not fit in memory.
    rng = np.random.default_rng(0)
    big = dl.DeepLinearProblem(rng.standard_normal((40, 40)), rng.standard_normal((40, 40)),
                               (10,), 0.5)
    dual = _quiet(dl.solve_dual, big, max_iter=1, primal_refine=False)
    proof = dl.prove_gap(big, dual, zero_tol=0.0)
    assert proof.route == "too_large" and proof.dimension == 300


def test_progress_bar(gap_problem, gap_proof, capsys) -> None:
    proof = dl.prove_gap(gap_problem, gap_proof.dual, progress=True)
    assert proof.verdict == "gap"
    assert "prove_gap" in capsys.readouterr().err


def test_rank_one_route_on_request() -> None:
    with pytest.raises(ValueError, match="route"):
        dl.prove_gap(survey.instance(5, k=2, cond=10.0, frac=0.03), route="rank_one")
    proof = dl.prove_gap(survey.instance(5, k=1, cond=10.0, frac=0.03), route="rank_one")
    assert proof.verdict == "zero"


def test_grassmannian_routes_with_two_null_directions_bracket_the_certified_optimum() -> None:
    # k = 1 on 3 x 3 data: on both sides the null space has p = 2 columns (charts of Gr(2, 3)
    # with 2 x 1 boxes), where the centre's subspace is a plane, not a line.
    problem = survey.instance(7, k=1, cond=10.0, frac=0.03)
    dual = _quiet(dl.solve_dual, problem)
    assert dual.converged  # P* = D* is certified: an independent reference for both routes
    red, data = _data(problem)
    for left in (True, False):
        route = Side(data, left=left)
        assert route.p == 2 and route.chart_count == 3
        out = branch_and_bound(route, -np.inf, np.inf, time_limit=20.0,
                               prune_at=lambda u: u - 1e-4 * abs(u))
        assert out.reason == "closed"
        lower, upper = out.lower * red.a**2, out.upper * red.a**2
        assert lower <= dual.upper_bound * (1 + 1e-12)
        assert lower >= dual.value * (1 - 2e-4)
        assert upper >= dual.value * (1 - 1e-12)
