r"""Spectral proximal operators and projections ([section 6][sec-prox] of the math page).

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

from . import _spectral
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
    return _spectral.apply(Z, fn)


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
    return _spectral.ball(_as_sv(s), as_nonneg_scalar(radius, "radius"))


def sv_prox_nuclear(s: np.ndarray, t: float) -> np.ndarray:
    r"""``argmin_x  t ||x||_1 + 1/2 ||x - s||^2`` for ``s >= 0``: ``max(s - t, 0)``.

    Parameters
    ----------
    s : ndarray, shape (n,), non-negative
    t : float >= 0
    """
    return _spectral.nuclear(_as_sv(s), as_nonneg_scalar(t, "t"))


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

    Examples
    --------
    >>> import numpy as np
    >>> from duallinear.prox import sv_prox_truncated_frobenius_sq
    >>> sv_prox_truncated_frobenius_sq(np.array([4.0, 1.0]), k=1, t=1.0)  # shrink the top 1
    array([2., 1.])
    """
    return _spectral.truncated(_as_sv(s), as_positive_int(k, "k"), as_nonneg_scalar(t, "t"))


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
    return _spectral.schatten(_as_sv(s), _as_power(p), as_nonneg_scalar(t, "t"))


def _as_power(p: object) -> float:
    p = as_nonneg_scalar(p, "p")
    if p < 1.0:
        raise ValueError(f"p must be >= 1 (the Schatten-p power is non-convex below 1), got {p}")
    return p


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
    return _spectral.apply(Z, lambda s: _spectral.ball(s, radius))


def prox_nuclear(Z: np.ndarray, t: float) -> np.ndarray:
    r"""``argmin_W  t ||W||_* + 1/2 ||W - Z||_F^2``: soft-threshold the singular values by t.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    t : float >= 0

    Examples
    --------
    >>> import numpy as np
    >>> from duallinear.prox import prox_nuclear
    >>> prox_nuclear(np.diag([3.0, 0.5]), 1.0)
    array([[2., 0.],
           [0., 0.]])
    """
    Z = as_matrix(Z, "Z", allow_empty=True)
    t = as_nonneg_scalar(t, "t")
    return _spectral.apply(Z, lambda s: _spectral.nuclear(s, t))


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
    return _spectral.apply(Z, lambda s: _spectral.truncated(s, k, t))


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
    return _spectral.apply(Z, lambda s: _spectral.schatten(s, p, t))
