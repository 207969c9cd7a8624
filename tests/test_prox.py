"""Spectral proximal operators (MATH.md section 8) checked against their definitions.

For a prox ``x* = argmin_x F(x)`` with ``F = t f + 1/2 ||. - z||^2`` (1-strongly convex), the
optimality of ``x*`` is equivalent to ``F(y) - F(x*) >= 1/2 ||y - x*||^2`` for every ``y``; we test
that at random points and at small perturbations of ``x*``, with ``f`` evaluated here by numpy,
plus explicit subgradient / stationarity conditions where they are simple, the Moreau
identity, and a generic convex solver for the truncated Frobenius prox.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duallinear import prox

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SETTINGS = settings(max_examples=40, deadline=None)
TOL = 1e-9


# ------------------------------------------------------------------------- strategies
@st.composite
def matrices(draw, max_side: int = 6) -> np.ndarray:
    """Small real matrices: Gaussian, or with prescribed (often repeated or zero) spectrum."""
    m = draw(st.integers(1, max_side))
    n = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]))
    if draw(st.booleans()):
        return scale * rng.standard_normal((m, n))
    p = min(m, n)
    values = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.0]), min_size=p,
                           max_size=p))
    U, _ = np.linalg.qr(rng.standard_normal((m, p)))
    V, _ = np.linalg.qr(rng.standard_normal((n, p)))
    return scale * (U * np.array(values)) @ V.T


@st.composite
def sv_vectors(draw, max_len: int = 8) -> np.ndarray:
    """Non-negative vectors, often with ties and zeros, in any order."""
    n = draw(st.integers(1, max_len))
    pool = st.one_of(st.sampled_from([0.0, 1.0, 1.0, 2.0, 0.5]),
                     st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False))
    return np.array(draw(st.lists(pool, min_size=n, max_size=n)))


steps = st.sampled_from([0.0, 1e-3, 0.1, 0.5, 1.0, 3.0, 100.0])
positive_steps = st.sampled_from([1e-3, 0.1, 0.5, 1.0, 3.0, 100.0])


# --------------------------------------------------------------------- numpy oracles
def _sv(Z: np.ndarray) -> np.ndarray:
    return np.linalg.svd(Z, compute_uv=False)


def _nuclear(Z: np.ndarray) -> float:
    return float(np.sum(_sv(Z)))


def _truncated_sq(Z: np.ndarray, k: int) -> float:
    s = _sv(Z)
    return float(np.sum(s[:k] ** 2))


def _schatten_pow(Z: np.ndarray, p: float) -> float:
    return float(np.sum(_sv(Z) ** p))


def _trial_points(X: np.ndarray, Z: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Random points far away and close to the candidate minimiser ``X``."""
    scale = max(1.0, float(np.abs(Z).max()))
    pts = [scale * rng.standard_normal(X.shape) for _ in range(3)]
    pts += [X + eps * scale * rng.standard_normal(X.shape) for eps in (1e-2, 1e-4)]
    pts += [Z, np.zeros_like(Z)]
    return pts


