r"""Singular-value kernels and the spectral maps built on them.

A spectral map takes ``Z = U diag(s) V^T``, maps the singular values through one of the
vector kernels below, and rebuilds ``U diag(x) V^T``. The kernels trust their inputs
(non-negative vectors, valid parameters); :mod:`duallinear.prox` validates and exposes them.
The Douglas-Rachford maps need only the *change* ``U diag(amount(s)) V^T`` when few values
move, which :func:`spectral_change` computes by the cheapest route that is accurate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._linalg import LeadingSVD, gram_spectral_change, svd

__all__ = [
    "ROUTES",
    "apply",
    "ball",
    "nuclear",
    "schatten",
    "spectral_change",
    "truncated",
]

#: How :func:`spectral_change` computed a change: from leading triplets, through the Gram
#: matrix, or from a full SVD.
ROUTES = ("leading", "gram", "svd")


def apply(Z: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``U diag(fn(s)) V^T`` for the thin SVD ``Z = U diag(s) V^T``."""
    U, s, Vt = svd(Z)
    return (U * fn(s)) @ Vt


def ball(s: np.ndarray, radius: float) -> np.ndarray:
    """``argmin_x {1/2 ||x - s||^2 : ||x||_inf <= radius}`` for ``s >= 0``."""
    return np.minimum(s, radius)


def nuclear(s: np.ndarray, t: float) -> np.ndarray:
    """``argmin_x t ||x||_1 + 1/2 ||x - s||^2`` for ``s >= 0``."""
    return np.maximum(s - t, 0.0)


def truncated(s: np.ndarray, k: int, t: float) -> np.ndarray:
    """``argmin_x t/2 sum_{j<=k} x_[j]^2 + 1/2 ||x - s||^2`` for ``s >= 0`` (any order)."""
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
    """Solve ``g(theta) = k`` for sorted (non-increasing) ``ss``; see :func:`truncated`."""
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


def schatten(s: np.ndarray, p: float, t: float) -> np.ndarray:
    """``argmin_x t ||x||_p^p + 1/2 ||x - s||^2`` for ``s >= 0``, ``p >= 1``: the root in
    ``[0, s]`` of ``x + t p x^(p-1) = s`` (closed form for p = 1, 2; safeguarded Newton)."""
    if t == 0.0:
        return s.copy()
    if p == 1.0:
        return np.maximum(s - t, 0.0)
    if p == 2.0:
        return s / (1.0 + 2.0 * t)
    if p < 2.0:
        return _root_below_two(s, p - 1.0, t * p)
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


def _root_below_two(s: np.ndarray, q: float, c: float) -> np.ndarray:
    """The root of ``x + c x^q = s`` (``0 < q < 1``, ``c > 0``) for each ``s >= 0``.

    Newton on ``u = log x``: ``F(u) = e^u + c e^(q u) - s`` is increasing and convex, so from
    a start where ``F >= 0`` the iterates fall monotonically to the root, and each step's size
    is the relative change of ``x``. In ``x`` itself the root can lie far below ``s``
    (``x + 110 x^0.1 = 1`` at 3.9e-21), where ``phi`` is steep and a step of ``eps * s`` left
    it at 2 (found by hypothesis 6.100).
    """
    x = np.zeros_like(s)
    pos = s > 0.0
    if not np.any(pos):
        return x
    sp = s[pos]
    log_s = np.log(sp)
    # F(log s) = c s^q >= 0 and F(log(s/c)/q) = (s/c)^(1/q) >= 0: the smaller start is closer.
    u = np.minimum(log_s, (log_s - np.log(c)) / q)
    with np.errstate(over="ignore", under="ignore"):
        for _ in range(100):
            ex, ecq = np.exp(u), c * np.exp(q * u)
            step = (ex + ecq - sp) / (ex + q * ecq)
            u = u - np.maximum(step, 0.0)  # F >= 0 all along: never a step up
            if np.all(step <= 4e-16 * np.maximum(1.0, np.abs(u))):
                break
        root = np.minimum(np.exp(u), sp)
        # u carries eps |u| of absolute error, i.e. that much relative error in x: one Newton
        # step in x itself, kept where it lowers |phi|, brings it to rounding level.
        phi = root + c * root**q - sp
        with np.errstate(divide="ignore", invalid="ignore"):
            polished = root - phi / (1.0 + q * c * root ** (q - 1.0))
        better = (np.isfinite(polished) & (polished > 0.0)
                  & (np.abs(polished + c * polished**q - sp) < np.abs(phi)))
        x[pos] = np.where(better, polished, root)
    return x


def spectral_change(B: np.ndarray, amount: Callable[[np.ndarray], np.ndarray],
                    lead: LeadingSVD | None, gram: bool, start: int = 1
                    ) -> tuple[np.ndarray, str]:
    """``U diag(amount(s)) V^T`` for ``B = U diag(s) V^T``, and the route that computed it.

    ``amount`` is zero past the leading values. The change comes from leading triplets if
    ``lead`` settles them (route ``"leading"``), else through the Gram matrix if ``gram`` and
    that is accurate (``"gram"``), else from a full SVD (``"svd"``).
    """
    if lead is not None:
        top = lead(B, lambda sv: int(np.count_nonzero(amount(sv))), start=start)
        if top is not None:
            U, sv, Vt, c = top
            return (U[:, :c] * amount(sv)[:c]) @ Vt[:c], "leading"
    change = gram_spectral_change(B, amount) if gram else None
    if change is not None:
        return change, "gram"
    U, sv, Vt = svd(B)
    return (U * amount(sv)) @ Vt, "svd"
