"""The problem object: validation at the boundary, derived quantities, immutability, and the
sufficient-statistics constructor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import duallinear as dl
from cases import (
    GENERAL_CASES,
    IDENTITY_CASES,
    make_X,
    make_Y,
    problem_of,
    rel_diff,
    row_space_projector,
)

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _data(d0: int = 4, dH: int = 3, n: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d0, n)), rng.standard_normal((dH, n))


# --------------------------------------------------------------------- derived fields
@pytest.mark.parametrize("case", GENERAL_CASES[::3] + IDENTITY_CASES[::4], ids=lambda c: c.id)
def test_reduction_matches_the_data(case) -> None:
    """U, s, A and residual_sq reproduce X and Y's projections (MATH.md section 4)."""
    problem = problem_of(case)
    X, Y, gamma = case.data()
    H = len(case.hidden) + 1
    assert problem.depth == H and problem.k == min(case.hidden)
    assert problem.dims == (X.shape[0], *case.hidden, Y.shape[0])
    assert problem.rho == pytest.approx(gamma * H, rel=1e-15)
    assert problem.weight_shapes == [(problem.dims[i + 1], problem.dims[i]) for i in range(H)]
    assert problem.n == X.shape[1] and problem.d0 == X.shape[0] and problem.dH == Y.shape[0]
    sx = np.linalg.svd(X, compute_uv=False)
    r = np.linalg.matrix_rank(X)
    assert problem.rank == r
    np.testing.assert_allclose(problem.s, sx[:r], rtol=1e-12)
    np.testing.assert_allclose(problem.U.T @ problem.U, np.eye(r), atol=1e-12)
    # U spans the column space of X.
    np.testing.assert_allclose(problem.U @ (problem.U.T @ X), X, atol=1e-12 * np.abs(X).max())
    # A = Y V: same singular values as Y P_X; residual = ||Y - Y P_X||^2.
    YP = Y @ row_space_projector(X)
    np.testing.assert_allclose(np.linalg.svd(problem.A, compute_uv=False),
                               np.linalg.svd(YP, compute_uv=False)[:r], atol=1e-10)
    assert problem.residual_sq == pytest.approx(float(np.sum((Y - YP) ** 2)), rel=1e-9, abs=1e-12)
    assert problem.y_norm_sq == pytest.approx(float(np.sum(Y * Y)), rel=1e-14)
    assert problem.zero_value == pytest.approx(0.5 * float(np.sum(Y * Y)), rel=1e-14)
    assert problem.is_whitened == (case.x_kind == "identity")


def test_whitened_detection() -> None:
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((9, 4)))
    Y = rng.standard_normal((2, 9))
    assert dl.DeepLinearProblem(3.0 * Q.T, Y, [2], 0.1).is_whitened  # X X^T = 9 I
    # Rank-deficient but with equal non-zero singular values: whitened on the range of X.
    Xr = 2.0 * Q[:, :2].T
    Xr = np.vstack([Xr, np.zeros((1, 9))])
    assert dl.DeepLinearProblem(Xr, Y, [2], 0.1).is_whitened
    assert not dl.DeepLinearProblem(np.diag([1.0, 1.0 + 1e-6]), np.eye(2), [1], 0.1).is_whitened


def test_problem_is_immutable_and_owns_its_data() -> None:
    X, Y = _data()
    problem = dl.DeepLinearProblem(X, Y, [2, 3], 0.5)
    X_before = X.copy()
    X[0, 0] += 100.0  # the caller changes its array afterwards
    np.testing.assert_array_equal(problem.X, X_before)
    for name in ("X", "Y", "U", "s", "A"):
        arr = getattr(problem, name)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError):
            arr[(0,) * arr.ndim] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.gamma = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.hidden = (5,)


def test_integer_and_list_data_are_accepted_as_float64() -> None:
    Xi = np.arange(12).reshape(3, 4)
    Yi = (np.arange(8).reshape(2, 4) % 3).astype(np.int32)
    pi = dl.DeepLinearProblem(Xi, Yi, [2], 1)
    pf = dl.DeepLinearProblem(Xi.astype(float), Yi.astype(float), [2], 1.0)
    assert pi.X.dtype == np.float64 and pi.Y.dtype == np.float64
    assert isinstance(pi.gamma, float)
    np.testing.assert_array_equal(pi.X, Xi)
    pl = dl.DeepLinearProblem(Xi.tolist(), Yi.tolist(), (2,), np.float32(1.0))
    np.testing.assert_array_equal(pl.Y, pf.Y)
    pb = dl.DeepLinearProblem(np.eye(3, dtype=bool), np.eye(3, dtype=np.float32), [1], 0.1)
    assert pb.X.dtype == np.float64
    assert dl.solve_dual(pi).value == pytest.approx(dl.solve_dual(pf).value, rel=1e-12)
    assert dl.DeepLinearProblem(Xi, Yi, np.array([2, 3]), 1).hidden == (2, 3)


