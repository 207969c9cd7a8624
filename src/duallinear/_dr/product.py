r"""Douglas-Rachford on general X, in the product space ``(Gamma, Phi)``.

Minimise ``f(Gamma) + ball(Phi)`` subject to the graph constraint ``Phi = w Gamma diag(s)``,
with ``f(Gamma) = 1/2 ||A - Gamma||_(k)^2`` and ``ball`` the indicator of
``{||Phi||_op <= w rho}``. The projection onto the graph is closed form column by column
(``diag(s)`` is diagonal); ``prox_f`` and the ball projection are spectral. The fixed-point
map is accelerated by type-II Anderson (:mod:`.anderson`), restarted from the best certified
point with the next (step, scaling) pair of the schedule when it stalls, and at the
iterations ``settings.refine_at`` a certificate through the primal is tried (:mod:`.refine`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .._linalg import LeadingSVD, largest_by_gram, leading_by_gram, top_triplets
from .._reduced import Reduced, op_norm
from .._spectral import ball, spectral_change, truncated
from ..results import DualDiagnostics
from .anderson import Anderson
from .outcome import Best, Outcome, finish, met
from .refine import Held, Refinement, refine, revisit
from .settings import DRSettings
from .twosided import Memo, TwoSided, warm_start

__all__ = ["ProductSpace", "solve_product"]


@dataclass
class _Counts:
    """Diagnostics accumulated over a run (see :class:`~duallinear.DualDiagnostics`)."""

    leading: int = 0
    gram: int = 0
    svd: int = 0

    def add(self, route: str) -> None:
        setattr(self, route, getattr(self, route) + 1)


@dataclass(frozen=True)
class ProductSpace:
    """One Douglas-Rachford map on ``(Gamma, Phi)`` with ``Phi = w Gamma diag(s)``."""

    red: Reduced
    t: float
    w: float
    lam: float
    #: Spectral maps through the Gram matrix (below ``gram_min_dim`` a full SVD is cheaper).
    gram: bool
    #: Leading-triplet solvers for the two proximal maps (f, ball), or None: full SVDs.
    leads: tuple[LeadingSVD, LeadingSVD] | None
    #: Where the routes of the spectral maps are counted.
    counts: _Counts
    #: Where a map records its shadow and ball-side point when asked (two-sided bounds).
    memo: Memo | None = None

    @property
    def ws(self) -> np.ndarray:
        return self.w * self.red.s

    def graph(self, z: np.ndarray) -> np.ndarray:
        """Gamma-part of the projection of ``z = (zG, zP)`` onto the graph."""
        ws = self.ws
        out = ws * z[1]
        out += z[0]
        out /= 1.0 + ws * ws
        return out

    def start(self, Gamma: np.ndarray) -> np.ndarray:
        return np.stack([Gamma, self.ws * Gamma])

    def _change(self, B: np.ndarray, amount, lead: LeadingSVD | None, start: int = 1
                ) -> np.ndarray:
        change, route = spectral_change(B, amount, lead, self.gram, start=start)
        self.counts.add(route)
        return change

    def __call__(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``z + lam (prox_h1(2 x - z) - x)`` with ``x`` the graph projection of ``z``."""
        # In-place arithmetic throughout: at d = 2000 every temporary is 32 MB.
        red, ws = self.red, self.ws
        k, t, radius = red.k, self.t, self.w * red.rho
        xG = self.graph(z)
        xP = ws * xG
        vG = 2.0 * xG
        vG -= z[0]
        vP = 2.0 * xP
        vP -= z[1]
        # Both maps move only leading triplets: prox_{t f}(vG) = vG + the change of
        # A - vG, and the ball projection of vP = vP - the change of vP.
        lead_f, lead_ball = self.leads if self.leads is not None else (None, None)
        memo = self.memo if self.memo is not None and self.memo.want else None
        moving: list[int] = []

        def amount_f(sv: np.ndarray) -> np.ndarray:
            change = sv - truncated(sv, k, t)
            if memo is not None:
                moving.append(int(np.count_nonzero(change)))
            return change

        change_f = self._change(red.A - vG, amount_f, lead_f, start=k)
        if memo is not None:
            memo.N, memo.moving, memo.Gamma = change_f / t, moving[-1], xG.copy()
        yG = vG
        yG += change_f
        yP = vP
        if float(np.vdot(vP, vP)) > radius * radius:
            # (||vP||_F <= radius: no singular value exceeds it, nothing to project; always
            # so on the first iteration from zero.)
            yP -= self._change(vP, lambda sv: sv - ball(sv, radius), lead_ball)
        if memo is not None:
            memo.Phi = yP.copy()
        if out is None:
            out = np.empty_like(z)
        for i, (y, x) in enumerate(((yG, xG), (yP, xP))):
            np.subtract(y, x, out=out[i])
            out[i] *= self.lam
            out[i] += z[i]
        return out


