r"""Spectral proximal operators and projections (MATH.md section 8).

Every operator here is *spectral*: it takes the thin SVD ``Z = U diag(s) V^T``, maps the
singular values ``s`` through a vector operator, and rebuilds ``U diag(x) V^T``. Each matrix
operator therefore has a singular-value form with the prefix ``sv_`` that acts on a
non-negative vector, and both share the same argument order ``(x, hyperparameter, t)``.

Notation: ``prox_{t f}(Z) = argmin_W  t f(W) + 1/2 ||W - Z||_F^2``.

All functions are pure: they never modify their arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._linalg import svd
from ._validation import as_matrix, as_nonneg_scalar, as_positive_int

__all__ = [
    "spectral_apply",
    "project_spectral_ball",
    "prox_nuclear",
    "prox_truncated_frobenius_sq",
    "prox_schatten_power",
    "sv_project_ball",
    "sv_prox_nuclear",
    "sv_prox_truncated_frobenius_sq",
    "sv_prox_schatten_power",
    "truncated_frobenius_sq",
]


# --------------------------------------------------------------------------- helpers
def _as_sv(s: object, name: str = "s") -> np.ndarray:
    raw = np.asarray(s)
    if np.iscomplexobj(raw):
        raise TypeError(f"{name} must be real, got complex dtype {raw.dtype}")
    if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number)
                                   or np.issubdtype(raw.dtype, np.bool_)):
        raise TypeError(f"{name} must be a real numeric vector, got dtype {raw.dtype}")
    arr = raw.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of singular values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative (singular values)")
    return arr


def spectral_apply(Z: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Return ``U diag(fn(s)) V^T`` where ``Z = U diag(s) V^T`` is the thin SVD.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    fn : callable mapping the singular values, shape (min(m, n),), to new non-negative values.
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _spectral(Z, fn)


def _spectral(Z: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    U, s, Vt = svd(Z)
    return (U * fn(s)) @ Vt


def truncated_frobenius_sq(s: np.ndarray, k: int) -> float:
    """``||Z||_(k)^2``: the sum of the ``k`` largest squared entries of ``s``.

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative (singular values of Z)
    k : int >= 1
    """
    s = _as_sv(s)
    k = as_positive_int(k, "k")
    if k >= s.size:
        return float(np.dot(s, s))
    top = np.partition(s, s.size - k)[s.size - k:]
    return float(np.dot(top, top))


# ----------------------------------------------------------------- vector (sv_) forms
def sv_project_ball(s: np.ndarray, radius: float) -> np.ndarray:
    r"""``argmin_x { 1/2 ||x - s||^2 : ||x||_inf <= radius }`` for ``s >= 0``: ``min(s, radius)``.

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative
    radius : float >= 0
    """
    return _ball(_as_sv(s), as_nonneg_scalar(radius, "radius"))


def _ball(s: np.ndarray, radius: float) -> np.ndarray:
    return np.minimum(s, radius)


def sv_prox_nuclear(s: np.ndarray, t: float) -> np.ndarray:
    r"""``argmin_x  t ||x||_1 + 1/2 ||x - s||^2`` for ``s >= 0``: ``max(s - t, 0)``.

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative
    t : float >= 0
    """
    return _nuclear(_as_sv(s), as_nonneg_scalar(t, "t"))


def _nuclear(s: np.ndarray, t: float) -> np.ndarray:
    return np.maximum(s - t, 0.0)


def sv_prox_truncated_frobenius_sq(s: np.ndarray, k: int, t: float) -> np.ndarray:
    r"""``argmin_x  t/2 sum_{j<=k} x_[j]^2 + 1/2 ||x - s||^2`` for ``s >= 0``.

    ``x_[j]`` is the j-th largest entry. The minimiser keeps the order of ``s``; with a
    threshold ``theta > 0`` it equals ``s/(1+t)`` where ``s >= (1+t) theta``, ``theta`` where
    ``theta < s < (1+t) theta`` (the tied block that straddles position ``k``) and ``s``
    elsewhere. ``theta`` solves ``sum_j clip((s_j - theta)/(t theta), 0, 1) = k``, a
    non-increasing piecewise function located among the ``2n`` breakpoints
    ``{s_j, s_j/(1+t)}`` by binary search: ``O(n log n)`` overall.

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative, any order
    k : int >= 1
    t : float >= 0
    """
    return _truncated(_as_sv(s), as_positive_int(k, "k"), as_nonneg_scalar(t, "t"))


def _truncated(s: np.ndarray, k: int, t: float) -> np.ndarray:
    n = s.size
    if t == 0.0:
        return s.copy()
    if k >= n:
        return s / (1.0 + t)
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    x = ss.copy()
    if ss[k - 1] / (1.0 + t) >= ss[k]:
        x[:k] /= 1.0 + t  # no tied block: shrink the top k
    else:
        theta = _truncated_threshold(ss, k, t)
        top = ss >= (1.0 + t) * theta
        x = np.where(top, ss / (1.0 + t), np.minimum(ss, theta))
    out = np.empty_like(x)
    out[order] = x
    return out


def _truncated_threshold(ss: np.ndarray, k: int, t: float) -> float:
    """Solve ``g(theta) = k`` for sorted (non-increasing) ``ss``; see the caller."""
    n = ss.size
    asc = ss[::-1]
    csum = np.concatenate(([0.0], np.cumsum(ss)))  # csum[m] = sum of the m largest

    def counts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_top = n - np.searchsorted(asc, (1.0 + t) * theta, side="left")  # s >= (1+t) theta
        n_gt = n - np.searchsorted(asc, theta, side="right")  # s > theta
        return n_top, n_gt

    def g(theta: np.ndarray) -> np.ndarray:
        n_top, n_gt = counts(theta)
        in_block = n_gt - n_top
        sum_block = csum[n_gt] - csum[n_top]
        return n_top + (sum_block - in_block * theta) / (t * theta)

    pos = ss[ss > 0]
    breaks = np.unique(np.concatenate((pos, pos / (1.0 + t))))  # ascending, all > 0
    vals = g(breaks)  # non-increasing in theta
    # Largest breakpoint where g >= k; the root lies in [breaks[i], breaks[i+1]].
    i = int(np.searchsorted(-vals, -k, side="right")) - 1
    i = min(max(i, 0), breaks.size - 1)
    hi = breaks[i + 1] if i + 1 < breaks.size else 2.0 * breaks[i]
    mid = 0.5 * (breaks[i] + hi)
    n_top, n_gt = counts(np.array([mid]))
    n_top, n_gt = int(n_top[0]), int(n_gt[0])
    sum_block = csum[n_gt] - csum[n_top]
    denom = (n_gt - n_top) + t * (k - n_top)
    if denom <= 0 or sum_block <= 0:
        return float(breaks[i])  # g is flat at k here: any point of the plateau is exact
    return float(sum_block / denom)


def sv_prox_schatten_power(s: np.ndarray, p: float, t: float) -> np.ndarray:
    r"""``argmin_x  t ||x||_p^p + 1/2 ||x - s||^2`` for ``s >= 0`` and ``p >= 1``.

    Entry-wise: ``x = max(s - t, 0)`` for ``p = 1``, ``s / (1 + 2t)`` for ``p = 2``, and in
    general the root in ``[0, s]`` of ``x + t p x^(p-1) = s`` (safeguarded Newton).

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative
    p : float >= 1
    t : float >= 0
    """
    return _schatten(_as_sv(s), _as_power(p), as_nonneg_scalar(t, "t"))


def _as_power(p: object) -> float:
    p = as_nonneg_scalar(p, "p")
    if p < 1.0:
        raise ValueError(f"p must be >= 1 (the Schatten-p power is non-convex below 1), got {p}")
    return p


def _schatten(s: np.ndarray, p: float, t: float) -> np.ndarray:
    if t == 0.0:
        return s.copy()
    if p == 1.0:
        return np.maximum(s - t, 0.0)
    if p == 2.0:
        return s / (1.0 + 2.0 * t)
    lo = np.zeros_like(s)
    hi = s.copy()
    x = s / (1.0 + t * p * np.maximum(s, 1e-300) ** (p - 2.0)) if p > 2 else 0.5 * s
    x = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0), lo, hi)
    scale = max(float(np.max(s, initial=0.0)), 1e-300)
    for _ in range(200):
        phi = x + t * p * x ** (p - 1.0) - s
        lo = np.where(phi <= 0, x, lo)
        hi = np.where(phi >= 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            dphi = 1.0 + t * p * (p - 1.0) * x ** (p - 2.0)
            newton = x - phi / dphi
        bisect = 0.5 * (lo + hi)
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi)
        x_new = np.where(ok, newton, bisect)
        if np.max(np.abs(x_new - x), initial=0.0) <= 4e-16 * scale:
            x = x_new
            break
        x = x_new
    return x


# ------------------------------------------------------------------ matrix operators
def project_spectral_ball(Z: np.ndarray, radius: float) -> np.ndarray:
    r"""``argmin_W { 1/2 ||W - Z||_F^2 : ||W||_op <= radius }``: clip singular values at radius.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    radius : float >= 0
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    radius = as_nonneg_scalar(radius, "radius")
    return _spectral(Z, lambda s: _ball(s, radius))


