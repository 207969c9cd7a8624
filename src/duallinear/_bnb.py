r"""A branch-and-bound that proves lower bounds on the primal optimum ``P*``.

Reduced problem (``docs/math.md``): ``P* = min_{rank N <= k} P(N)`` with
``P(N) = 1/2 residual_sq + 1/2 ||N - A||^2 + rho ||N diag(s)^-1||_*``, ``N`` of shape ``(dH, r)``.

**Null spaces.** ``rank N <= k`` iff ``Z^T N = 0`` for some ``Z`` with ``p = dH - k``
orthonormal columns (the left route), or ``N W = 0`` for some ``W`` with ``p = r - k`` columns
(the right route). For a fixed null space the problem is convex, and for every ``Psi`` of shape
``(dH, r)`` with ``||Psi||_op <= rho``, with ``E = A - Psi diag(s)^-1``,

    min_{Z^T N = 0} P(N) >= h(Psi; Z) = 1/2 ||Y||^2 - 1/2 ||E||^2 + 1/2 ||E^T Z||^2

(weak duality: ``rho ||M||_* >= <Psi, M>``, then minimise the quadratic over ``N``); on the right
``||E W||`` replaces ``||E^T Z||``. ``h`` depends on ``Z`` through ``P = Z Z^T`` only, so
``P* >= min`` over the Grassmannian ``Gr(p, n)`` of ``max_Psi h``.

**Cells.** ``Gr(p, n)`` is covered by ``C(n, p)`` charts: every ``p``-dimensional subspace is
the span of ``Pi [I_p; Y]`` for some choice of ``p`` rows (those of a largest ``p x p`` minor
of any basis) and ``|Y_ij| <= 1`` (Cramer's rule). A cell is a box of ``Y``; with half-widths
``eta_ij`` every subspace in it is within ``delta = ||eta||_2`` of the centre's in
``||sin Theta||_F`` (``P_c^perp [I; Y] = P_c^perp [0; Y - Y_c]`` and ``(I + Y^T Y)^(-1/2)``
contracts).

**The bound on a cell.** With ``Q = E E^T`` (``E^T E`` on the right), ``P_c = Z_c Z_c^T`` and
``||P_c^perp P||_F <= delta``: splitting ``P - P_c`` in the blocks of ``P_c``,

    tr(Q P) >= tr(Q P_c) - 2 g delta - lam delta^2,   g = ||P_c^perp Q Z_c||_F,
    lam = ||Z_c^T Q Z_c||_op,

since ``P_c (P - P_c) P_c = -P_c (I - P) P_c`` has trace ``-delta^2``, the ``P_c^perp`` block
is positive semidefinite and the cross blocks have Frobenius norm at most ``delta``. So
``h(Psi; Z) >= h(Psi; Z_c) - g delta - lam delta^2 / 2`` on the whole cell, for the ``Psi``
found at its centre (the convex problem there is solved by projected gradient warm-started
from the parent, or by the library's own Douglas-Rachford when that is slow) or inherited
from its parent.

**k = 1.** ``N = a x w^T`` and ``P* = 1/2 ||Y||^2 - 1/2 max_{|w| = 1} (||A w|| - rho
||diag(s)^-1 w||)_+^2`` (optimise ``x`` and ``a >= 0`` in closed form). On a cell of the sphere
(the charts with ``p = 1`` on ``R^r``) ``||A w||^2`` is bounded above and
``||diag(s)^-1 w||^2`` below by the same splitting, with no inner problem.

Every bound is evaluated at explicit points and reduced by a rounding allowance (see
:func:`allowance`); feasibility of ``Psi`` carries a relative margin of 1e-12.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._dr import DRSettings, solve_dr
from ._linalg import svd, svdvals
from ._reduced import Reduced

__all__ = ["Side", "RankOne", "Data", "BnBResult", "allowance", "branch_and_bound", "routes",
           "solve_restricted"]

EPS = float(np.finfo(np.float64).eps)
#: Relative margin by which a dual point is kept inside ``||Psi||_op <= rho``.
FEASIBILITY_MARGIN = 1e-12


def allowance(magnitude: float, n: int) -> float:
    """Rounding allowance for a bound computed from terms of total size ``magnitude`` in
    dimension ``n``: ``16 (n + 8) eps`` times it, above the ``gamma_n`` forward-error bounds
    of the sums and products that form the bounds (Higham, "Accuracy and Stability of
    Numerical Algorithms", section 3.1)."""
    return 16.0 * (n + 8) * EPS * magnitude


@dataclass(frozen=True)
class Data:
    """Reduced data in normalised units (a view of :class:`duallinear._reduced.Reduced`)."""

    A: np.ndarray
    s: np.ndarray
    rho: float
    k: int
    residual_sq: float

    @property
    def zero_value(self) -> float:
        return 0.5 * self.residual_sq + 0.5 * float(np.vdot(self.A, self.A))

    def primal(self, N: np.ndarray) -> float:
        """``P(N)`` (reduced objective; ``rank N <= k`` is the caller's to ensure)."""
        nuclear = float(np.sum(svdvals(N / self.s))) if self.rho > 0 and N.size else 0.0
        return (0.5 * self.residual_sq + 0.5 * float(np.sum((N - self.A) ** 2))
                + self.rho * nuclear)


def _feasible(Psi: np.ndarray, rho: float) -> np.ndarray:
    norm = float(svdvals(Psi)[0]) if Psi.size else 0.0
    limit = rho * (1.0 - FEASIBILITY_MARGIN)
    return Psi * (limit / norm) if norm > limit else Psi


def _ball(Phi: np.ndarray, rho: float) -> np.ndarray:
    U, sv, Vt = svd(Phi)
    return (U * np.minimum(sv, rho)) @ Vt


def _fista(B: np.ndarray, C: np.ndarray, rho: float, Phi0: np.ndarray, accuracy: float,
           max_iter: int) -> tuple[np.ndarray, int, bool]:
    """Accelerated projected gradient on ``1/2 ||B - Phi C||^2`` over the spectral-norm ball
    (strongly convex momentum, restarted when the value rises), from ``Phi0``; stops once the
    duality gap of the pair ``(Phi, N = B - Phi C)``, ``rho ||N C||_* - <Phi, N C>``, is at
    most ``accuracy``. Returns the point, the iterations, and whether it got there."""
    diag = C.ndim == 1

    def times_c(X: np.ndarray) -> np.ndarray:
        return X * C if diag else X @ C

    cvals = np.abs(C) if diag else np.linalg.eigvalsh(C)
    lmax, lmin = float(np.max(cvals)) ** 2, float(np.min(cvals)) ** 2
    q = math.sqrt(lmin / lmax)
    beta = (1.0 - q) / (1.0 + q)
    Phi = _ball(Phi0, rho)
    prev = Phi
    value = 0.5 * float(np.sum((B - times_c(Phi)) ** 2))
    for it in range(1, max_iter + 1):
        Yk = Phi + beta * (Phi - prev)
        nxt = _ball(Yk - times_c(times_c(Yk) - B) / lmax, rho)
        new_value = 0.5 * float(np.sum((B - times_c(nxt)) ** 2))
        if new_value > value:  # restart the momentum
            prev = Phi
            continue
        prev, Phi, value = Phi, nxt, new_value
        if it % 10 == 0:
            NC = times_c(B - times_c(Phi))
            if rho * float(np.sum(svdvals(NC))) - float(np.vdot(Phi, NC)) <= accuracy:
                return Phi, it, True
    return Phi, max_iter, False


def solve_restricted(B: np.ndarray, C: np.ndarray, rho: float, Phi0: np.ndarray | None = None,
                     accuracy: float = 0.0, tol: float = 1e-11) -> tuple[np.ndarray, int]:
    """A feasible ``Phi`` near ``argmax_{||Phi||_op <= rho} -1/2 ||B - Phi C||^2``, and the
    iterations it took.

    ``C`` is a vector (a diagonal matrix) or a symmetric positive definite matrix. First up to
    200 steps of accelerated projected gradient from ``Phi0`` (cheap, and enough for the loose
    ``accuracy`` of a large cell); if they do not reach it, the library's own dual solver:
    with ``C = V diag(c) V^T`` and ``Gamma = Phi V diag(c)`` this is the dual of the data
    ``B V`` and ``s = 1 / c`` with no rank bound (a convex problem), solved by
    :func:`duallinear._dr.solve_dr` to the certified relative gap ``tol``. Measured on the
    survey's instances: its refinement certified at the 2nd iteration in about 4 ms, where
    projected gradient (conditioned like ``cond(C)^2``) needed up to 2e4 iterations for the
    same accuracy. The point is feasible whatever either solver achieved.
    """
    if Phi0 is not None:
        Phi, used, ok = _fista(B, C, rho, Phi0, accuracy, 200)
        if ok:
            return Phi, used
    if C.ndim == 1:
        c, V, Bv = C, None, B
    else:
        c, V = np.linalg.eigh(0.5 * (C + C.T))
        Bv = B @ V
    a = float(svdvals(Bv)[0]) if Bv.size else 0.0
    if a == 0.0:
        return np.zeros((B.shape[0], c.size)), 0
    s = 1.0 / c
    b = float(np.max(s))
    red = Reduced(A=Bv / a, s=s / b, rho=rho / (a * b), gamma=rho / (a * b), k=min(Bv.shape),
                  residual_sq=0.0, zero_value=0.5 * float(np.vdot(Bv, Bv)) / a**2, a=a, b=b)
    out = solve_dr(red, tol, 2000, _SETTINGS, whitened=bool(np.ptp(s) == 0.0))
    Phi = (out.Gamma * a) / c
    return (Phi if V is None else Phi @ V.T), out.iterations


_SETTINGS = DRSettings()


class Side:
    """One route: null spaces on the left (``Z^T N = 0``, ``n = dH``) or on the right
    (``N W = 0``, ``n = r``), with ``p = n - k`` null directions."""

    def __init__(self, data: Data, left: bool):
        self.data, self.left = data, left
        dH, r = data.A.shape
        self.n = dH if left else r
        self.p = self.n - data.k
        # C(n, p) charts: counted here, enumerated only when searched (huge for large n).
        self.chart_count = math.comb(self.n, self.p)
        self.sinv2 = 1.0 / data.s**2

    @property
    def charts(self):
        """The charts, as the row sets of their identity blocks."""
        return itertools.combinations(range(self.n), self.p)

    @property
    def dim(self) -> int:
        """Dimension of the Grassmannian searched, ``k (n - k)``."""
        return self.data.k * self.p

    def basis(self, chart: tuple[int, ...], Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Orthonormal bases of the null space ``span(Pi [I; Y])`` and of its complement."""
        X = np.zeros((self.n, self.p))
        X[list(chart), np.arange(self.p)] = 1.0
        rest = [i for i in range(self.n) if i not in chart]
        X[rest] = Y.reshape(len(rest), self.p)
        Q, _ = np.linalg.qr(X, mode="complete")
        return Q[:, :self.p], Q[:, self.p:]

    def restricted(self, perp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(B, C)`` of the convex problem for the complement basis ``perp``."""
        A, s = self.data.A, self.data.s
        if self.left:
            return perp.T @ A, 1.0 / s
        G = (perp.T * self.sinv2) @ perp
        lam, V = np.linalg.eigh(0.5 * (G + G.T))
        return A @ perp, (V * np.sqrt(np.maximum(lam, 0.0))) @ V.T

    def phi_of(self, Psi: np.ndarray, perp: np.ndarray, C: np.ndarray) -> np.ndarray:
        """A feasible ``Phi`` of the restricted problem with ``Phi C = `` the part of
        ``Psi diag(s)^-1`` that enters it (a warm start from another cell's ``Psi``)."""
        if self.left:
            return perp.T @ Psi
        return (Psi / self.data.s) @ perp @ np.linalg.inv(C)

    def psi_of(self, Phi: np.ndarray, perp: np.ndarray, C: np.ndarray) -> np.ndarray:
        """``Psi`` of shape ``(dH, r)`` with ``||Psi||_op <= ||Phi||_op`` that enters ``h`` as
        ``Phi`` enters the restricted problem."""
        if self.left:
            return perp @ Phi
        return (Phi @ np.linalg.inv(C) @ perp.T) / self.data.s

    def primal_candidate(self, Phi: np.ndarray, B: np.ndarray, C: np.ndarray,
                         perp: np.ndarray) -> np.ndarray:
        """The rank-``k`` matrix ``N`` that the restricted problem's ``Phi`` gives."""
        N2 = B - (Phi * C if C.ndim == 1 else Phi @ C)
        return perp @ N2 if self.left else N2 @ perp.T


@dataclass
class Bound:
    """What a dual point ``Psi`` bounds: ``h(Psi; Z) = base + 1/2 tr(Z^T Q Z)``."""

    base: float
    Q: np.ndarray
    magnitude: float
    Psi: np.ndarray

    @classmethod
    def of(cls, data: Data, Psi: np.ndarray, left: bool) -> Bound:
        E = data.A - Psi / data.s
        norm_sq = float(np.vdot(E, E))
        Q = E @ E.T if left else E.T @ E
        return cls(data.zero_value - 0.5 * norm_sq, Q, data.zero_value + norm_sq, Psi)

    def at(self, Zc: np.ndarray, delta: float, n: int) -> float:
        """Lower bound of ``h`` over the cell of centre ``Zc`` and radius ``delta``."""
        QZ = self.Q @ Zc
        inner = Zc.T @ QZ
        centre = self.base + 0.5 * float(np.trace(inner))
        if delta <= 0:
            return centre - allowance(self.magnitude, n)
        g = float(np.linalg.norm(QZ - Zc @ inner))
        lam = float(np.linalg.eigvalsh(0.5 * (inner + inner.T))[-1]) if inner.size else 0.0
        return centre - g * delta - 0.5 * lam * delta**2 - allowance(self.magnitude, n)


@dataclass(order=True)
class Cell:
    """A box of a chart, ordered by its lower bound."""

    lower: float
    serial: int
    chart: tuple[int, ...] = field(compare=False)
    centre: np.ndarray = field(compare=False)
    half: np.ndarray = field(compare=False)
    bound: object = field(compare=False, default=None)

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(self.half))

    @property
    def volume(self) -> float:
        return float(np.prod(2.0 * self.half))


@dataclass
class BnBResult:
    """Outcome of :func:`branch_and_bound` in normalised units."""

    lower: float
    upper: float
    N: np.ndarray | None
    #: Why the search ended: "closed" (every leaf's bound above the pruning level), "primal"
    #: (a primal value at or below ``target`` was found), "time" or "cells" (limits).
    reason: str
    cells: int
    subproblems: int
    inner_iterations: int
    covered: float


class RankOne:
    """The ``k = 1`` route: ``P* = 1/2 ||Y||^2 - 1/2 max_w phi(w)_+^2`` over the sphere of
    ``R^r``, ``phi(w) = ||A w|| - rho ||diag(s)^-1 w||``."""

    def __init__(self, data: Data):
        self.data = data
        self.n, self.p = data.A.shape[1], 1
        self.charts = [(i,) for i in range(self.n)]
        self.chart_count = self.n
        self.G = data.A.T @ data.A
        self.gmax = float(np.linalg.eigvalsh(self.G)[-1]) if self.G.size else 0.0
        self.cmin = 1.0 / float(np.max(data.s)) ** 2

    @property
    def dim(self) -> int:
        return self.n - 1

    def unit(self, chart: tuple[int, ...], y: np.ndarray) -> np.ndarray:
        w = np.empty(self.n)
        rest = [i for i in range(self.n) if i != chart[0]]
        w[chart[0]] = 1.0
        w[rest] = y
        return w / np.linalg.norm(w)

    def phi(self, w: np.ndarray) -> float:
        d = self.data
        return float(np.linalg.norm(d.A @ w)) - d.rho * float(np.linalg.norm(w / d.s))

    def candidate(self, w: np.ndarray) -> np.ndarray:
        """The rank-one ``N = a x w^T`` with ``a = phi(w)_+`` and ``x = A w / |A w|``."""
        Aw = self.data.A @ w
        a = max(self.phi(w), 0.0)
        norm = float(np.linalg.norm(Aw))
        if a == 0.0 or norm == 0.0:
            return np.zeros_like(self.data.A)
        return np.outer(Aw / norm * a, w)

    def lower(self, w: np.ndarray, delta: float) -> float:
        """Lower bound of ``1/2 ||Y||^2 - 1/2 phi_+^2`` over the cap ``sin angle <= delta``."""
        d = self.data
        Gw = self.G @ w
        b_c = float(w @ Gw)
        b_perp = float(np.linalg.norm(Gw - b_c * w))
        cw = w * (1.0 / d.s**2)
        c_c = float(w @ cw)
        c_perp = float(np.linalg.norm(cw - c_c * w))
        delta = min(delta, 1.0)
        b_up = min(b_c + 2 * delta * b_perp + delta**2 * self.gmax, self.gmax)
        c_low = max((1 - delta**2) * c_c - 2 * delta * c_perp, self.cmin)
        phi_up = math.sqrt(max(b_up, 0.0)) - d.rho * math.sqrt(c_low)
        magnitude = d.zero_value + b_up + d.rho**2 * c_c
        return d.zero_value - 0.5 * max(phi_up, 0.0) ** 2 - allowance(magnitude, self.n)


def routes(data: Data) -> list:
    """The routes that apply, cheapest search first (empty when ``k >= min(dH, r)``)."""
    dH, r = data.A.shape
    k = data.k
    if k >= min(dH, r) or k == 0:
        return []
    options = [Side(data, left=True), Side(data, left=False)]
    if k == 1:
        options.append(RankOne(data))
    # The rank-one route has the dimension of the right one (r - 1) and needs no inner
    # problem, but its bound loosens faster (measured on 3 x 3 instances with k = 1: the
    # Grassmannian routes bracketed P* to 1e-6 in 400-1000 cells, the rank-one route not in
    # 3e5): ties go to the Grassmannian routes, then to the side with fewer charts.
    return sorted(options, key=lambda o: (o.dim, isinstance(o, RankOne), o.chart_count))


def branch_and_bound(route, target: float, upper: float, *, time_limit: float,
                     prune_at: Callable[[float], float] | None = None,
                     progress: Callable[[float, float, float], None] | None = None,
                     max_cells: int = 10**7) -> BnBResult:
    """Best-first branch-and-bound on the charts of ``route`` (a :class:`Side` or
    :class:`RankOne`).

    Cells whose lower bound exceeds ``prune_at(upper)`` (default: ``target``) are closed.
    The search ends when the lowest open bound exceeds that level (``reason = "closed"``),
    when the best primal value found falls to ``target`` or below (``"primal"``: no bound can
    exceed ``target`` then), or at ``time_limit`` seconds / ``max_cells`` cells.
    ``lower`` is the minimum bound over all leaves (a valid lower bound on ``P*`` whenever the
    search covered every chart, which it always does: unexplored cells stay leaves).
    ``progress(covered, lower, upper)`` is called after each cell (``covered``: the fraction of
    the charts' volume closed).
    """
    t0 = time.perf_counter()
    data = route.data
    best_N: np.ndarray | None = None
    serial = itertools.count()
    heap: list[Cell] = []
    closed_min = math.inf
    total_volume = 0.0
    closed_volume = 0.0
    subproblems = inner = 0
    level = prune_at or (lambda _u: target)
    n_total = sum(data.A.shape)
    dim_y = route.n - route.p

    def evaluate(chart, centre, half, parent_bound) -> Cell:
        nonlocal best_N, upper, subproblems, inner
        delta = float(np.linalg.norm(half))
        if isinstance(route, RankOne):
            w = route.unit(chart, centre)
            N = route.candidate(w)
            value = data.primal(N)
            if value < upper:
                upper, best_N = value, N
            return Cell(route.lower(w, delta), next(serial), chart, centre, half, None)
        Zc, perp = route.basis(chart, centre)
        delta = min(delta, math.sqrt(route.p))
        lower = -math.inf
        if parent_bound is not None:
            lower = parent_bound.at(Zc, delta, n_total)
            if lower > level(upper):
                return Cell(lower, next(serial), chart, centre, half, parent_bound)
        B, C = route.restricted(perp)
        Phi0 = route.phi_of(parent_bound.Psi, perp, C) if parent_bound is not None else None
        # The cell's own slack grows like delta: the convex problem at its centre is solved to
        # a fraction of that (deep cells, where the bound must be tight, get accurate solves).
        accuracy = max(0.02 * delta * data.zero_value, allowance(data.zero_value, n_total))
        Phi, used = solve_restricted(B, C, data.rho, Phi0, accuracy)
        subproblems += 1
        inner += used
        N = route.primal_candidate(Phi, B, C, perp)
        value = data.primal(N)
        if value < upper:
            upper, best_N = value, N
        Psi = _feasible(route.psi_of(Phi, perp, C), data.rho)
        bound = Bound.of(data, Psi, route.left)
        own = bound.at(Zc, delta, n_total)
        if own >= lower:
            return Cell(own, next(serial), chart, centre, half, bound)
        return Cell(lower, next(serial), chart, centre, half, parent_bound)

    def close(cell: Cell) -> None:
        nonlocal closed_min, closed_volume
        closed_min = min(closed_min, cell.lower)
        closed_volume += cell.volume

    reason = "closed"
    for chart in route.charts:
        half = np.ones(dim_y * route.p if not isinstance(route, RankOne) else route.n - 1)
        cell = evaluate(chart, np.zeros_like(half), half, None)
        total_volume += cell.volume
        if cell.lower > level(upper):
            close(cell)
        else:
            heapq.heappush(heap, cell)
    cells = route.chart_count
    while heap:
        if upper <= target:
            reason = "primal"  # nothing left to prove: a primal value at or below target
            break
        cell = heap[0]
        if cell.lower > level(upper):
            break
        if time.perf_counter() - t0 > time_limit:
            reason = "time"
            break
        if cells >= max_cells:
            reason = "cells"
            break
        heapq.heappop(heap)
        j = int(np.argmax(cell.half))
        for sign in (-1.0, 1.0):
            half = cell.half.copy()
            half[j] *= 0.5
            centre = cell.centre.copy()
            centre[j] += sign * half[j]
            child = evaluate(cell.chart, centre, half, cell.bound)
            cells += 1
            if child.lower > level(upper):
                close(child)
            else:
                heapq.heappush(heap, child)
        if progress is not None:
            low = min(closed_min, heap[0].lower if heap else math.inf)
            progress(closed_volume / total_volume, low, upper)
    lower = min(closed_min, min((c.lower for c in heap), default=math.inf))
    return BnBResult(lower, upper, best_N, reason, cells, subproblems, inner,
                     closed_volume / total_volume if total_volume else 1.0)