def _check_strongly_convex_minimiser(F, X: np.ndarray, Z: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fx = F(X)
    scale = max(1.0, float(np.sum(Z * Z)), abs(fx))
    for Yp in _trial_points(X, Z, rng):
        lhs = F(Yp) - fx
        rhs = 0.5 * float(np.sum((Yp - X) ** 2))
        assert lhs >= rhs - TOL * scale, (lhs, rhs)


# --------------------------------------------------------------- spectral-ball projection
@SETTINGS
@given(Z=matrices(), radius=st.sampled_from([0.0, 1e-3, 0.5, 1.0, 2.0, 50.0]),
       seed=st.integers(0, 1000))
def test_projection_onto_spectral_ball(Z, radius, seed) -> None:
    P = prox.project_spectral_ball(Z, radius)
    assert P.shape == Z.shape
    top = _sv(P)[0]
    assert top <= radius * (1 + 1e-12) + 1e-14
    if _sv(Z)[0] <= radius:
        np.testing.assert_allclose(P, Z, atol=1e-12 * max(1.0, np.abs(Z).max()))
    # Variational inequality <Z - P, W - P> <= 0 for every W in the ball.
    rng = np.random.default_rng(seed)
    for _ in range(4):
        W = rng.standard_normal(Z.shape)
        W *= radius / max(_sv(W)[0], 1e-300) * rng.uniform(0, 1)
        assert np.vdot(Z - P, W - P) <= 1e-9 * max(1.0, float(np.sum(Z * Z)))
        # Strong convexity of 1/2||. - Z||^2 restricted to the ball.
        lhs = 0.5 * np.sum((W - Z) ** 2) - 0.5 * np.sum((P - Z) ** 2)
        assert lhs >= 0.5 * np.sum((W - P) ** 2) - 1e-9 * max(1.0, float(np.sum(Z * Z)))


# ---------------------------------------------------------------------- nuclear norm
@SETTINGS
@given(Z=matrices(), t=steps, seed=st.integers(0, 1000))
def test_prox_nuclear_is_the_minimiser(Z, t, seed) -> None:
    X = prox.prox_nuclear(Z, t)
    assert X.shape == Z.shape
    _check_strongly_convex_minimiser(
        lambda W: t * _nuclear(W) + 0.5 * float(np.sum((W - Z) ** 2)), X, Z, seed)
    if t > 0:
        # (Z - X)/t is a subgradient of ||.||_* at X: op norm <= 1 and <G, X> = ||X||_*.
        # Rounding: Z - X carries about eps * ||Z|| of error, which the division by t
        # magnifies (seen: 1.5e-9 over 1 at ||Z|| ~ 1e3, t = 1e-3, in one run of several).
        G = (Z - X) / t
        noise = 1e-14 * max(1.0, float(np.abs(Z).max())) / t
        assert _sv(G)[0] <= 1 + 1e-9 + noise
        assert np.vdot(G, X) == pytest.approx(
            _nuclear(X), rel=1e-9, abs=1e-9 * (1 + _nuclear(Z)) + noise * _nuclear(X))


@SETTINGS
@given(Z=matrices(), t=positive_steps)
def test_moreau_identity_nuclear_and_spectral_ball(Z, t) -> None:
    """prox_{t||.||_*}(Z) + t proj_{||.||_op <= 1}(Z / t) = Z (the conjugate of the nuclear
    norm is the indicator of the unit spectral ball)."""
    total = prox.prox_nuclear(Z, t) + t * prox.project_spectral_ball(Z / t, 1.0)
    np.testing.assert_allclose(total, Z, atol=1e-12 * max(1.0, np.abs(Z).max()))


def test_prox_nuclear_known_value() -> None:
    Z = np.diag([3.0, 1.0, 0.25])
    np.testing.assert_allclose(prox.prox_nuclear(Z, 0.5), np.diag([2.5, 0.5, 0.0]), atol=1e-15)
    np.testing.assert_allclose(prox.sv_prox_nuclear(np.array([3.0, 0.2]), 0.5), [2.5, 0.0])


# ------------------------------------------------------------ truncated Frobenius (Ky Fan)
@SETTINGS
@given(Z=matrices(), k=st.integers(1, 7), t=steps, seed=st.integers(0, 1000))
def test_prox_truncated_frobenius_is_the_minimiser(Z, k, t, seed) -> None:
    X = prox.prox_truncated_frobenius_sq(Z, k, t)
    assert X.shape == Z.shape
    _check_strongly_convex_minimiser(
        lambda W: 0.5 * t * _truncated_sq(W, k) + 0.5 * float(np.sum((W - Z) ** 2)), X, Z, seed)


def _cvxpy_truncated_prox(s: np.ndarray, k: int, t: float) -> tuple[np.ndarray, float]:
    import cvxpy as cp

    x = cp.Variable(s.size)
    obj = 0.5 * t * cp.sum_largest(cp.square(x), min(k, s.size)) + 0.5 * cp.sum_squares(x - s)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    return np.asarray(x.value), float(prob.value)


def _truncated_objective(x: np.ndarray, s: np.ndarray, k: int, t: float) -> float:
    top = np.sort(x**2)[::-1][:k]
    return 0.5 * t * float(np.sum(top)) + 0.5 * float(np.sum((x - s) ** 2))


@settings(max_examples=40, deadline=None)
@given(s=sv_vectors(), k=st.integers(1, 8), t=positive_steps)
def test_sv_truncated_frobenius_against_a_generic_convex_solver(s, k, t) -> None:
    x = prox.sv_prox_truncated_frobenius_sq(s, k, t)
    x_ref, f_ref = _cvxpy_truncated_prox(s, k, t)
    f = _truncated_objective(x, s, k, t)
    scale = 1.0 + float(np.dot(s, s))
    # Ours is never worse than the solver's point (which is only ~1e-8 accurate) ...
    assert f <= f_ref + 1e-8 * scale
    # ... and the minimiser is unique (strong convexity), so the two points are close.
    np.testing.assert_allclose(x, x_ref, atol=1e-4 * np.sqrt(scale))


@SETTINGS
@given(s=sv_vectors(), k=st.integers(1, 8), t=steps, seed=st.integers(0, 1000))
def test_sv_truncated_frobenius_structure(s, k, t, seed) -> None:
    """The shape of the minimiser stated in MATH.md section 8: it keeps the order of s,
    0 <= x <= s, and is either s/(1+t), a common value theta, or s itself."""
    x = prox.sv_prox_truncated_frobenius_sq(s, k, t)
    assert x.shape == s.shape
    assert np.all(x >= -1e-15) and np.all(x <= s + 1e-12 * (1 + s))
    order = np.argsort(-s, kind="stable")
    assert np.all(np.diff(x[order]) <= 1e-12 * (1 + s.max()))
    if t == 0:
        np.testing.assert_array_equal(x, s)
    elif k >= s.size:
        np.testing.assert_allclose(x, s / (1 + t), rtol=1e-14)
    # 1-strong convexity inequality, on vectors.
    rng = np.random.default_rng(seed)
    fx = _truncated_objective(x, s, k, t)
    for _ in range(5):
        y = x + rng.standard_normal(s.size) * rng.choice([1e-4, 1e-1, 3.0])
        lhs = _truncated_objective(y, s, k, t) - fx
        assert lhs >= 0.5 * float(np.sum((y - x) ** 2)) - 1e-10 * (1 + float(np.dot(s, s)))


@pytest.mark.parametrize("s,k,t,expected", [
    ([1.0, 1.0, 1.0], 2, 1.0, [0.6, 0.6, 0.6]),          # by symmetry: 3/(2t+3)
    ([4.0, 1.0, 0.5], 1, 1.0, [2.0, 1.0, 0.5]),          # s_1/(1+t) >= s_2: shrink the top
    ([0.5, 4.0, 1.0], 1, 1.0, [0.5, 2.0, 1.0]),          # same, unsorted
    ([3.0, 2.0, 0.0], 1, 1.0, [5 / 3, 5 / 3, 0.0]),      # tied block {1, 2}: 5 / (2 + t)
    ([0.0, 0.0], 1, 2.0, [0.0, 0.0]),
])
def test_sv_truncated_frobenius_known_values(s, k, t, expected) -> None:
    x = prox.sv_prox_truncated_frobenius_sq(np.array(s), k, t)
    np.testing.assert_allclose(x, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("s", "p", "t", "root"), [
    (1.0, 1.1, 100.0, (1 / 110) ** 10),        # hypothesis 6.100: phi was left at 2
    (5.82076609e-11, 1.1, 0.001, 1.7213715530935145e-73),  # 200 iterations were not enough
])
def test_schatten_power_root_far_below_s(s, p, t, root) -> None:
    # For p < 2 the root of x + t p x^(p-1) = s can lie many decades below s.
    x = prox.sv_prox_schatten_power(np.array([s]), p, t)
    assert x[0] == pytest.approx(root, rel=1e-6)
    assert abs(x[0] + t * p * x[0] ** (p - 1.0) - s) <= 1e-15 * s


def test_truncated_frobenius_sq_value() -> None:
    s = np.array([1.0, 3.0, 2.0, 0.5])
    assert prox.truncated_frobenius_sq(s, 2) == pytest.approx(13.0)
    assert prox.truncated_frobenius_sq(s, 10) == pytest.approx(14.25)


# ------------------------------------------------------------------------ Schatten-p
@SETTINGS
@given(s=sv_vectors(), p=st.sampled_from([1.0, 1.1, 1.5, 2.0, 2.5, 3.0, 4.0, 7.0]),
       t=positive_steps)
def test_sv_schatten_power_solves_its_stationarity_equation(s, p, t) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        x = prox.sv_prox_schatten_power(s, p, t)
    assert x.shape == s.shape
    assert np.all(x >= 0) and np.all(x <= s * (1 + 1e-14))
    if p == 1.0:
        np.testing.assert_allclose(x, np.maximum(s - t, 0.0), atol=1e-15)
        return
    # x + t p x^(p-1) = s (x = 0 exactly when s = 0).
    residual = x + t * p * x ** (p - 1.0) - s
    np.testing.assert_allclose(residual, 0.0, atol=1e-12 * (1 + s.max()))
    np.testing.assert_array_equal(x[s == 0], 0.0)


@SETTINGS
@given(Z=matrices(max_side=5), p=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0]), t=steps,
       seed=st.integers(0, 1000))
