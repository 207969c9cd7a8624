"""The dual solvers, one route per module, behind :func:`solve_dr` and :func:`solve_sdp`.

* :mod:`.settings` - every tuned knob, as frozen dataclasses;
* :mod:`.whitened` - DR on the singular values of A (whitened X);
* :mod:`.product` - DR in the product space (general X), with restarts and refinement;
* :mod:`.refine` - a certificate through a local primal refinement;
* :mod:`.anderson` - generic type-II Anderson acceleration;
* :mod:`.outcome` - the status table and the outcome record;
* :mod:`.twosided` - bounds on the dual optimum from both sides, and the early decision;
* :mod:`.sdp` - the CVXPY reference path.
"""

from __future__ import annotations

import numpy as np

from .._reduced import Reduced
from .outcome import MESSAGES, Outcome, finish
from .product import solve_product
from .sdp import check_solver, solve_sdp
from .settings import DRSettings, SDPSettings
from .twosided import with_dual_upper
from .whitened import solve_whitened

__all__ = ["DRSettings", "SDPSettings", "check_solver", "solve_dr", "solve_sdp"]


def solve_dr(red: Reduced, tol: float, max_iter: int, settings: DRSettings, whitened: bool
             ) -> Outcome:
    """The dual by Douglas-Rachford, after the two cases that need no iteration, with an upper
    bound on the dual optimum (``Outcome.dual_upper``)."""
    return with_dual_upper(_solve_dr(red, tol, max_iter, settings, whitened), red)


def _solve_dr(red: Reduced, tol: float, max_iter: int, settings: DRSettings, whitened: bool
              ) -> Outcome:
    partial = settings.uses_partial(min(red.A.shape))
    if red.rho == 0.0:
        # gamma = 0: Gamma = 0 is the only feasible point (reduced-rank regression).
        return finish(red.certify(np.zeros_like(red.A)), "exact", 0, [], [], tol, max_iter,
                      red, settings.stall_residual)
    if red.zero_is_optimal(partial and not whitened):
        # Exact: Gamma = A is feasible and attains P(0) = 1/2 ||Y||^2.
        Gamma, lower, upper = red.certify(red.A.copy())
        return Outcome(Gamma, lower, upper, True, 0, "converged", MESSAGES["zero_network"],
                       [], [red.gap(upper, lower)])
    if whitened:
        return solve_whitened(red, tol, max_iter, settings)
    return solve_product(red, tol, max_iter, settings, partial)
