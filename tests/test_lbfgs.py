"""The small L-BFGS behind the primal refinement (duallinear._lbfgs), against known minima."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duallinear._lbfgs import lbfgs


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = x
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return value, grad


def test_rosenbrock_reaches_its_minimum() -> None:
    out = lbfgs(rosenbrock, np.array([-1.2, 1.0]), ftol=1e-16, gtol=1e-10)
    assert out.status in ("ftol", "gtol"), out.status
    np.testing.assert_allclose(out.x, [1.0, 1.0], atol=1e-6)
    assert out.fun == rosenbrock(out.x)[0]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.floats(0.0, 4.0))
def test_convex_quadratics_reach_the_linear_solve(n: int, seed: int, log_cond: float) -> None:
    # f(x) = 1/2 x^T Q x - b^T x, minimised at Q^-1 b; condition numbers up to 1e4.
    rng = np.random.default_rng(seed)
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Q = (V * np.logspace(0, log_cond, n)) @ V.T
    b = rng.standard_normal(n)
    x0 = rng.standard_normal(n)
    fun = lambda x: (0.5 * x @ Q @ x - b @ x, Q @ x - b)  # noqa: E731
    out = lbfgs(fun, x0, ftol=0.0, gtol=1e-10, max_eval=20000)
    # ftol = 0 stops only when a step no longer decreases f in floating point; from function
    # values the gradient is then resolved to about sqrt(eps) (measured: 1e-8 relative).
    assert out.status in ("gtol", "ftol"), out.status
    exact = np.linalg.solve(Q, b)
    size = max(1.0, float(np.linalg.norm(exact)))
    assert np.linalg.norm(Q @ out.x - b) <= 1e-6 * 10**log_cond * size
    assert np.linalg.norm(out.x - exact) <= 1e-6 * 10**log_cond * size
    assert out.fun <= fun(x0)[0]


def test_steps_into_a_non_finite_region_are_backtracked() -> None:
    # -log(1 - x) + x^2/2 is +inf past x = 1: the first trial step lands there.
    def fun(x):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = -np.log(1 - x[0]) + 0.5 * x[0] ** 2 if x[0] < 1 else np.inf
        return value, np.array([1 / (1 - x[0]) + x[0]] if x[0] < 1 else [np.nan])

    out = lbfgs(fun, np.array([-50.0]), ftol=1e-16, gtol=1e-12)
    # minimiser: 1/(1 - x) + x = 0  ->  x = (1 - sqrt(5)) / 2
    assert out.x[0] == pytest.approx((1 - np.sqrt(5)) / 2, abs=1e-8)
    assert np.isfinite(out.fun)


def test_non_finite_start_is_reported() -> None:
    out = lbfgs(lambda x: (np.nan, x), np.ones(3))
    assert out.status == "non-finite"
    assert out.nfev == 1


def test_evaluation_cap_and_loose_stop() -> None:
    calls = []

    def counted(x):
        calls.append(1)
        return rosenbrock(x)

    out = lbfgs(counted, np.array([-1.2, 1.0]), ftol=0.0, gtol=0.0, max_eval=7)
    assert out.status == "max_eval"
    assert out.nfev == len(calls) <= 7
    loose = lbfgs(rosenbrock, np.array([-1.2, 1.0]), ftol=1e-3, gtol=0.0)
    tight = lbfgs(rosenbrock, np.array([-1.2, 1.0]), ftol=1e-15, gtol=0.0)
    assert loose.status == "ftol" and loose.nfev < tight.nfev
    assert tight.fun <= loose.fun


def test_polish_resolves_the_gradient_past_the_values() -> None:
    # f = 1/2 x^T Q x - b^T x + c with c large: values carry ~eps*c of noise, so the
    # value-based stop leaves a gradient of about sqrt(eps c); gradient-only steps go on.
    rng = np.random.default_rng(3)
    n = 30
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Q = (V * np.logspace(0, 2, n)) @ V.T
    b = rng.standard_normal(n)
    fun = lambda x: (0.5 * x @ Q @ x - b @ x + 1e6, Q @ x - b)  # noqa: E731
    x0 = rng.standard_normal(n)
    plain = lbfgs(fun, x0, ftol=1e-16, gtol=0.0)
    polished = lbfgs(fun, x0, ftol=1e-16, gtol=0.0, polish=100)
    exact = np.linalg.solve(Q, b)
    assert plain.status == polished.status == "ftol"
    assert np.linalg.norm(polished.grad) < 1e-3 * np.linalg.norm(plain.grad)
    assert np.linalg.norm(polished.x - exact) <= 1e-10 * np.linalg.norm(exact)
    assert np.linalg.norm(polished.grad) == pytest.approx(np.linalg.norm(Q @ polished.x - b))