def prox_nuclear(Z: np.ndarray, t: float) -> np.ndarray:
    r"""``argmin_W  t ||W||_* + 1/2 ||W - Z||_F^2``: soft-threshold the singular values by t.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    t : float >= 0
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    t = as_nonneg_scalar(t, "t")
    return _spectral(Z, lambda s: _nuclear(s, t))


def prox_truncated_frobenius_sq(Z: np.ndarray, k: int, t: float) -> np.ndarray:
    r"""``argmin_W  t/2 ||W||_(k)^2 + 1/2 ||W - Z||_F^2`` with ``||W||_(k)^2`` the sum of the
    ``k`` largest squared singular values (see :func:`sv_prox_truncated_frobenius_sq`).

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    k : int >= 1
    t : float >= 0
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    k = as_positive_int(k, "k")
    t = as_nonneg_scalar(t, "t")
    return _spectral(Z, lambda s: _truncated(s, k, t))


def prox_schatten_power(Z: np.ndarray, p: float, t: float) -> np.ndarray:
    r"""``argmin_W  t ||W||_{S_p}^p + 1/2 ||W - Z||_F^2`` for ``p >= 1``.

    With ``p = H`` this is the prox of one layer's regulariser ``||W_i||_{S_H}^H``.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    p : float >= 1
    t : float >= 0
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    p = _as_power(p)
    t = as_nonneg_scalar(t, "t")
    return _spectral(Z, lambda s: _schatten(s, p, t))
