"""Several branches and weight decay (``duallinear.branches``): reductions, closed forms,
certified lower bounds, the output-coupled dual and gap(B).

Independent oracles: multi-branch L-BFGS restarts on the network itself, a brute-force
search over rank-one matrices (exact in the scale, dense grids in the directions), a dense
grid for the scalar problems, CVXPY on the convex nuclear-norm problem, and closed forms.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import make_X, make_Y, nuclear_norm_value, product, rel_diff
from duallinear import branches as br

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def quiet_primal(problem, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        return dl.solve_primal(problem, **kw)


def end_to_end(problem, weights):
    branches = weights if problem.branches > 1 else [weights]
    return sum(product(b) for b in branches)


def gaussian(d0, dH, n, seed, scale_rows=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d0, n))
    if scale_rows:
        X = X * rng.uniform(0.3, 2.0, (d0, 1))
    return X, rng.standard_normal((dH, n))


# -------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("H", [2, 3, 4])
@pytest.mark.parametrize("B", [2, 3])
def test_schatten_branches_reduce_to_one_chain(H, B) -> None:
    X, Y = gaussian(5, 4, 9, seed=10 * H + B)
    problem = dl.DeepLinearProblem(X, Y, (1,) * (H - 1), 0.15, branches=B)
    sol = dl.solve(problem)
    assert sol.exact and sol.K == B
    assert sol.upper == dl.objective(problem, sol.weights)
    assert len(sol.weights) == B
    # The same number from one chain of widths B d_i, built independently of solve().
    chain = br.chain_problem(problem)
    assert chain.hidden == (B,) * (H - 1) and chain.branches == 1
    assert rel_diff(dl.solve_dual(chain).value, sol.lower) <= 1e-10
    # Local search on the network itself: never below the certified bound, and its best
    # restart reaches it.
    primal = quiet_primal(problem, restarts=8, seed=1)
    assert np.all(primal.values >= sol.lower * (1 - 1e-9))
    assert rel_diff(primal.value, sol.lower) <= 1e-7
    # Fewer branches cannot fit better.
    fewer = dl.solve(dl.DeepLinearProblem(X, Y, (1,) * (H - 1), 0.15, branches=B - 1))
    assert fewer.lower >= sol.upper * (1 - 1e-9)


def test_one_chain_solve_is_solve_dual_and_recover() -> None:
    X, Y = gaussian(6, 4, 10, seed=3)
    problem = dl.DeepLinearProblem(X, Y, (2, 3), 0.2)
    sol = dl.solve(problem)
    dual = dl.solve_dual(problem, tol=1e-9)
    rec = dl.recover(problem, dual, tol=1e-9)
    assert sol.lower == dual.value and sol.upper == rec.value
    assert all(np.array_equal(u, v) for u, v in zip(sol.weights, rec.weights, strict=True))


@pytest.mark.parametrize("B", [1, 3])
def test_weight_decay_at_depth_two_solves_as_schatten_two(B) -> None:
    X, Y = gaussian(5, 4, 8, seed=4)
    a = dl.solve(dl.DeepLinearProblem(X, Y, (1,), 0.3, branches=B))
    b = dl.solve(dl.DeepLinearProblem(X, Y, (1,), 0.3, branches=B, penalty="frobenius"))
    assert (a.lower, a.upper, a.exact) == (b.lower, b.upper, b.exact)


def test_gamma_zero_weight_decay_is_reduced_rank_regression() -> None:
    X, Y = gaussian(5, 4, 8, seed=5)
    sol = dl.solve(dl.DeepLinearProblem(X, Y, (1, 1), 0.0, branches=2, penalty="frobenius"))
    fit = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T @ X
    sv = np.linalg.svd(fit, compute_uv=False)
    expected = 0.5 * float(np.sum((Y - fit) ** 2)) + 0.5 * float(np.sum(sv[2:] ** 2))
    assert sol.exact and rel_diff(sol.lower, expected) <= 1e-9


# ---------------------------------------------------------------------- closed forms
@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.0, 10.0), lam=st.floats(1e-3, 5.0), H=st.integers(2, 5))
def test_threshold_is_the_scalar_minimum(a, lam, H) -> None:
    p = 2.0 / H
    x, h = br._threshold(np.array([a]), lam, p)
    grid = np.linspace(0.0, max(a, 1e-9) * 1.01, 200001)
    values = 0.5 * (grid - a) ** 2 + lam * grid**p
    assert h[0] <= values.min() + 1e-12
    assert abs(h[0] - (0.5 * (x[0] - a) ** 2 + lam * x[0] ** p)) <= 1e-12
    assert h[0] >= values.min() - 1e-6 * max(1.0, a * a)


@pytest.mark.parametrize("H", [3, 4])
@pytest.mark.parametrize("B", [1, 2])
def test_whitened_weight_decay_closed_form_against_restarts(H, B) -> None:
    rng = np.random.default_rng(20 + H + B)
    Y = rng.standard_normal((5, 5))
    problem = dl.DeepLinearProblem(np.eye(5), Y, (1,) * (H - 1), 0.2, branches=B,
                                   penalty="frobenius")
    value, N = br.whitened_optimum(problem)
    sol = dl.solve(problem)
    # Lowered for rounding in the reduction of X = I only: a margin at rounding level.
    assert sol.exact and sol.lower == value - sol.rounding
    assert 0.0 < sol.rounding <= 1e-12 * value
    assert rel_diff(sol.upper, value) <= 1e-12
    assert np.linalg.matrix_rank(N, tol=1e-9) <= problem.K
    primal = quiet_primal(problem, restarts=20, seed=0)
    assert np.all(primal.values >= value * (1 - 1e-10))
    assert rel_diff(primal.value, value) <= 1e-8


def test_whitened_closed_form_scales_with_c() -> None:
    # X = c I: the same as X = I with the penalty weight divided by c^p.
    rng = np.random.default_rng(7)
    Y = rng.standard_normal((4, 4))
    for H in (2, 3, 4):
        p = 2.0 / H if H > 2 else 1.0
        c = 3.0
        scaled = dl.DeepLinearProblem(c * np.eye(4), Y, (2,) * (H - 1), 0.3,
                                      penalty="frobenius")
        plain = dl.DeepLinearProblem(np.eye(4), Y, (2,) * (H - 1), 0.3 * c ** (-p),
                                     penalty="frobenius")
        assert rel_diff(br.whitened_optimum(scaled)[0], br.whitened_optimum(plain)[0]) <= 1e-12


# ---------------------------------------------------------------------- lower bounds
def brute_force_rank_one(problem: dl.DeepLinearProblem, n: int = 150) -> float:
    """``min over rank-1 M`` of the reduced objective for 2 x 2 reduced data: exact in the
    scale (the scalar problem), a dense grid and zooming in the two directions."""
    A, s, lam = problem.A, problem.s, problem.rho
    p = 1.0 if problem.is_schatten else 2.0 / problem.depth
    const = 0.5 * problem.residual_sq + 0.5 * float(np.sum(A * A))

    def value(tu, tv):
        u = np.stack([np.cos(tu), np.sin(tu)], -1)
        Sv = np.stack([np.cos(tv), np.sin(tv)], -1) * s
        alpha = np.sum(Sv * Sv, -1)
        b = np.abs(np.einsum("...i,ij,...j->...", u, A, Sv)) / alpha
        # 1/2 ||sigma u v^T S - A||^2 + lam sigma^p = const + alpha (1/2 (sigma - b)^2 - b^2/2
        # + (lam / alpha) sigma^p), minimised over 0 <= sigma <= b by a zooming grid too.
        lo, width = np.zeros_like(b), b.copy()
        for _ in range(8):
            sig = lo[..., None] + width[..., None] * np.linspace(0.0, 1.0, 41)
            h_all = 0.5 * (sig - b[..., None]) ** 2 + (lam / alpha)[..., None] * sig**p
            j = np.argmin(h_all, -1)
            h = np.take_along_axis(h_all, j[..., None], -1)[..., 0]
            centre = np.take_along_axis(sig, j[..., None], -1)[..., 0]
            width = width / 10
            lo = np.maximum(centre - width / 2, 0.0)
        return const - 0.5 * alpha * b * b + alpha * np.minimum(h, 0.5 * b * b)

    grid = np.linspace(0.0, np.pi, n)
    tu, tv = np.meshgrid(grid, grid, indexing="ij")
    V = value(tu, tv)
    i = np.unravel_index(np.argmin(V), V.shape)
    best, cu, cv, w = float(V[i]), tu[i], tv[i], np.pi / n
    for _ in range(12):
        g = np.linspace(-w, w, 21)
        TU, TV = np.meshgrid(cu + g, cv + g, indexing="ij")
        V = value(TU, TV)
        j = np.unravel_index(np.argmin(V), V.shape)
        if V[j] < best:
            best, cu, cv = float(V[j]), TU[j], TV[j]
        w /= 3
    return min(best, problem.zero_value)


@pytest.mark.parametrize("seed", range(6))
def test_weight_decay_bounds_against_brute_force(seed) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, 4)) * rng.uniform(0.3, 2.0, (2, 1))
    Y = rng.standard_normal((2, 4))
    H = 3 + seed % 2
    problem = dl.DeepLinearProblem(X, Y, (1,) * (H - 1), [0.05, 0.1, 0.3][seed % 3],
                                   penalty="frobenius")
    truth = brute_force_rank_one(problem)
    sol = dl.solve(problem)
    bound = br.weight_decay_lower_bound(problem)
    # The brute force is itself an upper bound (a grid): allow its resolution on that side.
    assert sol.lower <= truth * (1 + 1e-12) and bound.value <= truth * (1 + 1e-12)
    assert sol.upper >= truth * (1 - 1e-9)
    assert sol.upper <= truth * (1 + 1e-9)
    # The bound is at least as good as each family it combines (the chord bound too).
    # (Up to rounding: the combined bound and the comparison one can be the same number
    # computed two ways, seen 2 ulps apart with numpy 1.26.)
    # value is lowered by the rounding margin for X as given; the families are not.
    assert bound.value + bound.rounding >= max(bound.chord, bound.comparison) * (1 - 1e-14)
    assert 0.0 <= bound.rounding <= 1e-12 * truth
    assert (truth - sol.lower) / truth <= 0.05


def test_singular_value_bound_holds_at_the_optimum() -> None:
    for seed in range(4):
        X, Y = gaussian(4, 3, 7, seed, scale_rows=True)
        for H in (3, 4):
            problem = dl.DeepLinearProblem(X, Y, (2,) * (H - 1), 0.2, penalty="frobenius")
            sol = dl.solve(problem)
            M = end_to_end(problem, sol.weights)
            T = br.singular_value_bound(problem)
            assert np.linalg.norm(M, 2) <= T * (1 + 1e-9)
            assert br.singular_value_bound(problem, upper=sol.upper) <= T


@st.composite
def small_problems(draw):
    kind = draw(st.sampled_from(["identity", "gaussian", "rank_deficient", "ill_conditioned"]))
    d0 = draw(st.integers(2, 4))
    dH = draw(st.integers(1, 3))
    n = d0 if kind == "identity" else d0 + draw(st.integers(0, 3))
    H = draw(st.integers(2, 4))
    B = draw(st.integers(1, 3))
    k = draw(st.integers(1, 2))
    penalty = draw(st.sampled_from(["schatten", "frobenius"]))
    gamma = draw(st.sampled_from([0.0, 0.02, 0.2, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = make_X(kind, d0, n, rng, rank=1 if kind == "rank_deficient" else None, cond=30.0)
    Y = make_Y("gaussian", dH, n, rng)
    return dl.DeepLinearProblem(X, Y, (k,) * (H - 1), gamma, branches=B, penalty=penalty)


@settings(max_examples=30, deadline=None)
@given(problem=small_problems(), seed=st.integers(0, 1000))
def test_every_lower_bound_is_below_every_primal_value(problem, seed) -> None:
    sol = dl.solve(problem, restarts=2, seed=seed)
    primal = quiet_primal(problem, restarts=3, seed=seed, max_iter=3000)
    slack = 1e-9 * max(abs(sol.lower), problem.zero_value)
    assert sol.lower <= sol.upper + slack
    assert np.all(primal.values >= sol.lower - slack), (primal.values, sol.message)
    assert sol.upper == dl.objective(problem, sol.weights)
    if (problem.is_whitened or problem.gamma == 0) and problem.rank == min(problem.X.shape):
        # closed forms and reduced-rank regression (X without directions dropped as rounding)
        assert sol.exact, sol.message


# ------------------------------------------------------------ output-coupled dual, gap(B)
def test_gap_curve_whitened_matches_the_formula() -> None:
    rng = np.random.default_rng(11)
    d = 12
    Y = rng.standard_normal((d, d))
    for H in (2, 3, 4):
        gamma = 1.2 / H  # rho = 1.2
        problem = dl.DeepLinearProblem(np.eye(d), Y, (1,) * (H - 1), gamma)
        sigma = np.linalg.svd(Y, compute_uv=False)
        t = problem.rho
        rank = int(np.sum(sigma > t))
        curve = br.gap_curve(problem, range(1, d + 1))
        assert curve.zero_from == rank and curve.dual.rank == rank
        expected = np.array([0.5 * float(np.sum(np.maximum(sigma[B:] - t, 0.0) ** 2))
                             for B in range(1, d + 1)])
        # The bounds hold for X as given: each side moves by at most about
        # ||M||_2 ||R||_F ||X - X_hat||_F <= ||Y||_F^2 problem.rounding.
        atol = 1e-12 + 2.0 * float(np.sum(Y * Y)) * problem.rounding
        np.testing.assert_allclose(curve.gap_upper, expected, rtol=1e-9, atol=atol)
        np.testing.assert_allclose(curve.gap_lower, expected, rtol=1e-9, atol=atol)
        assert np.all(curve.gap_lower <= expected + 1e-12)
        assert np.all(curve.gap_upper >= expected - 1e-12)
        assert np.all(np.diff(curve.gap_upper) <= 1e-12)
        assert np.all(curve.gap_upper[rank - 1:] <= atol) and curve.gap_upper[rank - 2] > 0


@pytest.mark.parametrize("H", [2, 3])
def test_gap_curve_general_x(H) -> None:
    X, Y = gaussian(8, 6, 14, seed=H)
    problem = dl.DeepLinearProblem(X, Y, (1,) * (H - 1), 0.4)
    dual = br.output_coupled_dual(problem)
    # The output-coupled dual is the convex nuclear-norm problem: CVXPY from X and Y.
    assert rel_diff(dual.lower, nuclear_norm_value(X, Y, problem.rho)) <= 1e-6
    assert dual.certified and 1 <= dual.rank <= 6
    curve = br.gap_curve(problem, range(1, 7))
    assert curve.zero_from == dual.rank
    assert np.all(np.diff(curve.upper) <= 0) and np.all(np.diff(curve.lower) <= 0)
    # Independently of the curve: each P*(B) from the chain of bottleneck B.
    raw = []
    for B in range(1, 7):
        res = dl.solve_dual(br.chain_problem(dl.DeepLinearProblem(
            X, Y, (1,) * (H - 1), 0.4, branches=B)))
        raw.append((res.value, res.upper_bound))
        assert curve.lower[B - 1] <= res.upper_bound * (1 + 1e-9)
        assert res.value <= curve.upper[B - 1] * (1 + 1e-9)
    for B in range(1, 7):
        if B >= dual.rank:
            assert curve.gap_upper[B - 1] <= 1e-9 * curve.upper[B - 1]
        else:
            # Strictly positive before rank M_cvx: the convex optimum is unique.
            assert curve.gap_lower[B - 1] > 1e-7 * curve.upper[B - 1]
    values = np.array([v for v, _ in raw])
    assert np.all(np.diff(values) <= 1e-9 * values[:-1])


def test_gap_curve_in_parallel_is_the_same_curve() -> None:
    X, Y = gaussian(6, 5, 12, seed=8)
    problem = dl.DeepLinearProblem(X, Y, (1,), 0.3)
    serial = br.gap_curve(problem)
    parallel = br.gap_curve(problem, n_jobs=2)
    np.testing.assert_allclose(parallel.lower, serial.lower, rtol=1e-12)
    np.testing.assert_allclose(parallel.upper, serial.upper, rtol=1e-12)


def test_output_coupled_dual_is_vacuous_for_weight_decay() -> None:
    X, Y = gaussian(3, 2, 6, seed=1)
    problem = dl.DeepLinearProblem(X, Y, (2, 2), 0.1, penalty="frobenius")
    dual = br.output_coupled_dual(problem)
    assert dual.vacuous and dual.rank is None
    # The least-squares residual of the reduction, within rounding margins for X as given.
    c0 = 0.5 * problem.residual_sq
    assert dual.lower <= c0 <= dual.upper
    assert dual.upper - dual.lower <= 4.0 * float(np.sum(Y * Y)) * problem.rounding
    # Why: the inner minimum of one branch along t * (rank-one M) goes to -inf.
    Lam = np.random.default_rng(0).standard_normal((2, 6))
    C = Lam @ X.T
    u, _, vt = np.linalg.svd(C)
    t = np.array([1e2, 1e4, 1e6])
    inner = problem.rho * t ** (2 / 3) - t * np.linalg.norm(C, 2)
    assert np.all(np.diff(inner) < 0) and inner[-1] < -1e5
    with pytest.raises(ValueError, match="vacuous"):
        br.gap_curve(problem)
    # At H = 2 weight decay is S_2: not vacuous.
    assert not br.output_coupled_dual(
        dl.DeepLinearProblem(X, Y, (2,), 0.1, penalty="frobenius")).vacuous


def test_gap_curve_default_range_and_zero_from() -> None:
    problem = dl.DeepLinearProblem(np.eye(3), np.diag([3.0, 2.0, 0.5]), (1,), 0.5)
    curve = br.gap_curve(problem)
    assert curve.branches.tolist() == [1, 2] and curve.zero_from == 2
    assert math.isclose(curve.gap_upper[0], 0.5)


# ------------------------------------------------------------------------- budget form
def budget_problem(d, H, B, seed, k=1, penalty="frobenius", c=1.0, dH=None):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((dH or d, d))
    return dl.DeepLinearProblem(c * np.eye(d), Y, (k,) * (H - 1), 0.0, branches=B,
                                penalty=penalty)


def allocation_brute_force(a, beta, p, n=200001, rng=None):
    """``min sum 1/2 (x_j - a_j)^2`` s.t. ``sum x_j^p <= beta`` by searching over how the
    budget is shared: given a share ``u_j`` the best ``x_j`` is ``min(a_j, u_j^(1/p))``.
    Exact grid for two values, random shares for more (an upper bound either way)."""
    if a.size == 1:
        x = min(a[0], beta ** (1 / p))
        return 0.5 * (x - a[0]) ** 2
    if a.size == 2:
        u = np.linspace(0.0, beta, n)[:, None] * np.array([1.0, -1.0]) + np.array([0.0, beta])
    else:
        rng = rng or np.random.default_rng(0)
        u = beta * np.vstack([rng.dirichlet(np.full(a.size, 0.3), n // 2),
                              rng.dirichlet(np.ones(a.size), n // 2)])
    x = np.minimum(np.maximum(u, 0.0) ** (1 / p), a)
    return float(np.min(0.5 * np.sum((x - a) ** 2, axis=1)))


def budget_local_search(problem, budget, restarts, seed):
    """Best of L-BFGS restarts on the network's weights on the sphere of the budget: the
    weights are ``sqrt(budget) theta / ||theta||`` (the budget is spent at the optimum when
    the unconstrained fit costs more)."""
    from scipy.optimize import minimize

    loss_problem = problem.with_gamma(0.0)
    shapes = problem.weight_shapes
    sizes = [int(np.prod(s)) for s in shapes]
    B = problem.branches

    def unpack(theta):
        W = np.sqrt(budget) * theta / np.linalg.norm(theta)
        parts, i = [], 0
        for _ in range(B):
            chain = []
            for shape, size in zip(shapes, sizes, strict=True):
                chain.append(W[i:i + size].reshape(shape))
                i += size
            parts.append(chain)
        return parts if B > 1 else parts[0]

    def fun(theta):
        weights = unpack(theta)
        grads = dl.gradient(loss_problem, weights)
        flat = np.concatenate([g.ravel() for g in (sum(grads, []) if B > 1 else grads)])
        norm = np.linalg.norm(theta)
        unit = theta / norm
        g = np.sqrt(budget) / norm * (flat - np.dot(flat, unit) * unit)
        return dl.objective(loss_problem, weights), g

    rng = np.random.default_rng(seed)
    best = math.inf
    for _ in range(restarts):
        res = minimize(fun, rng.standard_normal(B * sum(sizes)), jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15})
        best = min(best, float(res.fun))
    return best


@settings(max_examples=80, deadline=None)
@given(a=st.lists(st.floats(0.05, 5.0), min_size=1, max_size=3), H=st.integers(3, 6),
       share=st.floats(0.02, 1.2))
def test_budget_primal_is_the_minimum_over_shares(a, H, share) -> None:
    a = np.sort(np.array(a))[::-1]
    p = 2.0 / H
    beta = share * float(np.sum(a**p))
    value, x = br._budget_primal(a, beta, p)
    assert np.all(x >= 0) and float(np.sum(x**p)) <= beta * (1 + 1e-14)
    assert value == pytest.approx(0.5 * float(np.sum((x - a) ** 2)), rel=1e-14, abs=1e-300)
    truth = allocation_brute_force(a, beta, p)
    # The search is an upper bound; with two values its grid is fine enough for 1e-7.
    assert value <= truth + 1e-12 * max(1.0, truth)
    if a.size <= 2:
        assert value >= truth - 1e-7 * max(1.0, float(np.dot(a, a)))


@pytest.mark.parametrize(("H", "B", "frac"), [(3, 1, 0.3), (3, 2, 0.3), (4, 2, 0.5),
                                              (3, 3, 0.15)])
def test_budget_form_against_restarts_on_the_network(H, B, frac) -> None:
    problem = budget_problem(3, H, B, seed=40 + H + B)
    sigma = np.linalg.svd(problem.Y, compute_uv=False)
    budget = frac * H * float(np.sum(sigma[:B] ** (2.0 / H)))  # below the rank-B fit's cost
    sol = dl.budget_form(problem, budget)
    assert sol.spent <= budget * (1 + 1e-12)
    # The weights attain the value, and no restart on the network finds less.
    assert rel_diff(dl.objective(problem.with_gamma(0.0), sol.weights), sol.value) <= 1e-12
    found = budget_local_search(problem, budget, restarts=12, seed=H + B)
    assert found >= sol.value * (1 - 1e-9)
    assert rel_diff(found, sol.value) <= 1e-6


def test_budget_dual_is_the_weight_decay_optimum_minus_the_budget() -> None:
    # g(lam) from an independent route: whitened_optimum of the weight-decay problem.
    problem = budget_problem(5, 3, 2, seed=3)
    budget = 2.0
    sol = dl.budget_form(problem, budget)
    lam = np.concatenate([np.geomspace(1e-3, 10.0, 60), [sol.multiplier]])
    g = np.array([br.whitened_optimum(problem.with_gamma(v))[0] - v * budget for v in lam])
    assert np.all(g <= sol.dual_value + 1e-12 * sol.value)
    assert rel_diff(g[-1], sol.dual_value) <= 1e-12
    assert np.max(g) >= sol.dual_value - 1e-9 * sol.value
    # g is concave (a minimum of affine functions of lam): on an even grid its second
    # differences are <= 0.
    even = np.linspace(0.0, 3.0 * sol.multiplier, 61)
    g_even = [br.whitened_optimum(problem.with_gamma(v))[0] - v * budget for v in even]
    assert np.all(np.diff(g_even, 2) <= 1e-12 * sol.value)
    assert sol.dual_value < sol.value  # H = 3 with two branches: a gap on this instance


@st.composite
def budget_instances(draw):
    d = draw(st.integers(1, 4))
    dH = draw(st.integers(1, 4))
    H = draw(st.integers(2, 5))
    B = draw(st.integers(1, 3))
    k = draw(st.integers(1, 2))
    penalty = draw(st.sampled_from(["frobenius", "frobenius", "schatten"]))
    c = draw(st.sampled_from([1.0, 0.3, 4.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    share = draw(st.floats(0.01, 1.5))
    problem = budget_problem(d, H, B, seed, k=k, penalty=penalty, c=c, dH=dH)
    p = 1.0 if penalty == "schatten" else 2.0 / H
    sigma = np.linalg.svd(problem.A, compute_uv=False)[:problem.K]
    return problem, share * H * c ** (-p) * max(float(np.sum(sigma**p)), 1e-3)


@settings(max_examples=60, deadline=None)
@given(case=budget_instances(), seed=st.integers(0, 1000))
def test_budget_weak_duality_and_the_gap_bound(case, seed) -> None:
    problem, budget = case
    sol = dl.budget_form(problem, budget)
    scale = max(sol.value, 1e-300)
    assert sol.dual_value <= sol.value
    assert sol.value - sol.dual_value <= sol.gap_bound + 1e-10 * max(1.0, sol.value)
    assert sol.spent <= budget * (1 + 1e-12)
    # Weak duality at any multiplier, and the value below random feasible weights.
    rng = np.random.default_rng(seed)
    lam = float(rng.exponential(1.0))
    assert (br.whitened_optimum(problem.with_gamma(lam))[0] - lam * budget
            <= sol.value + 1e-12 * scale)
    loss = problem.with_gamma(0.0)
    for _ in range(3):
        W = [[rng.standard_normal(s) for s in problem.weight_shapes]
             for _ in range(problem.branches)]
        spent = br._spent(problem, W if problem.branches > 1 else W[0])
        factor = (budget / spent) ** (1.0 / (problem.depth if problem.is_schatten else 2.0))
        W = [[w * factor for w in chain] for chain in W]
        W = W if problem.branches > 1 else W[0]
        assert dl.objective(loss, W) >= sol.value * (1 - 1e-12)
    if problem.is_schatten or problem.depth == 2:
        # p = 1: the per-value problems are convex, the dual is tight.
        assert sol.relative_gap <= 1e-9, sol.message


def test_budget_nonconvexity_constant_against_a_dense_hull() -> None:
    tau = np.linspace(0.0, 1.0, 400001)
    for H in (3, 4, 5):
        psi = 0.5 * (1.0 - tau ** (H / 2.0)) ** 2
        # The hull leaves (0, 1/2) along the lowest chord, then follows psi (convex there).
        slopes = (psi[1:] - 0.5) / tau[1:]
        i = int(np.argmin(slopes)) + 1
        hull = np.where(tau <= tau[i], 0.5 + slopes[i - 1] * tau, psi)
        assert np.all(hull <= psi + 1e-15)
        expected = float(np.max(psi - hull))
        assert br._nonconvexity(2.0 / H) == pytest.approx(expected, rel=1e-6)
    assert br._nonconvexity(1.0) == 0.0


def test_budget_gap_bound_is_nearly_attained() -> None:
    # Two equal-cost ways to spend a small budget on one value: the bound is tight to 1%.
    problem = dl.DeepLinearProblem(np.eye(2), np.diag([2.0, 1.0]), (1, 1), 0.0,
                                   penalty="frobenius", branches=2)
    sol = dl.budget_form(problem, 1.0)
    assert 0.99 * sol.gap_bound <= sol.value - sol.dual_value <= sol.gap_bound


def test_budget_gap_against_the_number_of_branches() -> None:
    # The gap is not monotone in B for linear branches: at B = 1 the one value's problem is
    # in its convex part, at B = 2 the dual mixes two values. From B k >= rank on, nothing
    # changes (both the primal and the dual only see the top B k values).
    Y = np.diag([2.0, 1.5, 0.5])
    gaps, values = [], []
    for B in (1, 2, 3, 4):
        problem = dl.DeepLinearProblem(np.eye(3), Y, (1, 1), 0.0, penalty="frobenius",
                                       branches=B)
        sol = dl.budget_form(problem, 4.5)
        gaps.append(sol.value - sol.dual_value)
        values.append(sol.value)
        assert gaps[-1] <= sol.gap_bound + 1e-12
    assert np.all(np.diff(values) <= 1e-15)  # the optimum does not increase with B
    assert gaps[0] <= 1e-12 < 1e-2 < gaps[1]
    assert gaps[3] == pytest.approx(gaps[2], abs=1e-14)


def test_regression_budget_form_on_nearly_whitened_x_reports_its_rounding() -> None:
    # X counts as whitened when its singular values agree to WHITENED_RTOL (1e-10); here they
    # spread by 5e-11. value is exact for s_1 U V^T, and the weights' objective on X itself
    # was 3e-12 (relative) above it while nothing said so: BudgetSolution.rounding covers it.
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((6, 4)))[0]
    X = (U * (2.0 * (1.0 - 5e-11 * np.linspace(0.0, 1.0, 4)))) @ V.T
    Y = 3.0 * rng.standard_normal((3, 6))
    problem = dl.DeepLinearProblem(X, Y, (2, 2), 0.0, penalty="frobenius")
    assert problem.is_whitened
    sol = dl.budget_form(problem, 2.0)
    # The weights' objective on the original X and Y, in 40-digit arithmetic.
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    out = mp.matrix(X.tolist())
    for W in sol.weights:
        out = mp.matrix(W.tolist()) * out
    attained = float(sum((out[i, j] - mp.mpf(float(Y[i, j]))) ** 2
                         for i in range(Y.shape[0]) for j in range(Y.shape[1])) / 2)
    assert rel_diff(attained, dl.objective(problem.with_gamma(0.0), sol.weights)) <= 1e-13
    assert attained - sol.value > 1e-12 * sol.value  # (the surrogate's value is not attained)
    assert attained <= sol.value + sol.rounding
    assert sol.rounding <= 1e-10 * sol.value and "whitened only to" in sol.message
    # Exactly whitened X: rounding level only, and nothing in the message.
    exact = dl.budget_form(dl.DeepLinearProblem(np.eye(2), np.diag([2.0, 1.0]), (1, 1), 0.0,
                                                penalty="frobenius", branches=2), 1.0)
    assert 0.0 < exact.rounding <= 1e-14 * exact.value and "whitened only" not in exact.message


def test_budget_form_inputs() -> None:
    problem = budget_problem(3, 3, 1, seed=0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="budget"):
            dl.budget_form(problem, bad)
    with pytest.raises(TypeError, match="budget"):
        dl.budget_form(problem, "1")
    gaussian_x = dl.DeepLinearProblem(*gaussian(3, 2, 5, seed=0), (1, 1), 0.0,
                                      penalty="frobenius")
    with pytest.raises(ValueError, match="whitened"):
        dl.budget_form(gaussian_x, 1.0)
    # A budget larger than the fit's cost: the rank-K least-squares fit, no gap.
    sol = dl.budget_form(problem, 1e6)
    sigma = np.linalg.svd(problem.Y, compute_uv=False)
    assert rel_diff(sol.value, 0.5 * float(np.sum(sigma[1:] ** 2))) <= 1e-12
    assert sol.relative_gap <= 1e-12


def test_budget_primal_on_many_pairs() -> None:
    # Two values, where the search over shares is exact to its grid: about half of these
    # optima have the smaller value on the smaller root of its stationarity equation.
    rng = np.random.default_rng(5)
    for _ in range(300):
        H = int(rng.integers(3, 7))
        p = 2.0 / H
        a = np.sort(rng.uniform(0.05, 5.0, 2) * rng.choice([1.0, 0.1], 2))[::-1]
        beta = rng.uniform(0.01, 1.0) * float(np.sum(a**p))
        value, _ = br._budget_primal(a, beta, p)
        truth = allocation_brute_force(a, beta, p, n=20001)
        assert value <= truth + 1e-12 * max(1.0, truth)
        assert value >= truth - 1e-5 * float(np.dot(a, a))


# ------------------------------------------------------------- the data as given (rounding)
def exact_objective(problem, weights, X, Y, digits=50):
    """The objective of ``weights`` on the original ``X``, ``Y`` in ``digits``-digit
    arithmetic (mpmath), from the exact float64 entries; either penalty, any branches."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = digits

    def mat(a):
        return mp.matrix([[mp.mpf(float(v)) for v in row] for row in np.atleast_2d(a)])

    chains = weights if problem.branches > 1 else [weights]
    F = mp.zeros(Y.shape[0], X.shape[1])
    penalty = mp.mpf(0)
    Xm = mat(X)
    for chain in chains:
        Z = Xm
        for W in chain:
            Wm = mat(W)
            Z = Wm * Z
            if problem.is_schatten:
                sv = mp.svd_r(Wm, compute_uv=False) if W.size else []
                penalty += sum(abs(v) ** problem.depth for v in sv)
            else:
                penalty += sum(v * v for v in Wm)
        F += Z
    R = F - mat(Y)
    return float(sum(v * v for v in R) / 2 + mp.mpf(float(problem.gamma)) * penalty)


