"""Result objects shared by the solvers, and the warning they raise when they stop early.

Both result classes carry the same core fields whatever the method: ``method``, ``value``,
``converged``, ``iterations``, ``message`` and ``time`` (seconds, wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConvergenceWarning", "RecoveryWarning", "PrimalResult", "DualResult",
           "DualDiagnostics"]


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance; the result says ``converged=False``."""


class RecoveryWarning(UserWarning):
    """Weights rebuilt from a dual solution are not certified optimal to the requested tol."""


@dataclass(frozen=True, eq=False)
class PrimalResult:
    """Outcome of :func:`duallinear.solve_primal` (best of several local restarts).

    Attributes
    ----------
    method : str
        ``"lbfgs"`` or ``"gd"``.
    weights : list of ndarray
        Best weights found, ``[W_1, .., W_H]`` with ``W_i`` of shape ``(d_i, d_{i-1})``.
    value : float
        Objective (4) at ``weights``.
    converged : bool
        Whether the best restart met its stopping tolerance.
    iterations : int
        Iterations of the best restart.
    message : str
        Human-readable summary.
    time : float
        Total wall-clock seconds over all restarts.
    values : ndarray, shape (restarts,)
        Final objective of every restart, in the order they were run.
    restart_converged : ndarray of bool, shape (restarts,)
        Whether each restart met its tolerance.
    best_restart : int
        Index of the best restart.
    seed : int or None
        The seed the restarts were drawn from.
    """

    method: str
    weights: list[np.ndarray]
    value: float
    converged: bool
    iterations: int
    message: str
    time: float
    values: np.ndarray
    restart_converged: np.ndarray
    best_restart: int
    seed: int | None = None


@dataclass(frozen=True)
class DualDiagnostics:
    """What a Douglas-Rachford solve did, as numbers (``DualResult.diagnostics``).

    Attributes
    ----------
    refine_attempts : int
        Primal refinements tried (general X, ``primal_refine=True``).
    refine_evaluations : int
        Objective-and-gradient evaluations those refinements took.
    refine_route : str
        ``""`` unless the certificate came from a refinement; then ``"rank_k"`` (the factored
        rank-k problem) or ``"low_rank"`` (the rank bound inactive: the convex problem).
    partial_svd : bool
        Whether the proximal maps tried leading singular triplets first.
    maps_leading, maps_gram, maps_svd : int
        Spectral maps computed from leading triplets, through an eigendecomposition of the
        Gram matrix, and by a full SVD (general X).
    schedule_pairs : int
        (step, scaling) pairs of the DR schedule used: 1 plus the restarts after stalls.
    two_sided_from : int
        Iteration from which DR also bounded the dual optimum from above (0: never; see
        ``DualResult.dual_upper``).
    relaxed_rank : int
        Rank of the relaxed minimiser behind ``DualResult.dual_upper`` (its singular values
        above 1e-4 of the largest; -1 if not evaluated). Above the bottleneck ``k`` it is the
        rank signal: the convex relaxation is not tight at that point.
    """

    refine_attempts: int = 0
    refine_evaluations: int = 0
    refine_route: str = ""
    partial_svd: bool = False
    maps_leading: int = 0
    maps_gram: int = 0
    maps_svd: int = 0
    schedule_pairs: int = 0
    two_sided_from: int = 0
    relaxed_rank: int = -1


@dataclass(frozen=True, eq=False)
class DualResult:
    """Outcome of :func:`duallinear.solve_dual`.

    Attributes
    ----------
    method : str
        ``"dr"`` or ``"cvxpy"``.
    Lambda : ndarray, shape (dH, d0)
        The dual variable of problem (5), ``Lambda = Gamma diag(s) U^T``, feasible
        (``||Lambda||_op <= rho`` up to rounding).
    Gamma : ndarray, shape (dH, r)
        The same point in the reduced coordinates of MATH.md section 5.
    value : float
        ``D(Gamma)`` at that feasible point: a valid lower bound on the primal optimum.
    converged : bool
        Whether the method met its tolerance.
    iterations : int
        Iterations performed (solver-reported for ``"cvxpy"``; -1 if unknown).
    message : str
        Human-readable summary (includes the conic solver's status for ``"cvxpy"``).
    time : float
        Wall-clock seconds.
    upper_bound : float
        Objective of the weights recovered from this point by truncation (MATH.md section 7),
        ``inf`` if not evaluated. ``upper_bound - value`` bounds the suboptimality of both.
    relative_gap : float
        ``(upper_bound - value) / max(|upper_bound|, 1e-8 * 1/2 ||Y||^2)``.
    status : str
        ``"converged"``, ``"max_iter"``, ``"stalled"`` or ``"duality_gap"`` (the dual optimum
        pinned to ``tol`` from both sides while the relaxed minimiser has rank above k: see
        :func:`duallinear.prove_gap`) for DR; the solver's status for CVXPY.
    residuals : ndarray
        DR: relative fixed-point residual ``||z_{j+1} - z_j|| / max(||z_j||, 1)`` per
        iteration (in normalised units). Empty for CVXPY.
    gaps : ndarray
        DR: relative certified gap at each check (every fifth iteration). With leading
        triplets (``solve_dual(partial_svd=...)``) a check first estimates the gap from the
        triplets and certifies only when the estimate meets ``tol``: entries above ``tol``
        may be estimates; ``relative_gap`` is always certified. Empty for CVXPY.
    diagnostics : DualDiagnostics
        Counts of what the DR solver did (all zero for CVXPY and the closed-form cases).
    dual_upper : float
        An upper bound on the dual optimum: ``value <= D* <= dual_upper``. It is the relaxed
        primal ``U(N) = 1/2||Y||^2 + 1/2||N||_(k)*^2 - <N, A> + rho ||N diag(s)^-1||_*``
        (``||.||_(k)*`` the spectral k-support norm) at an explicit ``N``, or ``upper_bound``
        when that is lower (a primal value bounds ``D*`` too). ``dual_upper - value`` is how
        well ``D*`` is known even where the duality gap is not zero (``docs/math.md``). Like
        ``value`` it is evaluated in floating point without a rounding allowance
        (:func:`duallinear.prove_gap` adds one before it calls a gap proved).
    """

    method: str
    Lambda: np.ndarray
    Gamma: np.ndarray
    value: float
    converged: bool
    iterations: int
    message: str
    time: float
    upper_bound: float = float("inf")
    relative_gap: float = float("inf")
    status: str = ""
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gaps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    diagnostics: DualDiagnostics = field(default_factory=DualDiagnostics)
    dual_upper: float = float("inf")
