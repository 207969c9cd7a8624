r"""The dual as a semidefinite program through CVXPY (the reference path).

``||Z||_(k)^2`` is the optimal value of ``min k q + tr(P)`` subject to
``[[P + q I, Z], [Z^T, I]] >= 0`` and ``P >= 0`` (a Schur complement), so the dual is an SDP
in ``(Gamma, P, q)`` with the extra constraint ``sigma_max(Gamma diag(s)) <= rho``.
"""

from __future__ import annotations

import numpy as np

from .._optional import require
from .._reduced import Reduced
from .outcome import Outcome
from .settings import SDPSettings
from .twosided import with_dual_upper

__all__ = ["check_solver", "solve_sdp"]


#: What needs CVXPY, for the message of a missing extra.
FEATURE = 'solve_dual(method="cvxpy")'


def check_solver(solver: str) -> None:
    """``ValueError`` unless ``solver`` is an installed CVXPY solver (``ImportError`` naming
    the extra to install when CVXPY is missing)."""
    cp = require("cvxpy", FEATURE)

    if solver.upper() not in cp.installed_solvers():
        raise ValueError(
            f"solver {solver!r} is not an installed CVXPY solver; installed: "
            f"{', '.join(cp.installed_solvers())}")


def solve_sdp(red: Reduced, tol: float, settings: SDPSettings) -> Outcome:
    """Solve the SDP in normalised units and certify the returned point (made feasible)."""
    cp = require("cvxpy", FEATURE)

    solver = settings.solver
    A, s = red.A, red.s
    dH, r = A.shape
    k = min(red.k, dH, r)  # beyond min(m, n) the (k) norm is the Frobenius norm
    # ||Z||_(k)^2 = ||Z^T||_(k)^2: put the smaller side in the semidefinite block.
    transpose = dH > r
    Gamma = cp.Variable((dH, r))
    Z = (A - Gamma).T if transpose else A - Gamma
    m, n = Z.shape
    Pm = cp.Variable((m, m), symmetric=True)
    q = cp.Variable()
    lmi = cp.bmat([[Pm + q * np.eye(m), Z], [Z.T, np.eye(n)]])
    constraints = [0.5 * (lmi + lmi.T) >> 0, Pm >> 0,
                   cp.sigma_max(Gamma @ np.diag(s)) <= red.rho]
    prob = cp.Problem(cp.Minimize(k * q + cp.trace(Pm)), constraints)
    opts = dict(settings.solver_options)
    if solver.upper() == "SCS":
        opts.setdefault("eps", max(tol, 1e-12))
        opts.setdefault("max_iters", 100000)
    status, iterations = "error", -1
    try:
        prob.solve(solver=solver, **opts)
        status = str(prob.status)
        stats = prob.solver_stats
        if stats is not None and stats.num_iters is not None:
            iterations = int(stats.num_iters)
        detail = ""
    except cp.error.SolverError as exc:
        detail = f": {exc}"
    G = Gamma.value if Gamma.value is not None else np.zeros_like(A)
    G, lower, upper = red.certify(np.asarray(G, dtype=np.float64))
    gap = red.gap(upper, lower)
    # A conic solver's "optimal" bounds residuals, not the objective: trust it only when the
    # point it returned is also certified. The certificate does not depend on the solver's
    # word, so an answer it calls inaccurate counts too once it is certified (SCS 3.3 says
    # "optimal_inaccurate" on gamma = 0 with ill-conditioned X at a point certified to 2e-16).
    needed = max(tol, settings.certified)
    solved = status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    converged = solved and gap <= needed
    message = (f"{solver} status {status!r}{detail}; certified relative gap {gap:.2e} "
               "at the returned point (made feasible)")
    if converged and status != cp.OPTIMAL:
        message += f" <= {needed:.0e}: certified although the solver called it inaccurate"
    if solved and not converged:
        message += (f" exceeds {needed:.0e}: the solver's accuracy is not enough for this "
                    "instance (its optimum is small against 1/2 ||Y||^2?)")
    return with_dual_upper(Outcome(G, lower, upper, converged, iterations, status, message),
                           red)
