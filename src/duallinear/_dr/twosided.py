r"""Two-sided bounds on the dual optimum during Douglas-Rachford, and the early decision.

The dual value at a feasible point bounds ``D*`` from below; an upper bound comes from the
relaxed primal ``U(N) >= D*`` of :mod:`duallinear._upper`, evaluated at the DR *shadow*
``N = (prox_{t f}(v) - v) / t``: by the optimality of the prox, ``N`` lies in the
subdifferential of ``1/2 ||.||_(k)^2`` at ``A - prox_{t f}(v)``, and it converges to a
minimiser of ``U`` (the DR "dual" sequence). On a square Gaussian instance with a duality
gap (benchmarks/svd_equivalents.py, d = 200, seed 2; step pair (0.3, 0.1)) ``U`` at the
shadow was within 3e-12 of ``D*`` after 80 iterations, while the dual value at the graph
projection was still 1.3e-8 away; the ball projection's output ``Phi`` gives the feasible
point ``Gamma = Phi / (w diag(s))``, whose dual value was 4x closer (3.4e-9). When the
interval closes to ``tol`` while the minimiser found has rank above ``k`` (the rank signal),
DR stops with status ``"duality_gap"`` instead of running to a stall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._reduced import Reduced
from .._upper import relaxed_rank, relaxed_value_low_rank, tie_family
from .outcome import Best, Outcome

__all__ = ["Memo", "TwoSided", "TIE_FAMILY_MAX_DIM", "warm_start", "with_dual_upper"]


@dataclass
class Memo:
    """What one DR map records when ``want`` is set: the shadow ``N`` (the change that
    ``prox_{t f}`` made, divided by ``t``), how many singular values it moved, the ball
    projection's output ``Phi`` and the graph point ``x = (Gamma, w Gamma diag(s))`` it
    started from."""

    want: bool = False
    N: np.ndarray | None = None
    moving: int = 0
    Phi: np.ndarray | None = None
    Gamma: np.ndarray | None = None


def warm_start(Gamma: np.ndarray, N: np.ndarray, ws: np.ndarray, t: float) -> np.ndarray:
    """The DR point ``z`` of step ``t`` and graph scaling ``ws = w diag(s)`` whose fixed-point
    relations hold at the primal-dual pair ``(Gamma, N)``.

    At a fixed point ``z = x - t g`` with ``x = (Gamma, ws Gamma)`` the graph point and
    ``g = (-N, N / ws)`` (the subgradient of ``f`` at ``Gamma`` and the normal of the ball,
    orthogonal to the graph): ``z = (Gamma + t N, ws Gamma - t N / ws)``.
    """
    return np.stack([Gamma + t * N, ws * Gamma - (t / ws) * N])


@dataclass
class TwoSided:
    """The interval on ``D*`` gathered so far: the best certified dual point (highest dual
    value) and the lowest ``U`` with the rank of its ``N``."""

    red: Reduced
    drop: float
    lower: Best | None = None
    upper: float = float("inf")
    rank: int = -1
    checks: list = field(default_factory=list)

    def update(self, memo: Memo, ws: np.ndarray, certify) -> Best:
        """Certify the ball-side point of the memo and evaluate ``U`` at its shadow."""
        red = self.red
        point = Best.of(certify(memo.Phi / ws), red)
        if self.lower is None or point.lower > self.lower.lower:
            self.lower = point
        value, w = relaxed_value_low_rank(red.A, memo.N, memo.moving, red.s, red.rho, red.k,
                                          red.residual_sq)
        if value < self.upper:
            self.upper, self.rank = value, relaxed_rank(w, self.drop)
        self.checks.append((point.lower, value))
        return point

    @property
    def width(self) -> float:
        """Relative width of the interval (``inf`` before the first check)."""
        if self.lower is None:
            return float("inf")
        return self.red.gap(self.upper, self.lower.lower)

    def not_tight(self) -> bool:
        """The rank signal: the minimiser of ``U`` found has more than ``k`` significant
        singular values."""
        return self.rank > self.red.k


#: Largest ``min(dH, r)`` at which an uncertified result also tries the tie family (a full
#: SVD of ``A - Gamma`` and small problems; beyond, ``dual_upper`` is the primal value or the
#: two-sided track's bound).
TIE_FAMILY_MAX_DIM = 1000


def with_dual_upper(out: Outcome, red: Reduced) -> Outcome:
    """``out`` with ``dual_upper`` filled in when the route left it open.

    A certified point needs nothing else: the primal value of its weights bounds ``D*``.
    Otherwise the best member of the tie family at the returned point is evaluated
    (:func:`duallinear._upper.tie_family`); every candidate is ``U`` at an explicit ``N``.
    """
    upper = min(out.dual_upper, out.upper)
    if (not out.converged and red.A.size and out.status != "duality_gap"
            and min(red.A.shape) <= TIE_FAMILY_MAX_DIM):
        family = tie_family(red.A, out.Gamma, red.s, red.rho, red.k, red.residual_sq)
        upper = min(upper, family.value)
    out.dual_upper = max(upper, out.lower)
    return out