class _Gaps(list):
    """The list of checked gaps, passing each new entry to ``callback(iteration, gap)``."""

    def __init__(self, callback: Callable[[int, float], object] | None,
                 iteration: Callable[[], int]) -> None:
        super().__init__()
        self.callback, self.iteration = callback, iteration

    def append(self, gap: float) -> None:
        super().append(gap)
        if self.callback is not None:
            self.callback(self.iteration(), gap)


class _Certifier:
    """Exact certificates (through leading triplets when ``partial``) and the cheaper
    estimate a check tries first with leading triplets."""

    def __init__(self, red: Reduced, tol: float, settings: DRSettings, partial: bool):
        self.red, self.tol, self.settings, self.partial = red, tol, settings, partial
        fraction = settings.partial_max_fraction
        self.lead = LeadingSVD(max_fraction=fraction) if partial else None
        if partial:
            # ||Gamma S||_op sits in a cluster of up to k equal values at rho: cover it (when
            # that block is small; otherwise the estimate takes the exact norm).
            cheap = red.k + 4 <= fraction * min(red.A.shape) / 2

            def largest(rtol: float) -> LeadingSVD:
                return LeadingSVD(oversample=red.k + 4, rtol=rtol, values_only=True,
                                  max_fraction=fraction if cheap else 0.0)

            self.lead_norm = largest(1e-10)
            self.lead_free = largest(1e-13)  # the refinement's free block (`free_norm`)

    def __call__(self, Gamma: np.ndarray, norm: float | None = None,
                 basis: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, float, float]:
        """The certificate at ``Gamma`` (see :meth:`Reduced.certify`; ``basis`` is not used
        with leading triplets, whose own subspace iteration is warm)."""
        red = self.red
        return (red.certify_leading(Gamma, self.lead, norm) if self.partial
                else red.certify(Gamma, norm, basis))

    def check(self, Gamma: np.ndarray) -> Best:
        """Exact certificate; with leading triplets, only once their estimate meets tol (and
        straight away while the triplets keep failing: the estimate would cost extra)."""
        red = self.red
        if self.partial and self.lead.failures_in_row < self.settings.estimate_max_failures:
            estimate = Best.of(red.estimate(Gamma, self.lead, self.lead_norm), red)
            if not met(estimate.gap, self.tol):
                return estimate
        return Best.of(self(Gamma), red)

    def top_k(self, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The refinement's start: the k leading triplets of ``B``, from leading triplets or
        else the Gram matrix (a start only: the certificate decomposes its own point)."""
        if self.lead is None:
            top = leading_by_gram(B, self.red.k)
            if top is not None:
                return top
        return top_triplets(B, self.red.k, self.lead)

    def free_norm(self, W: np.ndarray) -> float:
        """``||W||_op`` of the refinement's free block, to about 1e-13: the settled Ritz value
        with leading triplets (from below: it only shapes the candidate, whose certificate
        takes the exact norm of ``Gamma diag(s)``), else an upper bound from the Gram matrix
        (:attr:`free_norm_bounds`: the certificate then bounds the candidate's norm through
        it, :func:`~duallinear._dr.refine.candidate_norm`)."""
        if self.partial and W.size:
            top = self.lead_free(W, lambda sv: 1)
            if top is not None:
                return float(top[1][0])
            return op_norm(W)
        return largest_by_gram(W, bound=self.free_norm_bounds)

    @property
    def free_norm_bounds(self) -> bool:
        """Whether :meth:`free_norm` is an upper bound on the norm, for
        ``DRSettings.refine_norm_bound`` (not with leading triplets)."""
        return not self.partial and self.settings.refine_norm_bound


def _gap_at_k(A: np.ndarray, k: int, settings: DRSettings
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The k leading triplets of ``A`` when they settle (to 1e-6, within 12 products) with
    ``sigma_k >= settings.refine_start_gap * sigma_{k+1}`` (Ritz values), on ``A`` of at
    least ``settings.refine_start_min_dim`` rows and columns; else None.

    A probe of two products comes first, and without a hint of a gap there the settling is
    not tried (it takes all 12 products to give up). Two products underestimate a moderate
    gap (measured: a true ratio of 2.2 showed as 1.25, 10.5 as 11.6, Gaussian matrices'
    1.00-1.01 as the same), so the probe asks for a fifth of the excess over 1 only."""
    if min(A.shape) < settings.refine_start_min_dim or not 0 < k < min(A.shape):
        return None
    fraction = settings.partial_max_fraction

    def gap(top, ratio: float) -> bool:
        return top is not None and top[1].size > k and top[1][k - 1] >= ratio * top[1][k]

    probe = LeadingSVD(rtol=1.0, max_steps=2, max_fraction=fraction)
    if not gap(probe(A, lambda sv: k, start=k), 1.0 + 0.2 * (settings.refine_start_gap - 1.0)):
        return None
    lead = LeadingSVD(rtol=1e-6, max_steps=12, max_fraction=fraction)
    lead.warm_start(probe.V)
    top = lead(A, lambda sv: k)
    if not gap(top, settings.refine_start_gap):
        return None
    U, sv, Vt, _ = top
    return U[:, :k], sv[:k], Vt[:k]


def solve_product(red: Reduced, tol: float, max_iter: int, settings: DRSettings,
                  partial: bool, callback: Callable[[int, float], object] | None = None
                  ) -> Outcome:
    """Accelerated DR with restarts over the step schedule; stops on the certified gap, or
    with ``"duality_gap"`` on the two-sided interval (:mod:`.twosided`).
    ``callback(it, gap)`` sees every entry of ``gaps`` as it is added."""
    schedule = ((settings.step, settings.schedule[0][1]),) if settings.step else settings.schedule
    fraction = settings.partial_max_fraction
    leads = ((LeadingSVD(max_fraction=fraction), LeadingSVD(max_fraction=fraction))
             if partial else None)
    cert = _Certifier(red, tol, settings, partial)
    counts = _Counts()
    gram = min(red.A.shape) >= settings.gram_min_dim
    diag = DualDiagnostics(partial_svd=partial)
    pending = sorted(settings.refine_at) if settings.primal_refine else []
    memo = Memo()
    held: Held | None = None  # a failed refinement's rank-k point, revisited until held_until
    held_until = 0
    rank_tried = False  # the refinement on the rank signal (DRSettings.refine_on_rank) done
    # The two-sided track: None until it starts (never with tol = 0, which asks for max_iter).
    two: TwoSided | None = None
    may_track = settings.two_sided and tol > 0.0

    def done(best: tuple[np.ndarray, float, float], status: str) -> Outcome:
        final = replace(diag, maps_leading=counts.leading, maps_gram=counts.gram,
                        maps_svd=counts.svd, schedule_pairs=pairs,
                        relaxed_rank=two.rank if two is not None else -1)
        return finish(best, status, it, residuals, gaps, tol, max_iter, red,
                      settings.stall_residual, final,
                      dual_upper=two.upper if two is not None else float("inf"),
                      width=two.width if two is not None else float("inf"),
                      rank=two.rank if two is not None else -1, k=red.k)

    def take(attempt: Refinement | None, fresh: bool = True) -> bool:
        """Books a refinement attempt; True when it certified (``best`` is then its point).
        The first failed fresh attempt's rank-k point is held for ``refine_revisit``
        iterations (a resumed one replaces it; later fresh ones are not held: on the
        instances with a duality gap each window cost about 5 SVD-equivalents)."""
        nonlocal best, diag, held, held_until
        if attempt is None:
            return False
        diag = replace(diag, refine_attempts=diag.refine_attempts + 1,
                       refine_evaluations=diag.refine_evaluations + attempt.evaluations)
        if attempt.best is not None and attempt.best.better(best) is attempt.best:
            best = attempt.best
        if not fresh:
            held = attempt.held
        elif held_until == 0 and attempt.held is not None:
            held, held_until = attempt.held, it + settings.refine_revisit
        else:
            held = None
        if best is None or not met(best.gap, tol):
            return False
        diag = replace(diag, refine_route=attempt.route)
        gaps.append(best.gap)
        return True

    def try_revisit(point: np.ndarray) -> bool | None:
        """The held rank-k point with ``point``'s free blocks: True when it certified, None
        when no block was ready (nothing was tried)."""
        nonlocal diag
        diag = replace(diag, refine_revisits=diag.refine_revisits + 1)
        again = revisit(red, held, point, cert, tol, settings, cert.free_norm,
                        cert.free_norm_bounds)
        return None if again is None else take(again, fresh=False)

    def try_refine(point: np.ndarray, top_k: Callable = cert.top_k) -> bool:
        """A refinement from ``point``; True when it certified (``best`` is then its point).
        A held point comes first: resumed when a free block is ready."""
        if held is not None and it <= held_until:
            again = try_revisit(point)
            if again is not None:
                return again
        return take(refine(red, point, top_k, cert, tol, settings, cert.free_norm,
                           cert.free_norm_bounds))

    residuals: list[float] = []
    gaps = _Gaps(callback, lambda: it)
    Gamma0 = np.zeros_like(red.A)
    best: Best | None = None
    it, status, pairs = 0, "max_iter", 0
    every, window = settings.check_every, settings.stall_window
    queue = list(schedule)
    start: np.ndarray | None = None  # a warm start for the next pair (two-sided track)
    if settings.primal_refine and tol > 0.0:
        top = _gap_at_k(red.A, red.k, settings)
        if top is not None:
            diag = replace(diag, refine_start=True)
            if cert.lead is not None:
                cert.lead.warm_start(top[2].T)  # (the certificate's truncation is near A's)
            if try_refine(Gamma0, lambda B: top):
                return done((best.Gamma, best.lower, best.upper), "converged")
    while queue:
        t, c = queue.pop(0)
        pairs += 1
        T = ProductSpace(red, t, c / red.rho, settings.relaxation, gram, leads, counts, memo)
        last = not queue
        z = T.start(Gamma0) if start is None else start
        start = None
        memory = settings.anderson_memory_for(z.size)
        if two is not None and settings.two_sided_pair and z.size <= settings.anderson_large:
            memory = settings.two_sided_memory  # (large iterates keep the small memory)
        accel = Anderson(memory, z.size)
        # Four iterate-sized buffers, swapped rather than reallocated (see Anderson).
        Tz, f, z_next, plain = (np.empty_like(z) for _ in range(4))
        best_res, have_plain = np.inf, False
        since_improved = 0
        switch = False
        while it < max_iter:
            it += 1
            # (A regular check just before a refinement is skipped: the refinement certifies
            # its own point, and the check after it still comes.)
            check_now = it == max_iter or (it % every == 0 and not (
                pending and two is None and it < pending[0] < it + every))
            memo.want = (two is not None and check_now) or (
                may_track and two is None and it >= settings.two_sided_from)
            T(z, out=Tz)
            np.subtract(Tz, z, out=f)
            res = float(np.linalg.norm(f))
            residuals.append(res / max(float(np.linalg.norm(z)), 1.0))
            if have_plain and res > settings.fallback_ratio * best_res:
                # The accelerated point made things worse: fall back to the plain iterate.
                z, plain, have_plain = plain, z, False
                accel.reset()
                continue
            best_res = min(best_res, res)
            plain, Tz, have_plain = Tz, plain, True
            accel.step(z.ravel(), f.ravel(), out=z_next.ravel())
            z, z_next = z_next, z
            refine_now = bool(pending) and it >= pending[0]
            revisit_now = not refine_now and held is not None and it <= held_until
            current = (T.graph(plain) if refine_now or revisit_now or (check_now and two is None)
                       else None)
            if revisit_now and try_revisit(current):
                return done((best.Gamma, best.lower, best.upper), "converged")
            if refine_now:
                # Before the regular check, which a certified refinement makes unnecessary.
                while pending and pending[0] <= it:
                    pending.pop(0)
                if try_refine(current):
                    return done((best.Gamma, best.lower, best.upper), "converged")
            if check_now:
                # On the two-sided track the ball-side point is certified instead of the
                # graph projection (its dual value converges faster), and U at the shadow
                # bounds D* from above.
                checked = two.update(memo, T.ws, cert) if two is not None else cert.check(
                    current)
                gaps.append(checked.gap)
                if best is None or checked.gap < best.gap * 0.5:
                    since_improved = 0
                else:
                    since_improved += every
                best = checked.better(best)
                if met(checked.gap, tol):
                    return done((best.Gamma, best.lower, best.upper), "converged")
                if (two is not None and settings.refine_on_rank and settings.primal_refine
                        and not rank_tried and 0 < memo.moving <= red.k):
                    # The shadow has rank <= k: the relaxation looks tight from here, and the
                    # truncation of this iterate may certify (once; DRSettings.refine_on_rank).
                    rank_tried = True
                    if try_refine(T.graph(plain)):
                        return done((best.Gamma, best.lower, best.upper), "converged")
                if two is not None and met(two.width, tol) and two.not_tight():
                    if pending:
                        # The relaxed minimiser need not be unique: a refinement still due
                        # is tried now, from this accurate point, before a gap is declared.
                        pending.clear()
                        if try_refine(T.graph(plain)):
                            return done((best.Gamma, best.lower, best.upper), "converged")
                    low = two.lower
                    return done((low.Gamma, low.lower, low.upper), "duality_gap")
                if since_improved >= window and (
                        not last or residuals[-1] < settings.stall_residual):
                    # No progress with this (t, w): the next one restarts from the best
                    # point, and may land on another dual optimum whose truncation certifies
                    # (a fuzzed case stalled at 1.2e-10 - 2.6e-10 and converged that way).
                    # A converged iterate far from tol is a real duality gap: stop.
                    hopeless = (residuals[-1] < settings.stall_residual
                                and best.gap > settings.stall_far * tol)
                    status = "stalled" if last or hopeless else status
                    break
            if two is None and memo.want:
                # No certificate by now: bound D* from both sides from here on, with the
                # two-sided pair warm-started from this map's primal-dual pair.
                two = TwoSided(red, settings.relaxed_drop)
                diag = replace(diag, two_sided_from=it)
                # (A step the caller chose is kept.)
                pair = None if settings.step else settings.two_sided_pair
                if pair is not None:
                    ws = (pair[1] / red.rho) * red.s
                    start = warm_start(memo.Gamma, memo.N, ws, pair[0])
                    queue.insert(0, pair)
                    switch = True
                    break
            if residuals[-1] < settings.residual_floor:
                status = "stalled" if last else status
                break
        if it >= max_iter or status == "stalled":
            break
        if not switch:
            Gamma0 = best.Gamma if best is not None else T.graph(z)
    if best is None:
        point = red.certify(Gamma0)
    elif partial:
        point = cert(best.Gamma)  # estimates are not bounds
    else:
        point = (best.Gamma, best.lower, best.upper)
    if status == "stalled":
        # The iterate has converged: it is the dual optimum, whatever the truncation makes of
        # it. Report it when its lower bound beats the point of smallest gap (measured: 2.7e-7
        # relative higher, at SCS's value, on an ill-conditioned instance at d = 81).
        final = cert(T.graph(plain))
        if final[1] > point[1]:
            point = final
    if two is not None and two.lower is not None and two.lower.lower > point[1]:
        low = two.lower
        point = (low.Gamma, low.lower, low.upper)
    return done(point, status)
