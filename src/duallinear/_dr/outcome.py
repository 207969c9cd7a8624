"""What a dual solve ends with: the best certified point, its status and the diagnostics.

Statuses come from one table; the message is derived from the status and the result's
fields, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._reduced import Reduced
from ..results import DualDiagnostics

__all__ = ["MESSAGES", "Best", "Outcome", "finish", "met", "message"]

#: One message template per status of the DR solver. Fields: ``gap``, ``tol``,
#: ``iterations``, ``max_iter``, ``stall_residual``.
MESSAGES = {
    "converged": "certified relative gap {gap:.2e} <= tol {tol:.1e} after {iterations} "
                 "iterations",
    "zero_network": "zero network optimal (||Y X^T||_op <= rho): Gamma = A is exact, but "
                    "tol = 0 asks for every iteration, so it is not reported converged",
    "exact": "the dual point is exact but the weights recovered by truncation reach only "
             "relative gap {gap:.2e} > tol {tol:.1e} (tied singular values at k?)",
    "stalled": "the dual iterate converged (fixed-point residual below {stall_residual:g}) "
               "after {iterations} iterations, but the weights recovered by truncation are "
               "certified only to relative gap {gap:.2e} > tol {tol:.1e}: tied singular "
               "values at k, or a non-zero duality gap (recover() polishes); of the converged "
               "iterate and the point of smallest gap, the one with the higher dual value is "
               "reported",
    "negligible_gamma": "gamma is negligible at float64 scale: Gamma = 0 (reduced-rank "
                        "regression) is certified only to relative gap {gap:.2e} > tol {tol:.1e}",
    "max_iter": "reached max_iter={max_iter} with certified relative gap {gap:.2e} > tol "
                "{tol:.1e}",
    "duality_gap": "the dual optimum is pinned to relative width {width:.1e} <= tol {tol:.1e} "
                   "after {iterations} iterations (dual_upper bounds it from above), but the "
                   "minimiser of the relaxed primal found there has rank {rank} > k = {k}: "
                   "the relaxation is not tight at it, a non-zero duality gap is indicated, "
                   "and the weights recovered by truncation are certified only to relative "
                   "gap {gap:.2e}; duallinear.prove_gap proves the gap on small instances",
}


class Best:
    """A certified point: feasible ``Gamma``, its dual value ``lower``, the objective ``upper``
    of the weights recovered from it, and their relative gap."""

    __slots__ = ("Gamma", "lower", "upper", "gap")

    def __init__(self, Gamma: np.ndarray, lower: float, upper: float, gap: float):
        self.Gamma, self.lower, self.upper, self.gap = Gamma, lower, upper, gap

    @classmethod
    def of(cls, point: tuple[np.ndarray, float, float], red: Reduced) -> Best:
        """From ``(Gamma, lower, upper)``, with its gap."""
        return cls(*point, red.gap(point[2], point[1]))

    def better(self, other: Best | None) -> Best:
        """The one of ``self`` and ``other`` with the smaller gap (``other`` on a tie)."""
        return self if other is None or self.gap < other.gap else other


def met(gap: float, tol: float) -> bool:
    """The stopping test; ``tol = 0`` asks for the full ``max_iter`` (nothing meets it)."""
    return tol > 0.0 and gap <= tol


@dataclass
class Outcome:
    """The result of one solver route in normalised units (see :class:`Reduced`)."""

    Gamma: np.ndarray
    lower: float
    upper: float
    converged: bool
    iterations: int
    status: str
    message: str
    residuals: list = field(default_factory=list)
    gaps: list = field(default_factory=list)
    diagnostics: DualDiagnostics = field(default_factory=DualDiagnostics)
    #: An upper bound on the dual optimum (``inf``: not evaluated; see :mod:`.twosided`).
    dual_upper: float = float("inf")


#: Messages of statuses that can also end converged (then these replace "converged").
CONVERGED_MESSAGES = {
    "zero_network": "zero network optimal (||Y X^T||_op <= rho): Gamma = A is exact",
    "negligible_gamma": "gamma is negligible at float64 scale: Gamma = 0 (reduced-rank "
                        "regression) is certified to relative gap {gap:.2e} <= tol {tol:.1e}",
}


def message(status: str, gap: float, tol: float, iterations: int, max_iter: int,
            stall_residual: float, diagnostics: DualDiagnostics, origin: str = "",
            **extra: object) -> str:
    """The DR message for ``status`` (reached from ``origin``), with what the diagnostics
    add (``extra``: the fields of the ``"duality_gap"`` template)."""
    text = MESSAGES[status].format(gap=gap, tol=tol, iterations=iterations, max_iter=max_iter,
                                   stall_residual=stall_residual, **extra)
    if status == "converged" and origin in CONVERGED_MESSAGES:
        text = CONVERGED_MESSAGES[origin].format(gap=gap, tol=tol)
    d = diagnostics
    if d.refine_route:
        source = ("the truncation of A (which has a gap at k), before any iteration"
                  if iterations == 0 else "the dual iterate")
        text += (f"; certified through a primal refinement from {source} (L-BFGS on "
                 f"the factored rank-k problem, {d.refine_evaluations} evaluations in "
                 f"{d.refine_attempts} attempt(s))")
    calls = d.maps_leading + d.maps_gram + d.maps_svd
    if d.partial_svd and calls:
        text += (f"; {d.maps_leading} of {calls} proximal maps from leading triplets, "
                 f"{d.maps_gram + d.maps_svd} by a full eigen- or singular value decomposition")
    return text


def finish(best: tuple[np.ndarray, float, float], status: str, iterations: int,
           residuals: list, gaps: list, tol: float, max_iter: int, red: Reduced,
           stall_residual: float, diagnostics: DualDiagnostics | None = None,
           dual_upper: float = float("inf"), **extra: object) -> Outcome:
    """The outcome at ``best = (Gamma, lower, upper)``: converged whenever its gap meets tol
    (``extra``: the fields of the ``"duality_gap"`` message)."""
    diagnostics = diagnostics or DualDiagnostics()
    Gamma, lower, upper = best
    gap = red.gap(upper, lower)
    converged = met(gap, tol)
    origin = status
    if converged:
        status = "converged"
    text = message(status, gap, tol, iterations, max_iter, stall_residual, diagnostics, origin,
                   **(extra if status == "duality_gap" else {}))
    return Outcome(Gamma, lower, upper, converged, iterations, status, text, residuals, gaps,
                   diagnostics, dual_upper)