def test_dropped_direction_of_whitened_x_is_accounted_for() -> None:
    # X = diag(1, 1, 1e-17): the reduction drops the third direction (below the rank cut), so
    # the closed form is for diag(1, 1, 0). With weight decay this small, fitting Y's third
    # direction with ||M|| = 1e17 pays: the optimum for X as given is about 0.49 lower, and a
    # bound taken from the reduction alone would be above the weights built here.
    X = np.diag([1.0, 1.0, 1e-17])
    Y = np.diag([3.0, 2.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConditioningWarning)
        problem = dl.DeepLinearProblem(X, Y, (3, 3), 1e-14, penalty="frobenius")
    assert problem.rank == 2 and problem.is_whitened
    sol = dl.solve(problem)
    reduced = br.whitened_optimum(problem)[0]
    # Diagonal weights (Y and X are diagonal) keep the small values exact next to 1e17.
    m = np.diag(end_to_end(problem, sol.weights)).copy()
    assert np.allclose(end_to_end(problem, sol.weights), np.diag(m), atol=1e-12)
    m[2] = 1e17
    better = [np.diag(np.cbrt(m)) for _ in range(3)]
    exact_better = exact_objective(problem, better, X, Y)
    assert exact_better < reduced - 0.4  # the reduction's optimum is not a bound here
    assert sol.lower <= exact_better
    assert sol.lower <= exact_objective(problem, sol.weights, X, Y)
    assert sol.rounding > 0 and not sol.exact and "rounding" in sol.message
    bound = br.weight_decay_lower_bound(problem)
    assert bound.value <= exact_better


def test_dropped_direction_in_the_output_coupled_dual() -> None:
    X = np.diag([1.0, 1.0, 1e-17])
    Y = np.diag([3.0, 2.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConditioningWarning)
        schatten = dl.DeepLinearProblem(X, Y, (1,), 1e-19)
        decay = dl.DeepLinearProblem(X, Y, (1, 1), 1e-19, penalty="frobenius")
    # P_cvx for X as given is at most the objective of the convex minimiser of the reduction
    # plus the third direction fitted (nuclear norm 1e17, cost rho 1e17 = 2e-2).
    dual = br.output_coupled_dual(schatten)
    M = np.diag([3.0 - 2e-19, 2.0 - 2e-19, 1e17])
    loss = 0.5 * float(np.sum((M @ X - Y) ** 2))
    assert dual.lower <= loss + schatten.rho * float(np.sum(np.abs(np.diag(M))))
    assert dual.lower <= 0.5 * 1.0 ** 2  # without the margin it would be 1/2 (the third)
    # The vacuous dual is the least-squares residual over X as given: 0 here.
    assert br.output_coupled_dual(decay).lower == 0.0


@pytest.mark.parametrize(("cond", "seed"), [(1e8, 0), (1e10, 1), (1e12, 2)])
def test_ill_conditioned_weight_decay_lower_is_below_the_exact_objective(cond, seed) -> None:
    rng = np.random.default_rng(seed)
    d0, n, dH = 3, 6, 2
    Ux = np.linalg.qr(rng.standard_normal((d0, d0)))[0]
    Vx = np.linalg.qr(rng.standard_normal((n, d0)))[0]
    X = (Ux * np.geomspace(1.0, 1.0 / cond, d0)) @ Vx.T
    # Y leans on the weakest direction of X, which small weight decay fits with a large M.
    Y = rng.standard_normal((dH, n)) + 3.0 * rng.standard_normal((dH, 1)) * Vx[:, -1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConditioningWarning)
        problem = dl.DeepLinearProblem(X, Y, (1, 1), 1e-3 / cond ** (2.0 / 3.0),
                                       penalty="frobenius")
    assert problem.rank == d0 and problem.condition_number > cond / 10
    sol = dl.solve(problem, restarts=2, seed=seed)
    exact = exact_objective(problem, sol.weights, X, Y)
    assert sol.lower <= exact
    # (upper is the float64 objective: at cond 1e12 it is 3e-6 off the exact value.)
    assert rel_diff(exact, sol.upper) <= 1e-5
    # Regression: upper (evaluated on the reduction) lies below the objective for X as given
    # (4.5e-9 relative at cond 1e8 here, up to 3e-14 on fuzzed cond 1e8..1e13 instances);
    # the gap is taken from upper + upper_rounding, which bounds it.
    assert exact <= sol.upper + sol.upper_rounding
    assert sol.relative_gap >= rel_diff(sol.upper + sol.upper_rounding, sol.lower) * (1 - 1e-12)
    # The margin is within a small factor of the first-order sensitivity of the objective at
    # the weights found, ||M||_2 ||R||_F ||X - X_hat||_F (measured: 1.3x to 3x).
    M = end_to_end(problem, sol.weights)
    first = np.linalg.norm(M, 2) * math.sqrt(2.0 * sol.upper) * problem.rounding
    assert 0.0 < sol.rounding <= 4.0 * first