def test_prox_schatten_power_is_the_minimiser(Z, p, t, seed) -> None:
    X = prox.prox_schatten_power(Z, p, t)
    assert X.shape == Z.shape
    _check_strongly_convex_minimiser(
        lambda W: t * _schatten_pow(W, p) + 0.5 * float(np.sum((W - Z) ** 2)), X, Z, seed)
    if p > 1:
        # Stationarity: X + t p U diag(x^(p-1)) V^T = Z with X = U diag(x) V^T.
        U, x, Vt = np.linalg.svd(X, full_matrices=False)
        np.testing.assert_allclose(X + t * p * (U * x ** (p - 1)) @ Vt, Z,
                                   atol=1e-9 * max(1.0, np.abs(Z).max()))


def test_schatten_power_special_cases() -> None:
    s = np.array([0.0, 0.3, 2.0])
    np.testing.assert_allclose(prox.sv_prox_schatten_power(s, 2.0, 0.25), s / 1.5)
    np.testing.assert_allclose(prox.sv_prox_schatten_power(s, 1.0, 0.5), [0.0, 0.0, 1.5])
    np.testing.assert_array_equal(prox.sv_prox_schatten_power(s, 3.0, 0.0), s)
    # p = 3, t = 1/3: x + x^2 = 2 -> x = 1.
    assert prox.sv_prox_schatten_power(np.array([2.0]), 3.0, 1 / 3)[0] == pytest.approx(1.0)


