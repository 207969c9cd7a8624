r"""A certificate through the primal: local refinement of the factored rank-k problem.

From a dual iterate, the truncation ``N = trunc_k(A - Gamma)`` gives a rank-k start; a local
search on the factored primal (with one factor eliminated: variable projection, Golub and
Pereyra, "The differentiation of pseudo-inverses and nonlinear least squares problems whose
variables separate", SIAM J. Numer. Anal. 10, 1973) refines it to rounding level, and its
optimality conditions give a dual point that is then certified exactly like any other.
When that fails with the rank bound active, the refined point is kept (:class:`Held`) and
tried again with the free blocks of later iterates (:func:`revisit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.linalg.blas import dtrsm
from scipy.linalg.lapack import dpotrf

from .._lbfgs import lbfgs
from .._linalg import (
    UNIT_ROUNDOFF,
    frobenius,
    frobenius_sq_error,
    gram_norm_below,
    higham_gamma,
    ritz_norm,
    scaling_slack,
    smaller_gram,
    svd,
    svd_of_product,
    svdvals,
)
from .._reduced import GAP_FLOOR, Reduced, ball_factor, op_norm_bound
from .outcome import Best, met
from .settings import DRSettings

__all__ = ["Held", "Refinement", "candidate_norm", "projected_primal", "refine", "revisit",
           "start_candidate", "structured_norm"]

#: ``certify(Gamma) -> (feasible Gamma, lower, upper)``; also called as
#: ``certify(Gamma, norm=bound)`` with an upper bound on ``||Gamma diag(s)||_op``.
Certify = Callable[..., tuple[np.ndarray, float, float]]


class Refinement(NamedTuple):
    """Best certified point of one refinement attempt (None when no candidate was worth a
    certificate: :meth:`Held.hopeless`), the function evaluations it took, the route that
    produced the point (``"rank_k"`` or ``"low_rank"``) and, when it did not certify with
    ``M`` of rank k, that ``M`` (for :func:`revisit`)."""

    best: Best | None
    evaluations: int
    route: str
    held: Held | None = None


def refine(red: Reduced, Gamma: np.ndarray, top_k: Callable, certify: Certify, tol: float,
           settings: DRSettings, free_norm: Callable[[np.ndarray], float] | None = None,
           bounds: bool = False) -> Refinement | None:
    """A certificate through the primal, started from the dual point ``Gamma``.

    1. ``N = trunc_k(A - Gamma)``, factored as ``M = N diag(s)^-1 = L R^T`` (balanced).
    2. L-BFGS on the factored rank-k primal (in reduced, normalised units)
       ``1/2 ||L R^T diag(s) - A||^2 + rho/2 (||L||^2 + ||R||^2)``, whose minimum over
       ``L R^T = M`` is ``P(M) = 1/2 ||M diag(s) - A||^2 + rho ||M||_*``, with ``L``
       eliminated (see :func:`projected_primal`).
    3. With ``M = P diag(m) Q^T`` (its non-zero part), the optimality conditions say
       ``Gamma* diag(s) = rho P Q^T + W`` with ``W`` orthogonal to ``P`` and ``Q`` and
       ``||W||_op <= rho``. ``W`` is taken from the current ``Gamma`` (its block orthogonal to
       ``P`` and ``Q``, scaled into the ball), which need not be accurate: it only has to
       keep the truncation of ``A - Gamma`` on ``N``. From ``Gamma = 0`` (the truncation of
       A) ``W = 0``, and the candidate's norm in the ball is bounded through ``P`` and ``Q``
       (:func:`structured_norm`) instead of being computed from all its singular values.
    4. The new point is certified exactly (``certify``), like any other; at rank k with its
       truncation taken in the subspaces of ``N = M diag(s)`` (LAPACK's values of
       ``A - Gamma``, no vectors: :meth:`~duallinear._reduced.Reduced.certify`).

    When the certificate fails with ``M`` of rank k, the usual cause is step 3, not ``M``
    (measured: the failed attempts at the 2nd iterate of three d = 200 instances had the
    certified optimum's ``M`` to 1e-15 in value): other free blocks are tried
    (:class:`Held`), and the attempt's ``M`` is returned for :func:`revisit` at the
    following iterates. When the refined ``M`` has fewer than k significant singular
    values, the rank bound is inactive: see :func:`_refine_low_rank`.

    ``free_norm(W)`` gives ``||W||_op`` for step 3 (default: LAPACK's largest singular value
    with its allowance, an upper bound: :func:`~duallinear._reduced.op_norm_bound`);
    ``bounds``: it is an upper bound (so is the default), and then the candidate's norm in
    the ball is bounded through ``W``, ``P`` and ``Q`` (:func:`candidate_norm`) instead of
    computed from all its singular values.

    Returns the best certified point with its evaluations and route, or None if the local
    search diverged at once.
    """
    A, s, rho, k = red.A, red.s, red.rho, red.k
    # From Gamma = 0 (the truncation of A) there is no free block to keep.
    zero = not np.any(Gamma)
    Uk, sk, Vtk = top_k(A if zero else A - Gamma)
    P0, m0, Qt0 = svd_of_product(Uk, (sk[:, None] * Vtk / s).T)
    fun, left, scale, x = projected_primal(A, s, rho, m0[:k], Qt0[:k],
                                           settings.refine_curvature)
    return _descend(red, _Search(fun, left, scale), x, None if zero else Gamma, certify, tol,
                    settings, free_norm or op_norm_bound, 1.0, settings.refine_ftol,
                    bounds=bounds or free_norm is None)


def revisit(red: Reduced, held: Held, Gamma: np.ndarray, certify: Certify, tol: float,
            settings: DRSettings, free_norm: Callable[[np.ndarray], float] | None = None,
            bounds: bool = False) -> Refinement | None:
    """The refinement of a failed attempt again, with the free block of a later ``Gamma``.

    Only when one of the free blocks (:meth:`Held.ready_blocks`) is ready at the held ``M``:
    then the search resumes from the held point (at its minimum: a few evaluations per
    stage) and certifies as :func:`refine` does, that block first. Else None, at the cost of
    two to four norms (no certificate). ``free_norm`` and ``bounds`` as in :func:`refine`.
    """
    norm = free_norm or op_norm_bound
    ready = held.ready_blocks(red, Gamma, norm, settings, settings.refine_mix)
    if not ready:
        return None
    # Straight to the last stage (the held point is the minimum of the earlier ones), with
    # gradient-only steps after it (DRSettings.refine_revisit_polish).
    return _descend(red, held.search, held.x, Gamma, certify, tol, settings, norm,
                    ready[0][1], settings.refine_ftol[-1:], settings.refine_revisit_polish,
                    bounds=bounds or free_norm is None, ready=ready[0][2])


#: :meth:`Held.hopeless` skips a certificate whose gap must exceed this multiple of ``tol``.
_HOPELESS = 100.0


#: Block size and power steps of the Ritz estimate that scales ``T`` (it only shapes a free
#: block): about 0.02 of an SVD at d = 200, where an exact norm costs 0.19.
_RITZ_BLOCK, _RITZ_STEPS = 4, 2


def _orthogonal_block(Z: np.ndarray, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``(I - P P^T) Z (I - Q Q^T)`` for orthonormal columns ``P`` and ``Q`` (a new array)."""
    Z = Z - P @ (P.T @ Z)
    Z -= (Z @ Q) @ Q.T
    return Z


def _into_ball(W: np.ndarray, rho: float, norm: Callable[[np.ndarray], float]) -> np.ndarray:
    """``W`` scaled in place into ``{||W||_op <= rho}`` on ``norm(W)``; returned."""
    W *= min(1.0, rho / max(norm(W), np.finfo(np.float64).tiny))
    return W


class _Search(NamedTuple):
    """The variable-projection objective of one attempt (see :func:`projected_primal`)."""

    fun: Callable
    left: Callable[[np.ndarray], np.ndarray]
    scale: np.ndarray


class Held:
    """A refined rank-k ``M = P diag(m) Q^T`` whose certificate failed, with what its dual
    points need.

    The dual points with ``Gamma diag(s) = rho P Q^T + W`` (``W`` orthogonal to ``P`` and
    ``Q``) whose truncation is ``N = M diag(s)`` are those with ``A - Gamma = N + T``, where
    ``T`` is orthogonal to ``P`` on the left and to ``diag(s) Q`` on the right, and
    ``W = E - T diag(s)`` for the fixed ``E`` (the block of ``(A - N) diag(s)`` orthogonal
    to ``P`` and ``Q``; the stationarity of ``M`` makes the rest ``rho P Q^T``). A certificate
    needs ``||W||_op <= rho`` (feasibility) and ``||T||_op < sigma_k(N)`` (the truncation):
    a free block is *ready* when, scaled into the ball, it leaves
    ``||T||_op <= (1 - refine_ready) sigma_k(N)``.
    """

    def __init__(self, red: Reduced, search: _Search, x: np.ndarray, P: np.ndarray,
                 m: np.ndarray, Qt: np.ndarray):
        self.search, self.x, self.P, self.Q = search, x, P, Qt.T
        self._m, self._red = m, red
        self._parts: tuple[np.ndarray, float, np.ndarray, np.ndarray] | None = None
        self._right: np.ndarray | None = None
        # A block for the Ritz estimates of ||T||, warm from one estimate to the next.
        self._block = np.random.default_rng(0).standard_normal((red.A.shape[1], _RITZ_BLOCK))
        self._WT: tuple[np.ndarray, np.ndarray] | None = None  # (Gamma, its W_T)
        self._WG: tuple[np.ndarray, np.ndarray] | None = None  # (Gamma, its W_G)

    def _estimate(self, Z: np.ndarray) -> float:
        """``||Z||_op`` from below (Ritz value), warm-started from the previous estimate."""
        value, self._block = ritz_norm(Z, self._block, _RITZ_STEPS)
        return value

    @property
    def right(self) -> np.ndarray:
        """An orthonormal basis of ``N``'s row space (the range of ``diag(s) Q``)."""
        if self._right is None:
            self._right = np.linalg.qr(self.Q * self._red.s[:, None])[0]
        return self._right

    def parts(self) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """``(N, sigma_k(N), E, basis of N's row space)``, formed on first use (the first
        free block, from ``Gamma`` alone, needs none of them)."""
        if self._parts is None:
            s, Qt = self._red.s, self.Q.T
            N = (self.P * self._m) @ (Qt * s)
            sigma = float(svdvals(self._m[:, None] * (Qt * s))[-1])
            E = self._orthogonal((self._red.A - N) * s)
            self._parts = N, sigma, E, self.right
        return self._parts

    def _orthogonal(self, Z: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
        """The block of ``Z`` orthogonal to ``P`` and to ``right`` (default ``Q``)."""
        return _orthogonal_block(Z, self.P, self.Q if right is None else right)

    def free_block(self, red: Reduced, Gamma: np.ndarray, norm: Callable, lam: float,
                   WG: np.ndarray | None = None) -> np.ndarray:
        """The free block ``lam W_G + (1 - lam) W_T`` from ``Gamma``, scaled into the ball:
        ``W_G`` is the block of ``Gamma diag(s)`` (scaled into the ball; passed in when
        known, else kept for the next call with the same ``Gamma``) and ``W_T`` the one
        that ``T``, taken from ``A - Gamma - N`` (scaled to ``||T|| <= sigma_k(N)`` on a
        Ritz estimate: it only shapes the block), gives."""
        rho, s = red.rho, red.s
        tiny = np.finfo(np.float64).tiny
        if WG is None:
            if self._WG is None or self._WG[0] is not Gamma:
                self._WG = Gamma, _into_ball(self._orthogonal(Gamma * s), rho, norm)
            WG = self._WG[1]
        if lam == 1.0:
            return WG
        N, sigma, E, right = self.parts()
        if self._WT is None or self._WT[0] is not Gamma:
            T = self._orthogonal(red.A - Gamma - N, right)
            T *= min(1.0, sigma / max(self._estimate(T), tiny))
            self._WT = Gamma, E - T * s
        return _into_ball(lam * WG + (1.0 - lam) * self._WT[1], rho, norm)

    def hopeless(self, red: Reduced, G: np.ndarray, upper: float, tol: float) -> bool:
        """Whether the candidate ``G`` cannot certify to ``tol``. In the bases ``P`` and
        :attr:`right`, ``A - G`` is ``C`` (the k x k block, about ``N``) beside the block
        ``T`` orthogonal to both, up to the couplings (``M``'s stationarity). With ``||T||_op``
        above ``sigma_k(C)`` the truncation takes a value of ``T`` in place of the k-th of
        ``C``, which lowers the dual value by ``(||T||^2 - sigma_k^2) / 2`` below one that is
        at most the objective ``upper`` of ``M``. Asked of a loss of ``_HOPELESS`` times
        ``tol`` (relative), decided by a Cholesky factorisation (:func:`gram_norm_below`):
        about a fifth of an SVD at 200 x 200."""
        B = red.A - G
        right = self.right
        sigma = float(svdvals((self.P.T @ B) @ right)[-1])
        T = self._orthogonal(B, right)
        del B
        gram = smaller_gram(T)
        if gram is None:
            return False
        loss = 2.0 * _HOPELESS * tol * max(abs(upper), GAP_FLOOR * red.zero_value)
        return not gram_norm_below(gram, math.sqrt(sigma * sigma + loss))

    def ready_blocks(self, red: Reduced, Gamma: np.ndarray, norm: Callable,
                     settings: DRSettings, mixes: tuple[float, ...]
                     ) -> list[tuple[float, float, np.ndarray]]:
        """``(ratio, lam, W)`` for the ready free blocks among ``mixes`` (and
        ``settings.refine_near_mix`` when one came near: see ``DRSettings.refine_near``),
        each ``W`` scaled into the ball on ``norm``; ``ratio = ||T||_op / sigma_k(N)``.

        Readiness is decided by a Cholesky factorisation (:func:`gram_norm_below`), not a
        norm: a filter with a margin of ``refine_ready``, decided to about 1e-11. Of a single
        ready block ``ratio`` is then its bound ``1 - refine_ready``; of several, the norm
        itself, smallest first."""
        if not mixes:
            return []
        N, sigma, E, right = self.parts()
        bound = (1.0 - settings.refine_ready) * sigma
        near_level = bound + settings.refine_near * sigma
        WG = self.free_block(red, Gamma, norm, 1.0)
        ready, came_near = [], False
        queue = list(mixes)
        while queue:
            lam = queue.pop(0)
            # (A filter on Ritz estimates first refused almost none: the top of ||T|| is a
            # cluster on Gaussian X.)
            W = self.free_block(red, Gamma, norm, lam, WG)
            T = (E - W) / red.s
            G = smaller_gram(T)
            if G is None:
                continue
            if gram_norm_below(G, bound):
                ready.append((bound / sigma, lam, W, T))
            elif not came_near:
                came_near = gram_norm_below(G, near_level)
            near = settings.refine_near_mix
            if (not queue and not ready and came_near and near not in mixes
                    and lam != near):
                queue.append(near)  # (see DRSettings.refine_near)
        if len(ready) > 1:
            ready = [(norm(T) / sigma, lam, W, T) for _r, lam, W, T in ready]
            ready.sort(key=lambda entry: entry[0])
        return [(ratio, lam, W) for ratio, lam, W, _T in ready]


def _descend(red: Reduced, search: _Search, x: np.ndarray, Gamma: np.ndarray | None,
             certify: Certify, tol: float, settings: DRSettings, norm: Callable,
             first: float, stages: tuple[float, ...], polish: int = 0, bounds: bool = False,
             ready: np.ndarray | None = None) -> Refinement | None:
    """Steps 2-4 of :func:`refine` from the point ``x`` (``Gamma`` None: from zero), L-BFGS
    stopping on the relative decreases ``stages`` in turn; at rank k the free block
    ``ready`` (a held point's, found ready: see :func:`revisit`) is certified first, then
    the block of mix ``first``, then the other ready ones (see :class:`Held`). ``bounds``:
    ``norm`` is an upper bound on ``||W||_op`` (see :func:`_certify_candidate`)."""
    s, rho, k = red.s, red.rho, red.k
    fun, left, scale = search

    def candidate(W: np.ndarray, P: np.ndarray, Q: np.ndarray, G: np.ndarray,
                  right: np.ndarray | None = None) -> Best:
        return _certify_candidate(red, certify, tol, G, W, P, Q, bounds, right)

    GS = None if Gamma is None else Gamma * s
    best: Best | None = None
    held: Held | None = None
    route, nfev = "", 0
    for ftol in stages:
        # A loose stop first; resume (warm) at rounding level only if that did not certify
        # but came within refine_far.
        out = lbfgs(fun, x, memory=settings.refine_memory, ftol=ftol,
                    gtol=0.0 if polish else settings.refine_gtol,
                    max_eval=settings.refine_max_eval, polish=polish)
        nfev += out.nfev
        if out.status == "non-finite":
            break
        x = out.x
        R = x.reshape(scale.shape) * scale
        P, m, Qt = svd_of_product(left(R), R)
        rank = int(np.sum(m > m[0] * 1e-12)) if m.size and m[0] > 0 else 0
        if GS is None:
            # W = 0: the norm of the candidate in the ball is bounded through P and Q (no
            # decomposition of the candidate).
            G, bound = start_candidate(P[:, :rank], Qt[:rank].T, rho, s)
            best, route = _take(Best.of(certify(G, norm=bound), red), "rank_k", best, route)
        elif rank == k and m[-1] >= settings.refine_drop * m[0]:
            held = Held(red, search, x, P[:, :k], m[:k], Qt[:k])
            base = rho * (held.P @ held.Q.T)
            blocks = [] if ready is None else [ready]
            blocks.append(None)  # (the block of mix `first` at this M)
            for W in blocks:
                # The ready block of the held M, orthogonal to this M instead (the dual
                # value is stationary in the free block: a move of order delta in M costs
                # order delta^2 there), saves forming the block again; else mix `first`.
                W = (held.free_block(red, Gamma, norm, first) if W is None
                     else _into_ball(held._orthogonal(W), rho, norm))
                G = (W + base) / s
                if ready is None and held.hopeless(red, G, out.fun + 0.5 * red.residual_sq,
                                                   tol):
                    continue  # (a fresh attempt's own block, not worth its certificate)
                best, route = _take(candidate(W, held.P, held.Q, G, held.right), "rank_k",
                                    best, route)
                if met(best.gap, tol):
                    break
            if best is None or not met(best.gap, tol):
                others = tuple(mix for mix in settings.refine_mix if mix != first)
                for _ratio, _mix, W in held.ready_blocks(red, Gamma, norm, settings, others):
                    best, route = _take(candidate(W, held.P, held.Q, (W + base) / s,
                                                  held.right), "rank_k", best, route)
                    if met(best.gap, tol):
                        break
        else:
            # W: the current iterate's block orthogonal to the refined M, scaled into the ball.
            P, Q = P[:, :rank], Qt[:rank].T
            W = _into_ball(_orthogonal_block(GS, P, Q), rho, norm)
            G = W + rho * (P @ Q.T)
            G /= s
            best, route = _take(candidate(W, P, Q, G), "rank_k", best, route)
        if best is not None and met(best.gap, tol):
            break
        if m.size and m[-1] < settings.refine_drop * m[0]:
            low, evaluations = _refine_low_rank(
                red, m, Qt, int(np.sum(m >= settings.refine_drop * m[0])), certify, settings)
            nfev += evaluations
            if low is not None:
                best, route = _take(Best.of(low, red), "low_rank", best, route)
                if met(best.gap, tol):
                    break
        if best is None or best.gap > settings.refine_far:
            break  # far off: tighter stages would not close it (revisits with later W may)
    if best is None:
        # (No candidate was worth a certificate: the rank-k point is held all the same.)
        return None if held is None else Refinement(None, nfev, route, held)
    return Refinement(best, nfev, route, None if met(best.gap, tol) else held)


def start_candidate(P: np.ndarray, Q: np.ndarray, rho: float, s: np.ndarray
                    ) -> tuple[np.ndarray, float]:
    """The candidate ``Gamma = (rho P Q^T) / s`` of a refinement from zero, in the ball, and an
    upper bound on its ``||Gamma diag(s)||_op``: scaled on :func:`structured_norm` by
    :func:`~duallinear._reduced.ball_factor` (the scaling's rounding included) when that
    exceeds ``rho``. Formed and scaled in place: one iterate-sized array."""
    G = P @ Q.T
    G *= rho
    G /= s
    bound = structured_norm(P, Q, rho)
    if bound > rho:
        G *= ball_factor(rho, bound, G.shape)
        bound = rho
    return G, bound


def _certify_candidate(red: Reduced, certify: Certify, tol: float, G: np.ndarray,
                       W: np.ndarray, P: np.ndarray, Q: np.ndarray, bounds: bool,
                       right: np.ndarray | None = None) -> Best:
    """The certificate of the candidate ``G = (W + rho P Q^T) / s`` (as formed in floats).

    With ``bounds`` (``W`` was scaled into the ball on an upper bound of its norm), its norm
    in the ball is bounded by :func:`candidate_norm` instead of computed: about 0.4 of an SVD
    less per certificate at 200 x 200. The bound sits about 1e-12 above the norm (relative),
    which shrinks ``G`` by as much and lowers its dual value by at most that fraction of the
    objective (``<G diag(s), M> <= rho ||M||_*``); a candidate that misses ``tol`` by no more
    than that is certified again with the exact norm. ``W`` came out of the ball's scaling,
    so ``||W||_op <= rho (1 + (sqrt(min(dH, r)) + 2) eps)`` (the scaling's rounding, bounded
    in Frobenius norm). ``right``: an orthonormal basis of the row space of ``M diag(s)``,
    when the candidate's truncation is meant to be ``M diag(s)`` (a held point): the
    certificate then takes its truncation in ``(P, right)`` (:meth:`Reduced.certify`)."""
    extra = {} if right is None else {"basis": (P, right)}

    def at(norm: float | None = None) -> Best:
        return Best.of(certify(G, norm=norm, **extra), red)

    if not bounds:
        return at()
    rho = red.rho
    bound = candidate_norm(W, P, Q, rho,
                           rho * (1.0 + scaling_slack(W.shape)))
    if not math.isfinite(bound):
        return at()
    point = at(bound)
    if not met(point.gap, tol) and bound > rho:
        excess = 2.0 * (bound / rho - 1.0) * abs(point.upper)
        if met(red.gap(point.upper, point.lower + excess), tol):
            point = at()  # (the exact norm may certify it)
    return point


def _take(candidate: Best, name: str, best: Best | None, route: str) -> tuple[Best, str]:
    """The better of ``candidate`` (from route ``name``) and ``best``, with its route."""
    return (candidate, name) if candidate.better(best) is candidate else (best, route)


def structured_norm(P: np.ndarray, Q: np.ndarray, rho: float) -> float:
    """An upper bound on ``||Gamma diag(s)||_op`` (exact arithmetic) for the float matrix
    ``Gamma = (rho * (P @ Q.T)) / s``, whatever ``s > 0``: ``rho ||P|| ||Q||`` plus the
    rounding of the product (at most ``gamma_c |P| |Q|^T`` per entry, ``c`` the columns) and
    of the scaling and division (``gamma_2`` relative per entry), bounded in Frobenius norm.

    Parameters
    ----------
    P : ndarray, shape (dH, c)
    Q : ndarray, shape (r, c)
    rho : float
    """
    if not P.size or not Q.size:
        return 0.0
    u, gamma = UNIT_ROUNDOFF, higham_gamma
    c = P.shape[1]
    # (The factor 1 + 4 c eps allows for LAPACK's error in the two largest singular values.)
    norms = float(svdvals(P)[0]) * float(svdvals(Q)[0]) * (1.0 + 8.0 * c * u)
    fro = float(np.linalg.norm(P)) * float(np.linalg.norm(Q))
    return rho * (norms + (gamma(c) + gamma(2) * (1.0 + gamma(c))) * fro)


def candidate_norm(W: np.ndarray, P: np.ndarray, Q: np.ndarray, rho: float,
                   w_norm: float) -> float:
    """An upper bound on ``||Gamma diag(s)||_op`` (exact arithmetic) for the float matrix
    ``Gamma = (W + rho * (P @ Q.T)) / s``, whatever ``s > 0``, given ``w_norm >= ||W||_op``:
    no decomposition of ``Gamma`` (about 0.1 of the exact norm's cost at 200 x 200, c = 40).

    For the exact ``V = W + rho P Q^T`` and ``Pi`` the orthogonal projector onto the range of
    ``Q``: ``V^T V`` is ``(W (I - Pi))^T (W (I - Pi)) + rho^2 Q P^T P Q^T`` (two blocks, on
    the range of ``Q`` and its complement) plus terms of norm at most
    ``2 ||W Pi|| ||W|| + 2 rho ||P^T W|| ||Q||``, so

        ||V||^2 <= max(||W||^2, rho^2 ||P||^2 ||Q||^2) + 2 ||W Pi|| ||W|| + 2 rho ||P^T W|| ||Q||

    with ``||W Pi|| <= ||W Q|| / sigma_min(Q)``; ``||P||^2 <= 1 + ||P^T P - I||_F``,
    ``sigma_min(Q)^2 >= 1 - ||Q^T Q - I||_F``, and the products' rounding
    (``gamma_l |A|^T |B|`` per entry for an inner dimension ``l``) bounded in Frobenius norm.
    Nothing assumes ``W`` orthogonal to ``P`` and ``Q``: the terms that vanish when it is
    are computed, not dropped. The rounding of the sum, the product ``rho (P Q^T)`` and the
    division by ``s`` adds at most ``gamma_2 ||W||_F + rho (gamma_(c+1) + gamma_2 (1 +
    gamma_(c+1))) ||P||_F ||Q||_F`` in Frobenius norm (as in :func:`structured_norm`; taken
    with ``gamma_3`` for ``gamma_2``). Returns ``inf`` when ``Q`` is too far
    from orthonormal for the bound (``||Q^T Q - I||_F >= 1/2``).

    Parameters
    ----------
    W : ndarray, shape (dH, r)
    P : ndarray, shape (dH, c)
    Q : ndarray, shape (r, c)
    rho : float
    w_norm : float
    """
    u, gamma = UNIT_ROUNDOFF, higham_gamma

    def fro(Z: np.ndarray) -> float:  # ||Z||_F, rounded up
        return frobenius(Z) * (1.0 + frobenius_sq_error(Z.size))

    m, n = W.shape
    c = P.shape[1]
    if c == 0:
        return w_norm * (1.0 + gamma(2)) * (1.0 + 4.0 * u)

    def deviation(F: np.ndarray, inner: int) -> float:
        """``||F^T F - I||_F`` rounded up, from the float Gram matrix of ``F``."""
        G = F.T @ F
        G[np.diag_indices_from(G)] -= 1.0
        return fro(G) * (1.0 + u) + gamma(inner) * fro(F) ** 2 * (1.0 + 4.0 * u)

    dev_p, dev_q = deviation(P, m), deviation(Q, n)
    if dev_q >= 0.5:
        return math.inf
    fro_w, fro_p, fro_q = fro(W), fro(P), fro(Q)
    ptw = fro(P.T @ W) + gamma(m) * fro_p * fro_w * (1.0 + 4.0 * u)  # >= ||P^T W||_2
    wq = fro(W @ Q) + gamma(n) * fro_w * fro_q * (1.0 + 4.0 * u)  # >= ||W Q||_2
    norm_q = math.sqrt(1.0 + dev_q)
    w_pi = wq / math.sqrt(1.0 - dev_q)
    square = (max(w_norm * w_norm, rho * rho * (1.0 + dev_p) * (1.0 + dev_q))
              + 2.0 * w_pi * w_norm + 2.0 * rho * ptw * norm_q)
    rounding = (gamma(3) * fro_w
                + rho * (gamma(c + 1) + gamma(3) * (1.0 + gamma(c + 1))) * fro_p * fro_q)
    return (math.sqrt(square * (1.0 + 8.0 * u)) + rounding) * (1.0 + 4.0 * u)


def _refine_low_rank(red: Reduced, m: np.ndarray, Qt: np.ndarray, rank: int, certify: Certify,
                     settings: DRSettings
                     ) -> tuple[tuple[np.ndarray, float, float] | None, int]:
    """The refinement when the rank bound is inactive: ``rank < k`` significant values.

    Then the primal is the convex problem ``min 1/2 ||M diag(s) - A||^2 + rho ||M||_*``, whose
    optimality conditions give the dual point directly: ``Gamma* = A - N*``, with
    ``||Gamma* diag(s)||_op <= rho``. The columns of ``R`` beyond ``rank`` only shrink slowly
    under L-BFGS, so they are dropped and the rest refined to rounding level (L-BFGS, then
    ``refine_polish`` gradient-only steps). The dual point is ``A - N`` with the singular
    values of ``(A - N) diag(s)`` clipped at ``rho``: that changes it only where the refined
    ``N`` is off (scaling the whole point into the ball instead cost 10-100x in certified gap
    on the survey's structured instances).

    Returns the certified ``(Gamma, lower, upper)`` (None if the search diverged) and the
    number of function evaluations.
    """
    A, s, rho = red.A, red.s, red.rho
    fun, left, scale, x = projected_primal(A, s, rho, m[:rank], Qt[:rank],
                                           settings.refine_curvature)
    out = lbfgs(fun, x, memory=settings.refine_memory, ftol=settings.refine_ftol[-1], gtol=0.0,
                max_eval=settings.refine_max_eval, polish=settings.refine_polish)
    if out.status == "non-finite":
        return None, out.nfev
    R = out.x.reshape(scale.shape) * scale
    U, sv, Vt = svd((A - left(R) @ (R * s[:, None]).T) * s)
    return certify(((U * np.minimum(sv, rho)) @ Vt) / s), out.nfev


#: :func:`projected_primal` evaluates through ``K = (A S)^T (A S)`` when ``r`` is at most this
#: multiple of the factor's columns ``c``: forming ``K`` costs about ``r / c`` evaluations'
#: saving, and a refinement takes 30-100 evaluations.
GRAM_SEARCH_MAX_RATIO = 10


def projected_primal(A: np.ndarray, s: np.ndarray, rho: float, m: np.ndarray, Qt: np.ndarray,
                     curvature: float = DRSettings.refine_curvature,
                     gram: bool | None = None):
    r"""The factored primal with ``L`` minimised out (variable projection), in ``R`` alone.

    For fixed ``R`` (r x c), ``1/2 ||L R^T S - A||^2 + rho/2 ||L||^2`` is least squares in
    ``L``, minimised by ``L(R) = C G^-1`` with ``C = A S R`` and ``G = R^T S^2 R + rho I``,
    with value ``1/2 ||A||^2 - 1/2 <C, L(R)>``. So

        g(R) = 1/2 ||A||^2 - 1/2 <C, L(R)> + rho/2 ||R||^2,
        grad g(R) = S^2 R L(R)^T L(R) - S A^T L(R) + rho R

    (the gradient in ``R`` of the joint objective at ``L(R)``: the ``L``-gradient vanishes
    there). Minimising ``g`` by L-BFGS took about half the evaluations of L-BFGS on
    ``(L, R)`` jointly, each cheaper (two products with ``A`` instead of three of that size).

    The start is the balanced ``R = Q diag(m)^(1/2)`` for ``M = P diag(m) Q^T`` (``m``: c
    values, ``Qt``: c x r). Entry ``(j, i)`` of ``R`` has curvature about ``s_j^2 m_i + rho``,
    so the variable is ``R / scale`` flattened, with
    ``scale = (curvature s_j^2 m_i + rho)^(-1/2)`` (a diagonal preconditioner).

    With ``gram`` (default: when ``r <= GRAM_SEARCH_MAX_RATIO * c`` and ``r <= dH``) an
    evaluation goes through ``K = (A S)^T (A S)``, formed once (``2 dH r^2`` flops, ``r x r``
    memory, at most the size of A): ``<C, L> = <R, B>`` and ``S A^T L = B`` for
    ``B = K R G^-1``, so one product of the size of ``A`` per evaluation instead of two.
    ``left`` always forms ``L`` from ``A`` itself. (The values agree with the direct form to
    rounding; they only steer a search whose point is certified exactly.)

    Returns ``fun(x) -> (g, gradient)``, ``left(R) -> L(R)``, ``scale`` (r x c) and the start.
    """
    s2 = (s * s)[:, None]
    half = 0.5 * float(np.vdot(A, A))
    scale = 1.0 / np.sqrt(curvature * np.outer(s * s, m) + rho)
    scale /= scale.max() if scale.size else 1.0
    AS = A * s  # (once: both products of an evaluation are with A diag(s))
    diagonal = np.arange(m.size)

    def factored(R: np.ndarray, RS2: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """``G = R^T S^2 R + rho I`` and its lower Cholesky factor (LAPACK's ``info``)."""
        G = RS2.T @ R
        G[diagonal, diagonal] += rho
        factor, info = dpotrf(G, lower=1)
        return G, factor, info

    def right_solve(factor: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """``Z G^-1`` by two triangular solves from the right (BLAS-3)."""
        Z = dtrsm(1.0, factor, Z, side=1, lower=1, trans_a=1)
        return dtrsm(1.0, factor, Z, side=1, lower=1, overwrite_b=1)

    def left_and_c(R: np.ndarray, RS2: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        C = AS @ R
        if not R.shape[1]:
            return np.zeros_like(C), C
        # G >= rho I is positive definite: L = C G^-1 by a Cholesky factor and two triangular
        # solves from the right. Measured at d = 200, c = 40: 110 us where LAPACK's dposv on
        # C^T took 200 and numpy's solve more.
        G, factor, info = factored(R, R * s2 if RS2 is None else RS2)
        if info != 0:
            return np.linalg.solve(G, C.T).T, C
        return right_solve(factor, C), C

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        R = x.reshape(scale.shape) * scale
        RS2 = R * s2
        L, C = left_and_c(R, RS2)
        value = half - 0.5 * float(np.vdot(C, L)) + 0.5 * rho * float(np.vdot(R, R))
        grad = RS2 @ (L.T @ L)
        grad -= AS.T @ L
        grad += rho * R
        grad *= scale
        return value, grad.ravel()

    start = (Qt.T * np.sqrt(m) / scale).ravel()
    r, c = scale.shape
    if gram is None:
        gram = 0 < c and r <= min(GRAM_SEARCH_MAX_RATIO * c, A.shape[0])
    if not (gram and c):
        return fun, lambda R: left_and_c(R)[0], scale, start
    K = AS.T @ AS

    def fun_gram(x: np.ndarray) -> tuple[float, np.ndarray]:
        # L = A S R G^-1, so L^T L = G^-1 (R^T K R) G^-1 and S A^T L = K R G^-1 = B.
        R = x.reshape(scale.shape) * scale
        RS2 = R * s2
        _G, factor, info = factored(R, RS2)
        if info != 0:
            return fun(x)
        B = right_solve(factor, K @ R)
        # D = G^-1 (R^T B) = L^T L, by the same factor from the left.
        D = dtrsm(1.0, factor, dtrsm(1.0, factor, R.T @ B, side=0, lower=1), side=0, lower=1,
                  trans_a=1, overwrite_b=1)
        value = half - 0.5 * float(np.vdot(R, B)) + 0.5 * rho * float(np.vdot(R, R))
        grad = RS2 @ D
        grad -= B
        grad += rho * R
        grad *= scale
        return value, grad.ravel()

    return fun_gram, lambda R: left_and_c(R)[0], scale, start
