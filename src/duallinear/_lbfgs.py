"""A small unconstrained L-BFGS for the inner local searches of the dual solver.

scipy's L-BFGS-B carries bound-constraint machinery (a generalised Cauchy point and subspace
minimisation per iteration) and a per-call wrapper that, on the refinement's problems at
d = 100 (2000 variables, about 40 evaluations), cost more than the function evaluations
themselves. This one has none of that: the two-loop recursion, an Armijo backtracking line
search by safeguarded quadratic interpolation, and scipy's relative-decrease stopping rule.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import daxpy

__all__ = ["lbfgs", "LBFGSResult"]

#: Sufficient-decrease constant of the Armijo test.
ARMIJO = 1e-4

#: Backtracking steps before the line search gives up.
MAX_BACKTRACKS = 30


@dataclass(frozen=True)
class LBFGSResult:
    """Outcome of :func:`lbfgs`: the last accepted point and why the search stopped."""

    x: np.ndarray
    fun: float
    grad: np.ndarray
    nfev: int
    #: "ftol" (relative decrease below ftol), "gtol" (largest gradient entry below gtol),
    #: "max_eval", "line search" (no decrease found along a descent direction) or
    #: "non-finite" (the function returned NaN or Inf at the start).
    status: str


def lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
          memory: int = 5, ftol: float = 1e-13, gtol: float = 1e-9,
          max_eval: int = 2000, polish: int = 0) -> LBFGSResult:
    """Minimise a smooth function of a vector by limited-memory BFGS.

    Parameters
    ----------
    fun : callable ``x -> (f(x), grad f(x))``
        ``x`` and the gradient have the shape of ``x0``.
    x0 : ndarray, shape (n,)
    memory : int
        Number of correction pairs kept.
    ftol : float
        Stop when ``(f_k - f_{k+1}) <= ftol * max(|f_k|, |f_{k+1}|, 1)`` (scipy's rule).
    gtol : float
        Stop when the largest absolute gradient entry is at most ``gtol``.
    max_eval : int
        Cap on the number of calls of ``fun`` (before ``polish``).
    polish : int
        After a stop on ``ftol`` or a failed line search, up to this many further
        quasi-Newton steps whose line search uses the directional derivative only: past the
        point where values no longer resolve differences (about ``sqrt(eps)`` in ``x``), the
        gradient still does.

    Returns
    -------
    LBFGSResult
        ``x`` is the point of lowest value found, or with ``polish`` the polished point; the
        search never returns a point whose value or gradient is non-finite.
    """
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    nfev = 1
    if not (np.isfinite(f) and np.all(np.isfinite(g))):
        return LBFGSResult(x, float(f), g, nfev, "non-finite")
    pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=memory)
    status = "max_eval"
    while nfev < max_eval:
        if float(np.max(np.abs(g), initial=0.0)) <= gtol:
            status = "gtol"
            break
        d = _direction(g, pairs)
        slope = float(np.dot(g, d))
        if not slope < 0.0:
            pairs.clear()
            d = -g
            slope = -float(np.dot(g, g))
        # With no curvature pairs yet the direction is the raw gradient: a unit step in it
        # has the wrong scale, so start from a step of length one.
        step = 1.0 if pairs else min(1.0, 1.0 / float(np.linalg.norm(d)))
        for _ in range(MAX_BACKTRACKS):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            nfev += 1
            if np.isfinite(f_new) and f_new <= f + ARMIJO * step * slope:
                break
            if np.isfinite(f_new):
                # Minimiser of the quadratic through f, slope and f_new, kept in [0.1, 0.5]
                # of the step.
                trial = -slope * step * step / (2.0 * (f_new - f - slope * step))
                step = min(max(trial, 0.1 * step), 0.5 * step)
            else:
                step *= 0.1
            if nfev >= max_eval:
                break
        else:
            status = "line search"
            break
        if not (np.isfinite(f_new) and f_new <= f + ARMIJO * step * slope):
            break  # max_eval inside the line search
        if not np.all(np.isfinite(g_new)):
            status = "line search"
            break
        _remember(pairs, x_new - x, g_new - g)
        decrease = f - f_new
        x, f, g = x_new, float(f_new), g_new
        if decrease <= ftol * max(abs(f + decrease), abs(f), 1.0):
            status = "ftol"
            break
    if polish and status in ("ftol", "line search"):
        x, f, g, nfev = _polish(fun, x, f, g, pairs, nfev, polish)
    return LBFGSResult(x, float(f), g, nfev, status)


def _polish(fun, x, f, g, pairs, nfev, budget):
    """Quasi-Newton steps with a line search on the directional derivative alone (see
    ``lbfgs(polish=)``): the step is the secant root of ``g(x + a d) . d`` from ``a = 0`` and
    ``a = 1``, exact on quadratics. Every step is taken (the gradient norm need not fall
    monotonically); the point of smallest gradient norm is returned, and five steps without
    a new smallest end the polish."""
    best = (float(np.linalg.norm(g)), x, f, g)
    stale = 0
    for _ in range(budget):
        d = _direction(g, pairs)
        slope = float(np.dot(g, d))
        if not slope < 0.0:
            pairs.clear()
            d, slope = -g, -float(np.dot(g, g))
        f_new, g_new = fun(x + d)
        nfev += 1
        step = 1.0
        slope1 = float(np.dot(g_new, d)) if np.all(np.isfinite(g_new)) else np.inf
        if np.isfinite(slope1) and slope1 > slope:
            root = slope / (slope - slope1)
            if 0.0 < root <= 10.0 and abs(root - 1.0) > 1e-3:
                f_new, g_new = fun(x + root * d)
                nfev += 1
                step = root
        if not (np.isfinite(f_new) and np.all(np.isfinite(g_new))):
            break
        _remember(pairs, step * d, g_new - g)
        x, f, g = x + step * d, float(f_new), g_new
        gnorm = float(np.linalg.norm(g))
        if gnorm < best[0]:
            best, stale = (gnorm, x, f, g), 0
        else:
            stale += 1
            if stale == 5:
                break
    return best[1], best[2], best[3], nfev


def _remember(pairs, s: np.ndarray, y: np.ndarray) -> None:
    """Keep the correction pair ``(s, y)`` unless its curvature ``s.y`` is not positive."""
    sy = float(np.dot(s, y))
    if sy > np.finfo(float).eps * float(np.dot(y, y)):
        pairs.append((s, y, 1.0 / sy))


def _direction(g: np.ndarray, pairs) -> np.ndarray:
    """``-H g`` by the two-loop recursion, with ``H_0 = (s.y / y.y) I`` from the newest pair
    (the updates in place by BLAS ``daxpy``: a temporary per update cost more than the
    arithmetic at the refinement's sizes)."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * float(np.dot(s, q))
        q = daxpy(y, q, a=-alpha)
        alphas.append(alpha)
    if pairs:
        s, y, rho = pairs[-1]
        q *= 1.0 / (rho * float(np.dot(y, y)))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = rho * float(np.dot(y, q))
        q = daxpy(s, q, a=alpha - beta)
    q *= -1.0
    return q
