r"""Upper bounds on the dual optimum: the relaxed primal, its value and the tie family.

The conjugate of ``Z -> 1/2 ||Z||_(k)^2`` is ``N -> 1/2 ||N||_(k)*^2``, where ``||.||_(k)*`` is
the dual norm of the Ky Fan (2, k) norm: the spectral k-support norm (Argyriou, Foygel and
Srebro, "Sparse prediction with the k-support norm", NIPS 2012; in matrix form the low-rank
inducing Frobenius norm of Grussler, Rantzer and Giselsson). Writing the dual value as a
maximum over ``N`` and exchanging max and min gives, for every ``N`` of shape ``(dH, r)``,

    D* <= U(N) = 1/2 ||Y||^2 + 1/2 ||N||_(k)*^2 - <N, A> + rho ||N diag(s)^-1||_*

(weak duality of the exchange; the feasible set of ``Gamma`` is compact, so the minimum of
``U`` is ``D*``). When ``rank N <= k``, ``||N||_(k)*`` is the Frobenius norm and ``U(N)`` is the
primal objective of ``M = N diag(s)^-1``: the relaxation drops the rank bound and replaces the
Frobenius norm by the k-support norm. The duality gap is zero exactly when ``U`` has a
minimiser of rank ``<= k``.

At a dual optimum ``Gamma*`` every minimiser of ``U`` lies in the subdifferential of
``1/2 ||.||_(k)^2`` at ``A - Gamma*``: the *tie family*
``N(G) = U_top diag(sigma_top) V_top^T + sigma U_b G V_b^T`` with ``0 <= G <= I`` and
``tr G = `` the slots left at k, where ``U_b, V_b`` span the block of singular vectors of
``A - Gamma*`` whose singular value ``sigma`` is tied at position k. A minimiser with rank
above k (``G`` not a projection) is the *rank signal*: the relaxation is not tight there.

Everything here works in the reduced coordinates of :mod:`duallinear._reduced`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._linalg import svd, svdvals

__all__ = [
    "KSupport",
    "TieFamily",
    "ksupport_sq",
    "relaxed_value",
    "relaxed_value_low_rank",
    "relaxed_rank",
    "tie_family",
    "capped_simplex",
]


class KSupport(NamedTuple):
    """``||w||_(k)*^2`` of a non-increasing vector ``w >= 0`` and its structure.

    ``w[:top]`` enter squared; the rest share the ``k - top`` remaining slots at the common
    ``level = sum(w[top:]) / (k - top)`` (the gradient of ``1/2 ||.||^2`` there). ``top =
    w.size`` when ``w`` has at most ``k`` non-zero entries (then the value is ``||w||^2``).
    ``excess`` is ``value - ||w||^2 >= 0``, computed without cancellation against ``||w||^2``.
    """

    value: float
    top: int
    level: float
    excess: float


def ksupport_sq(w: np.ndarray, k: int) -> KSupport:
    """Squared k-support norm of a non-increasing vector ``w >= 0``.

    ``||w||_(k)*^2 = sum_{i < top} w_i^2 + (sum_{i >= top} w_i)^2 / (k - top)``, with ``top``
    the unique index in ``0..k-1`` such that ``w_{top-1} > sum_{i >= top} w_i / (k - top) >=
    w_top`` (Argyriou et al. 2012, Proposition 2.1). Equivalently
    ``min {sum_i w_i^2 / theta_i : 0 < theta_i <= 1, sum_i theta_i = k}``.

    Examples
    --------
    >>> ksupport_sq(np.array([3.0, 1.0, 1.0]), 2).value  # 3^2 + (1 + 1)^2 / 1
    13.0
    >>> ksupport_sq(np.array([3.0, 1.0, 0.0]), 2).value  # rank <= k: the Frobenius norm
    10.0
    """
    w = np.asarray(w, dtype=float)
    n = w.size
    if n <= k or w[k] <= 0.0:
        return KSupport(float(w @ w), n, 0.0, 0.0)
    tail = np.concatenate((np.cumsum(w[::-1])[::-1], [0.0]))  # tail[j] = sum_{i >= j} w_i
    tops = np.arange(k)
    level = tail[:k] / (k - tops)
    ok = level >= w[:k]
    ok[1:] &= w[:k - 1] > level[1:]
    # Exactly one index qualifies in exact arithmetic; with rounding take the largest.
    top = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
    rest = w[top:]
    lev = float(level[top])
    # (sum rest)^2 / c - sum rest^2 = sum_i rest_i (lev - rest_i) * (c / c): each term >= 0.
    excess = float(np.dot(rest, lev - rest)) if lev > 0 else 0.0
    excess = max(excess, 0.0)
    value = float(w[:top] @ w[:top]) + float(rest @ rest) + excess
    return KSupport(value, top, lev, excess)


def relaxed_value(A: np.ndarray, N: np.ndarray, s: np.ndarray, rho: float, k: int,
                  residual_sq: float, sv: np.ndarray | None = None) -> float:
    """``U(N)`` in reduced form, an upper bound on ``D*`` for any ``N``.

    Evaluated as ``1/2 residual_sq + 1/2 ||N - A||^2 + 1/2 (||N||_(k)*^2 - ||N||_F^2) +
    rho ||N diag(s)^-1||_*``: every term is non-negative, so nothing cancels.

    Parameters
    ----------
    A : ndarray, shape (dH, r)
    N : ndarray, shape (dH, r)
    s : ndarray, shape (r,)
    rho : float
    k : int
    residual_sq : float
    sv : ndarray, optional
        The singular values of ``N`` if already known (non-increasing).
    """
    if N.size == 0:
        return 0.5 * residual_sq
    w = svdvals(N) if sv is None else sv
    nuclear = float(np.sum(svdvals(N / s))) if rho > 0 else 0.0
    excess = ksupport_sq(np.maximum(w, 0.0), k).excess
    return (0.5 * residual_sq + 0.5 * float(np.sum((N - A) ** 2)) + 0.5 * excess
            + rho * nuclear)


def relaxed_rank(w: np.ndarray, drop: float) -> int:
    """Singular values of a relaxed minimiser above ``drop`` times the largest."""
    if w.size == 0 or w[0] <= 0:
        return 0
    return int(np.sum(w > drop * w[0]))


def capped_simplex(lam: np.ndarray, total: float) -> np.ndarray:
    """Euclidean projection of ``lam`` onto ``{0 <= x <= 1, sum(x) = total}``
    (``0 <= total <= lam.size``), by bisection on the shift."""
    lo, hi = float(np.min(lam)) - 1.0, float(np.max(lam))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(lam - mid, 0.0, 1.0).sum() > total:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-16 * max(1.0, abs(mid)):
            break
    return np.clip(lam - 0.5 * (lo + hi), 0.0, 1.0)


class TieFamily(NamedTuple):
    """Best member of the tie family found at a dual point.

    ``value = U(N)`` (an upper bound on ``D*``), ``N`` the member (shape ``(dH, r)``),
    ``weights`` the eigenvalues of ``G`` (non-increasing; all 0 or 1 when ``N`` has rank k),
    ``block`` the tied positions ``(first, last)`` (0-based) and ``rank`` the number of
    singular values of ``N`` above ``drop`` times the largest.
    """

    value: float
    N: np.ndarray
    weights: np.ndarray
    block: tuple[int, int]
    rank: int


def _tied_block(sv: np.ndarray, k: int, rtol: float) -> tuple[int, int]:
    """First and last (0-based) positions of the values within ``rtol * sv[k-1]`` of it."""
    ref = sv[k - 1]
    near = np.abs(sv - ref) <= rtol * ref
    first = k - 1
    while first > 0 and near[first - 1]:
        first -= 1
    last = k - 1
    while last + 1 < sv.size and near[last + 1]:
        last += 1
    return first, last


def tie_family(A: np.ndarray, Gamma: np.ndarray, s: np.ndarray, rho: float, k: int,
               residual_sq: float, rtols: tuple[float, ...] = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2),
               steps: int = 300, drop: float = 1e-4) -> TieFamily:
    """The lowest ``U(N(G))`` over the tie family of ``A - Gamma``, over several tie widths.

    For each relative width in ``rtols`` the singular values of ``A - Gamma`` within it of
    ``sigma_k`` form the block; ``G`` is optimised by projected gradient descent (with
    backtracking) on ``U(N(G))`` over ``{0 <= G <= I, tr G = slots}``, from the truncation
    (``G`` the projection on the leading slots, ``U`` = the objective of the rank-k
    truncation). Every value returned is ``U`` evaluated at an explicit ``N``: a valid upper
    bound on ``D*`` whatever the accuracy of ``Gamma``.

    Parameters
    ----------
    A, Gamma : ndarray, shape (dH, r)
    s : ndarray, shape (r,)
    rho : float
    k : int
    residual_sq : float
    rtols : tuple of float
        Relative widths of the tied block tried.
    steps : int
        Projected-gradient steps per width.
    drop : float
        Relative level below which singular values of ``N`` do not count in ``rank``.
    """
    U, sv, Vt = svd(A - Gamma)
    k_eff = min(k, sv.size)
    best: TieFamily | None = None
    if k_eff == 0 or sv[k_eff - 1] <= 0:
        N = np.zeros_like(A)
        return TieFamily(relaxed_value(A, N, s, rho, k, residual_sq), N, np.zeros(0),
                         (0, -1), 0)
    tried: set[tuple[int, int]] = set()
    for rtol in rtols:
        first, last = _tied_block(sv, k_eff, rtol)
        if (first, last) in tried:
            continue
        tried.add((first, last))
        member = _optimise_block(A, U, sv, Vt, s, rho, k_eff, residual_sq, first, last, steps)
        if best is None or member[0] < best.value:
            value, N, weights = member
            w = svdvals(N)
            best = TieFamily(value, N, weights, (first, last), relaxed_rank(w, drop))
    return best


def _optimise_block(A, U, sv, Vt, s, rho, k, residual_sq, first, last, steps):
    """Projected gradient on ``G`` for the block ``first..last`` (see :func:`tie_family`)."""
    m = last - first + 1
    slots = k - first
    WL, WR = U[:, :last + 1], Vt[:last + 1].T  # (dH, b), (r, b)
    b = last + 1
    Ac = WL.T @ A @ WR
    rem = max(float(np.sum((A - WL @ Ac @ WR.T) ** 2)), 0.0)
    # ||K WR^T diag(s)^-1||_* = ||K Lc||_* with Lc = Rc^T from (WR^T S^-1)^T = Qc Rc.
    Rc = np.linalg.qr((WR.T / s).T, mode="r")
    Lc = Rc.T
    top = sv[:first]
    level = float(np.mean(sv[first:last + 1]))

    def core(G: np.ndarray) -> np.ndarray:
        K = np.zeros((b, b))
        K[np.arange(first), np.arange(first)] = top
        K[first:, first:] = level * G
        return K

    def value_grad(G: np.ndarray) -> tuple[float, np.ndarray]:
        K = core(G)
        Uk, wk, Vkt = svd(K)
        ks = ksupport_sq(wk, k)
        mu = wk.copy()
        if ks.top < wk.size:
            mu[ks.top:] = np.where(wk[ks.top:] > 0, ks.level, 0.0)
        P, nuc, Qt = svd(K @ Lc) if rho > 0 else (None, np.zeros(1), None)
        val = (0.5 * residual_sq + 0.5 * (float(np.sum((K - Ac) ** 2)) + rem) + 0.5 * ks.excess
               + rho * float(np.sum(nuc)))
        gK = (K - Ac) + (Uk * (mu - wk)) @ Vkt
        if rho > 0:
            gK += rho * (P @ Qt) @ Lc.T
        gG = level * gK[first:, first:]
        return val, 0.5 * (gG + gG.T)

    def project(G: np.ndarray) -> np.ndarray:
        lam, Q = np.linalg.eigh(0.5 * (G + G.T))
        return (Q * capped_simplex(lam, slots)) @ Q.T

    G = np.zeros((m, m))
    G[np.arange(slots), np.arange(slots)] = 1.0
    val, grad = value_grad(G)
    if m > slots:
        step = 1.0 / max(level * level, 1e-300)
        for _ in range(steps):
            improved = False
            for _ in range(40):
                G_new = project(G - step * grad)
                val_new, grad_new = value_grad(G_new)
                if val_new < val:
                    improved = True
                    break
                step *= 0.5
            if not improved:
                break
            decrease = val - val_new
            G, val, grad = G_new, val_new, grad_new
            step *= 1.5
            if decrease <= 1e-16 * max(abs(val), 1.0):
                break
    lam = np.linalg.eigvalsh(0.5 * (G + G.T))[::-1]
    N = WL @ core(G) @ WR.T
    # Report U at the explicit N (the same number as val, without trusting the compression).
    return relaxed_value(A, N, s, rho, k, residual_sq), N, np.clip(lam, 0.0, 1.0)


def relaxed_value_low_rank(A: np.ndarray, N: np.ndarray, rank: int, s: np.ndarray,
                           rho: float, k: int, residual_sq: float, oversample: int = 8,
                           seed: int = 0) -> tuple[float, np.ndarray]:
    """``U`` at ``N' = Q Q^T N`` for ``Q`` an orthonormal basis of ``N Omega`` (``Omega`` a
    seeded Gaussian ``(r, rank + oversample)`` matrix), and the singular values of ``N'``.

    For ``N`` of rank at most ``rank + oversample`` (a spectral change of that many values),
    ``N' = N`` up to rounding, and every evaluation works on the ``(rank + oversample) x r``
    factor: cheaper than :func:`relaxed_value` on the full matrix. The value is ``U(N')`` at the
    explicit ``N'``, hence an upper bound on ``D*`` in any case.
    """
    q = min(rank + oversample, *N.shape)
    if q <= 0:
        return relaxed_value(A, np.zeros_like(A), s, rho, k, residual_sq), np.zeros(0)
    omega = np.random.default_rng(seed).standard_normal((N.shape[1], q))
    Q, _ = np.linalg.qr(N @ omega)
    C = Q.T @ N
    w = svdvals(C)
    nuclear = float(np.sum(svdvals(C / s))) if rho > 0 else 0.0
    excess = ksupport_sq(w, k).excess
    value = (0.5 * residual_sq + 0.5 * float(np.sum((Q @ C - A) ** 2)) + 0.5 * excess
             + rho * nuclear)
    return value, w
