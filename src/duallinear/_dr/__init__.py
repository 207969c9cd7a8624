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

from collections.abc import Callable

import numpy as np

from .._reduced import Reduced
from .outcome import Outcome, finish
from .product import solve_product
from .sdp import check_solver, solve_sdp
from .settings import DRSettings, SDPSettings
from .twosided import with_dual_upper
from .whitened import solve_whitened

#: A normalised ``rho`` (``rho / (||A||_op s_max)``) at or below which the dual is solved by
#: ``Gamma = 0`` alone (certified like any point; the graph scaling ``c / rho`` of the
#: product-space splitting would overflow near 1e-300).
NEGLIGIBLE_RHO = 1e-100

__all__ = ["NEGLIGIBLE_RHO", "DRSettings", "SDPSettings", "check_solver", "solve_dr", "solve_sdp"]


def solve_dr(red: Reduced, tol: float, max_iter: int, settings: DRSettings, whitened: bool,
             callback: Callable[[int, float], object] | None = None) -> Outcome:
    """The dual by Douglas-Rachford, after the two cases that need no iteration, with an upper
    bound on the dual optimum (``Outcome.dual_upper``).

    ``callback(iteration, gap)`` is called with every entry of the outcome's ``gaps``."""
    return with_dual_upper(_solve_dr(red, tol, max_iter, settings, whitened, callback), red)


def _solve_dr(red: Reduced, tol: float, max_iter: int, settings: DRSettings, whitened: bool,
              callback: Callable[[int, float], object] | None = None) -> Outcome:
    partial = settings.uses_partial(min(red.A.shape))
    if red.rho == 0.0:
        # gamma = 0: Gamma = 0 is the only feasible point (reduced-rank regression).
        return finish(red.certify(np.zeros_like(red.A)), "exact", 0, [], [], tol, max_iter,
                      red, settings.stall_residual)
    if red.rho <= NEGLIGIBLE_RHO:
        # Gamma = 0 is feasible for every rho, and its truncation's objective exceeds the
        # gamma = 0 optimum by rho ||M||_*: negligible here, where the splitting's scaling
        # w = c / rho would overflow.
        return finish(red.certify(np.zeros_like(red.A)), "negligible_gamma", 0, [], [], tol,
                      max_iter, red, settings.stall_residual)
    if red.zero_is_optimal(partial and not whitened):
        # Exact: Gamma = A is feasible and attains P(0) = 1/2 ||Y||^2.
        Gamma, lower, upper = red.certify(red.A.copy())
        return finish((Gamma, lower, upper), "zero_network", 0, [], [red.gap(upper, lower)],
                      tol, max_iter, red, settings.stall_residual)
    if whitened:
        return solve_whitened(red, tol, max_iter, settings, callback)
    return solve_product(red, tol, max_iter, settings, partial, callback)