# ------------------------------------------------------------------ shared behaviour
OPERATORS = [
    ("project_spectral_ball", lambda Z: prox.project_spectral_ball(Z, 1.0)),
    ("prox_nuclear", lambda Z: prox.prox_nuclear(Z, 0.5)),
    ("prox_truncated_frobenius_sq", lambda Z: prox.prox_truncated_frobenius_sq(Z, 2, 0.5)),
    ("prox_schatten_power", lambda Z: prox.prox_schatten_power(Z, 3.0, 0.5)),
]


@pytest.mark.parametrize("name,op", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_operators_are_pure_and_spectral(name, op) -> None:
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((4, 6))
    Z_copy = Z.copy()
    out = op(Z)
    np.testing.assert_array_equal(Z, Z_copy)  # input untouched
    assert out is not Z and out.dtype == np.float64
    # Orthogonal invariance: op(Q Z R) = Q op(Z) R.
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    R, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    np.testing.assert_allclose(op(Q @ Z @ R), Q @ out @ R, atol=1e-12)
    # Transposition commutes.
    np.testing.assert_allclose(op(Z.T), out.T, atol=1e-12)
    # Integer input is accepted; empty matrices keep their shape.
    np.testing.assert_allclose(op(np.eye(3, dtype=int) * 2), op(np.eye(3) * 2))
    assert op(np.zeros((0, 3))).shape == (0, 3)


def test_bad_arguments_name_the_argument() -> None:
    Z = np.eye(3)
    with pytest.raises(ValueError, match="t must be >= 0"):
        prox.prox_nuclear(Z, -1.0)
    with pytest.raises(ValueError, match="t must be finite"):
        prox.prox_truncated_frobenius_sq(Z, 1, float("inf"))
    with pytest.raises(ValueError, match="radius"):
        prox.project_spectral_ball(Z, -0.5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        prox.prox_truncated_frobenius_sq(Z, 0, 1.0)
    with pytest.raises(TypeError, match="k must be an integer"):
        prox.prox_truncated_frobenius_sq(Z, 1.5, 1.0)
    with pytest.raises(ValueError, match="p must be >= 1"):
        prox.prox_schatten_power(Z, 0.5, 1.0)
    with pytest.raises(TypeError, match="Z must be real"):
        prox.prox_nuclear(Z + 1j, 1.0)
    with pytest.raises(ValueError, match="Z must be 2-D"):
        prox.prox_nuclear(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="Z must contain only finite"):
        prox.prox_nuclear(np.array([[np.nan]]), 1.0)
    with pytest.raises(ValueError, match="s must be non-negative"):
        prox.sv_prox_nuclear(np.array([1.0, -1.0]), 1.0)
    with pytest.raises(ValueError, match="s must be a 1-D"):
        prox.sv_project_ball(np.eye(2), 1.0)
    with pytest.raises(ValueError, match="s must be finite"):
        prox.sv_prox_schatten_power(np.array([np.inf]), 2.0, 1.0)
