r"""Douglas-Rachford on whitened X (``s = c 1``): one variable, both maps in closed form.

``G = proj(Z)``, ``F = prox_{t f}(2G - Z)``, ``Z += lam (F - G)`` (Douglas and Rachford, 1956;
Lions and Mercier, "Splitting algorithms for the sum of two nonlinear operators", SIAM J.
Numer. Anal. 16, 1979). Both maps are spectral and, started from ``Z = 0``, every iterate
shares the singular vectors of ``A``: after one SVD of ``A`` the iteration runs on vectors of
singular values, exactly (not an approximation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._linalg import svd
from .._reduced import Reduced, dual_value
from .._spectral import truncated
from .outcome import Outcome, finish, met
from .settings import DRSettings

__all__ = ["solve_whitened"]


def _prox_f(alpha: np.ndarray, v: np.ndarray, k: int, t: float) -> np.ndarray:
    """``prox_{t f}`` on signed coordinates in the singular basis of A."""
    w = alpha - v
    return alpha - np.sign(w) * truncated(np.abs(w), k, t)


def solve_whitened(red: Reduced, tol: float, max_iter: int, settings: DRSettings,
                   callback: Callable[[int, float], object] | None = None) -> Outcome:
    """DR on the singular values of ``A``; ``red.s`` is constant. ``callback(it, gap)`` sees
    each certified gap."""
    t = settings.step if settings.step else 1.0
    lam = settings.relaxation
    P, alpha, Qt = svd(red.A)
    radius = red.rho / red.s[0]
    k = red.k
    z = np.zeros_like(alpha)
    residuals, gaps = [], []

    def certify(g: np.ndarray) -> tuple[float, float]:
        b = alpha - g
        mag = np.abs(b)
        order = np.argsort(-mag, kind="stable")
        keep = np.zeros_like(b)
        keep[order[:k]] = b[order[:k]]
        tail = mag[order[k:]]
        lower = dual_value(alpha, g, red.residual_sq, float(np.dot(tail, tail)))
        upper = (0.5 * red.residual_sq + 0.5 * float(np.sum((keep - alpha) ** 2))
                 + radius * float(np.sum(np.abs(keep))))
        return lower, upper

    status, it = "max_iter", 0
    while it < max_iter:
        it += 1
        g = np.clip(z, -radius, radius)
        f = _prox_f(alpha, 2.0 * g - z, k, t)
        dz = lam * (f - g)
        z = z + dz
        residuals.append(float(np.linalg.norm(dz)) / max(float(np.linalg.norm(z)), 1.0))
        lower, upper = certify(np.clip(z, -radius, radius))
        gaps.append(red.gap(upper, lower))
        if callback is not None:
            callback(it, gaps[-1])
        if met(gaps[-1], tol):
            status = "converged"
            break
        if residuals[-1] < settings.residual_floor:
            status = "stalled"
            break
    g = np.clip(z, -radius, radius)
    lower, upper = certify(g)
    Gamma = (P * g) @ Qt
    # A - Gamma = P diag(alpha - g) Qt: its SVD is at hand, for the rounding bound.
    b = alpha - g
    order = np.argsort(-np.abs(b), kind="stable")
    sign = np.where(b[order] < 0.0, -1.0, 1.0)
    red.remember(Gamma, (P[:, order] * sign, np.abs(b[order]), Qt[order]))
    return finish((Gamma, lower, upper), status, it, residuals, gaps, tol, max_iter, red,
                  settings.stall_residual)
