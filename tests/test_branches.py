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
    assert sol.exact and sol.lower == value
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
    assert bound.value >= max(bound.chord, bound.comparison) * (1 - 1e-14)
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
        expected = [0.5 * float(np.sum(np.maximum(sigma[B:] - t, 0.0) ** 2))
                    for B in range(1, d + 1)]
        np.testing.assert_allclose(curve.gap_upper, expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(curve.gap_lower, expected, rtol=1e-9, atol=1e-12)
        assert np.all(np.diff(curve.gap_upper) <= 1e-12)
        assert np.all(curve.gap_upper[rank - 1:] <= 1e-12) and curve.gap_upper[rank - 2] > 0


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
    assert dual.lower == dual.upper == 0.5 * problem.residual_sq
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