def test_with_gamma() -> None:
    X, Y = _data(seed=2)
    p1 = dl.DeepLinearProblem(X, Y, [2], 0.1)
    p2 = p1.with_gamma(0.7)
    assert p1.gamma == 0.1 and p2.gamma == 0.7 and p2.rho == pytest.approx(1.4)
    fresh = dl.DeepLinearProblem(X, Y, [2], 0.7)
    assert rel_diff(dl.solve_dual(p2).value, dl.solve_dual(fresh).value) <= 1e-9
    with pytest.raises(ValueError, match="gamma"):
        p1.with_gamma(-1.0)


# --------------------------------------------------------------------------- bad input
X0, Y0 = _data()
X_NAN = np.where(np.eye(4, 7) > 0, np.nan, X0)
Y_INF = np.where(np.eye(3, 7) > 0, np.inf, Y0)
BAD_INPUT = [
    # (X, Y, hidden, gamma, exception, message pattern)
    (X0, Y0[:, :5], [2], 0.1, ValueError, r"same number of samples"),
    (X0[0], Y0, [2], 0.1, ValueError, r"X must be 2-D"),
    (X0, Y0[None], [2], 0.1, ValueError, r"Y must be 2-D"),
    (X0.reshape(4, 7, 1), Y0, [2], 0.1, ValueError, r"X must be 2-D"),
    (X_NAN, Y0, [2], 0.1, ValueError, r"X must contain only finite"),
    (X0, Y_INF, [2], 0.1, ValueError, r"Y must contain only finite"),
    (X0, -np.inf * np.ones((3, 7)), [2], 0.1, ValueError, r"Y must contain only finite"),
    (X0 + 1j, Y0, [2], 0.1, TypeError, r"X must be real"),
    (X0, Y0.astype(np.complex64), [2], 0.1, TypeError, r"Y must be real"),
    (X0.astype(object), Y0, [2], 0.1, TypeError, r"X must have a real numeric dtype"),
    (np.array([["a", "b"]]), Y0, [2], 0.1, TypeError, r"X must have a real numeric dtype"),
    (None, Y0, [2], 0.1, TypeError, r"X must be a 2-D real array"),
    (X0, "Y", [2], 0.1, TypeError, r"Y must be a 2-D real array"),
    ([[1.0, 2.0], [3.0]], Y0, [2], 0.1, ValueError, r"X must be a rectangular"),
    (np.zeros((0, 7)), Y0, [2], 0.1, ValueError, r"X must not be empty"),
    (X0, np.zeros((0, 7)), [2], 0.1, ValueError, r"Y must not be empty"),
    (np.zeros((4, 0)), np.zeros((3, 0)), [2], 0.1, ValueError, r"X must not be empty"),
    (X0, Y0, [2], -0.1, ValueError, r"gamma must be >= 0"),
    (X0, Y0, [2], np.inf, ValueError, r"gamma must be finite"),
    (X0, Y0, [2], np.nan, ValueError, r"gamma must be finite"),
    (X0, Y0, [2], "0.1", TypeError, r"gamma must be a real number"),
    (X0, Y0, [2], 0.1 + 0j, TypeError, r"gamma must be a real number"),
    (X0, Y0, [2], None, TypeError, r"gamma must be a real number"),
    (X0, Y0, [2], True, TypeError, r"gamma must be a real number"),
    (X0, Y0, [], 0.1, ValueError, r"hidden must hold at least one hidden width"),
    (X0, Y0, (), 0.1, ValueError, r"hidden must hold at least one"),
    (X0, Y0, [0], 0.1, ValueError, r"hidden\[0\] must be a positive integer"),
    (X0, Y0, [3, -2], 0.1, ValueError, r"hidden\[1\] must be a positive integer"),
    (X0, Y0, [2.5], 0.1, TypeError, r"hidden\[0\] must be a positive integer"),
    (X0, Y0, [2.0], 0.1, TypeError, r"hidden\[0\] must be a positive integer"),
    (X0, Y0, ["3"], 0.1, TypeError, r"hidden\[0\]"),
    (X0, Y0, [None], 0.1, TypeError, r"hidden\[0\]"),
    (X0, Y0, [True], 0.1, TypeError, r"hidden\[0\]"),
    (X0, Y0, 3, 0.1, TypeError, r"hidden must be a sequence of positive integers"),
    (X0, Y0, "3", 0.1, TypeError, r"hidden must be a sequence"),
    (X0, Y0, None, 0.1, TypeError, r"hidden must be a sequence"),
]


@pytest.mark.parametrize("X,Y,hidden,gamma,exc,pattern", BAD_INPUT,
                         ids=[f"{i}-{b[-1][:30]}" for i, b in enumerate(BAD_INPUT)])
def test_bad_input_is_rejected_naming_the_argument(X, Y, hidden, gamma, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern):
        dl.DeepLinearProblem(X, Y, hidden, gamma)


# ------------------------------------------------------------------ from_statistics
@pytest.mark.parametrize("kind,d0,dH,n", [
    ("identity", 6, 6, 6), ("gaussian", 5, 4, 12), ("rank_deficient", 6, 3, 10),
    ("wide", 8, 3, 5), ("ill_conditioned", 5, 4, 12),
])
def test_from_statistics_matches_the_sample_constructor(kind, d0, dH, n) -> None:
    rng = np.random.default_rng(d0 * n)
    X = make_X(kind, d0, n, rng)
    Y = make_Y("gaussian", dH, n, rng)
    hidden = (2, 3)
    sample = dl.DeepLinearProblem(X, Y, hidden, 0.2)
    stats = dl.DeepLinearProblem.from_statistics(X @ X.T, Y @ X.T, float(np.sum(Y * Y)),
                                                 hidden, 0.2, n=n)
    assert stats.X is None and stats.Y is None and stats.n == n
    assert stats.dims == sample.dims and stats.rank == sample.rank
    np.testing.assert_allclose(stats.s, sample.s, rtol=1e-8)
    assert stats.residual_sq == pytest.approx(sample.residual_sq, rel=1e-8, abs=1e-10)
    assert stats.is_whitened == sample.is_whitened
    # The same dual objective at arbitrary points, and the same optimum.
    for _ in range(3):
        Lam = rng.standard_normal((dH, d0))
        assert rel_diff(dl.dual_value(stats, Lam), dl.dual_value(sample, Lam)) <= 1e-9
    d_stats, d_sample = dl.solve_dual(stats), dl.solve_dual(sample)
    # X X^T resolves X only to sqrt(eps): the statistics' value is lowered by its rounding
    # margin (about 1e-8 relative where directions fall below that), the samples' barely.
    margin = sum(d_stats.rounding) + sum(d_sample.rounding)
    assert abs(d_stats.value - d_sample.value) <= margin + 1e-8 * abs(d_sample.value)
    assert d_stats.value <= d_sample.float_value * (1 + 1e-12)
    # Weights recovered from the statistics are optimal for the samples.
    weights = dl.recover_weights(stats, d_stats)
    assert rel_diff(dl.objective(sample, weights), d_sample.value) <= 1e-8
    assert rel_diff(dl.objective(stats, weights), dl.objective(sample, weights)) <= 1e-9


def test_from_statistics_without_n() -> None:
    X, Y = _data(seed=3)
    stats = dl.DeepLinearProblem.from_statistics(X @ X.T, Y @ X.T, float(np.sum(Y * Y)), [2], 0.1)
    assert stats.n is None
    assert stats.with_gamma(0.3).gamma == 0.3


def test_from_statistics_rejects_bad_statistics() -> None:
    X, Y = _data(seed=4)
    G, C, yy = X @ X.T, Y @ X.T, float(np.sum(Y * Y))
    fs = dl.DeepLinearProblem.from_statistics
    with pytest.raises(ValueError, match="XXt must be square"):
        fs(G[:3], C, yy, [2], 0.1)
    with pytest.raises(ValueError, match="YXt must have shape"):
        fs(G, C[:, :3], yy, [2], 0.1)
    asym = G.copy()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="XXt must be symmetric"):
        fs(asym, C, yy, [2], 0.1)
    with pytest.raises(ValueError, match="XXt must be positive semidefinite"):
        fs(G - 2 * np.linalg.eigvalsh(G).max() * np.eye(4), C, yy, [2], 0.1)
    with pytest.raises(ValueError, match="inconsistent"):
        fs(G, C, 1e-3 * yy, [2], 0.1)
    with pytest.raises(ValueError, match="YY must be >= 0"):
        fs(G, C, -1.0, [2], 0.1)
    with pytest.raises(ValueError, match="XXt must contain only finite"):
        fs(np.full((4, 4), np.nan), C, yy, [2], 0.1)
    with pytest.raises(TypeError, match="YXt must be real"):
        fs(G, C + 0j, yy, [2], 0.1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fs(G, C, yy, [2], 0.1, n=0)
    with pytest.raises(ValueError, match="gamma"):
        fs(G, C, yy, [2], -0.1)
    with pytest.raises(ValueError, match="hidden"):
        fs(G, C, yy, [], 0.1)


def test_copy_false_keeps_read_only_views_and_the_same_reduction() -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((6, 15)), rng.standard_normal((3, 15))
    kept = dl.DeepLinearProblem(X, Y, (2,), 0.1, copy=False)
    copied = dl.DeepLinearProblem(X, Y, (2,), 0.1)
    assert np.shares_memory(kept.X, X) and np.shares_memory(kept.Y, Y)
    assert not np.shares_memory(copied.X, X)
    assert not kept.X.flags.writeable and X.flags.writeable  # the caller's flag untouched
    assert kept.fingerprint == copied.fingerprint
    # Other input is converted as before (a float32 array cannot be viewed as float64).
    small = dl.DeepLinearProblem(X.astype(np.float32), Y, (2,), 0.1, copy=False)
    assert small.X.dtype == np.float64 and not np.shares_memory(small.X, X)
    assert dl.DeepLinearProblem(X, Y, (2,), 0.2, copy=False).with_gamma(0.1).fingerprint == (
        kept.fingerprint)
    with pytest.raises(TypeError, match="copy must be a bool"):
        dl.DeepLinearProblem(X, Y, (2,), 0.1, copy="no")
