"""Result objects shared by the solvers, and the warning they raise when they stop early.

Both result classes carry the same core fields whatever the method: ``method``, ``value``,
``converged``, ``iterations``, ``message`` and ``time`` (seconds, wall clock).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConditioningWarning", "ConvergenceWarning", "RecoveryWarning", "PrimalResult",
           "DualResult", "DualDiagnostics"]


def _short(name: str, value: object) -> str:
    """One field of a result, short: arrays by their shape, floats to a few digits."""
    if isinstance(value, np.ndarray):
        return f"array {value.shape}"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, np.ndarray) for v in value):
        return f"{len(value)} arrays " + ", ".join(str(v.shape) for v in value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if "gap" in name:
            return f"{value:.3e}"
        if name == "time":
            return f"{value:.3g} s"
        return f"{value:.12g}"
    text = repr(value)
    return text.splitlines()[0] if "\n" in text else text  # a nested result: its first line


def summary(result: object, head: tuple[str, ...]) -> str:
    """A result's repr: its class and the ``head`` fields on one line, then every other field
    on its own line (arrays by shape), as scipy's ``OptimizeResult`` prints."""
    names = [f.name for f in dataclasses.fields(result) if f.repr]
    title = ", ".join(f"{n}={_short(n, getattr(result, n))}" for n in head if n in names)

    def rank(name: str) -> int:  # numbers first, then the message, then arrays and records
        value = getattr(result, name)
        if isinstance(value, (bool, int, float, np.number, np.bool_)) or value is None:
            return 0
        return 1 if isinstance(value, str) else 2

    rest = sorted((n for n in names if n not in head), key=rank)
    width = max((len(n) for n in rest), default=0)
    lines = [f"{type(result).__name__}({title})"]
    lines += [f"  {n:>{width}}: {_short(n, getattr(result, n))}" for n in rest]
    return "\n".join(lines)


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance; the result says ``converged=False``."""


class ConditioningWarning(ConvergenceWarning):
    """float64 cannot resolve the problem as given to the requested accuracy (ill-conditioned
    X, directions dropped below the rank cut, statistics that square the conditioning)."""


class RecoveryWarning(UserWarning):
    """Weights rebuilt from a dual solution are not certified optimal to the requested tol."""


@dataclass(frozen=True, eq=False, repr=False)
class PrimalResult:
    """Outcome of :func:`duallinear.solve_primal` (best of several local restarts).

    Attributes
    ----------
    method : str
        ``"lbfgs"`` or ``"gd"``.
    weights : list of ndarray
        Best weights found, ``[W_1, .., W_H]`` with ``W_i`` of shape ``(d_i, d_{i-1})``.
    value : float
        Objective [(1)][eq-primal] at ``weights``.
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

    def __repr__(self) -> str:
        return summary(self, ("method", "converged"))


@dataclass(frozen=True, repr=False)
class DualDiagnostics:
    """What a Douglas-Rachford solve did, as numbers (``DualResult.diagnostics``).

    Attributes
    ----------
    refine_attempts : int
        Primal refinements tried (general X, ``primal_refine=True``).
    refine_evaluations : int
        Objective-and-gradient evaluations those refinements took.
    refine_revisits : int
        Later iterates at which a failed refinement's rank-k point was tested again with the
        iterate's free block (``DRSettings.refine_revisit``; resumed ones also count in
        ``refine_attempts``).
    refine_route : str
        ``""`` unless the certificate came from a refinement; then ``"rank_k"`` (the factored
        rank-k problem) or ``"low_rank"`` (the rank bound inactive: the convex problem).
    refine_start : bool
        Whether a refinement from ``Gamma = 0`` was tried before the first iteration (A had a
        gap at k; ``DRSettings.refine_start_min_dim``).
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
    refine_revisits: int = 0
    refine_route: str = ""
    refine_start: bool = False
    partial_svd: bool = False
    maps_leading: int = 0
    maps_gram: int = 0
    maps_svd: int = 0
    schedule_pairs: int = 0
    two_sided_from: int = 0
    relaxed_rank: int = -1

    def __repr__(self) -> str:
        # Only what the solver did: fields at their defaults (nothing counted) are left out.
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"DualDiagnostics({', '.join(changed)})"


@dataclass(frozen=True, eq=False, repr=False)
class DualResult:
    """Outcome of :func:`duallinear.solve_dual`.

    Attributes
    ----------
    method : str
        ``"dr"`` or ``"cvxpy"``.
    Lambda : ndarray, shape (dH, d0)
        The dual variable of [(4)][eq-dual], ``Lambda = Gamma diag(s) U^T``, feasible
        (``||Lambda||_op <= rho`` up to rounding).
    Gamma : ndarray, shape (dH, r)
        The same point in the reduced coordinates of [(3)][eq-reduction].
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
        Objective of the weights recovered from this point by truncation [(9)][eq-recovery],
        ``inf`` if not evaluated; for the data as given (raised by the rounding margin).
    relative_gap : float
        A bound on ``(P(recovered weights) - P*) / max(|upper_bound|, 1e-8 * 1/2 ||Y||^2)``
        for the data as given: the float64 gap plus the second-order rounding term (the
        first-order shift moves both bounds alike and cancels in the gap of the pair).
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
    float_value : float
        The dual value of the float64 reduction at ``Gamma``, before the rounding margin:
        ``value = float_value - rounding[0] - rounding[1]``.
    rounding : tuple of float
        ``(first, second)``: the first-order shift of both bounds by rounding in the reduction
        of X, and what remains of it (second order) in the gap of a pair; ``value`` is lowered
        and ``upper_bound`` raised by both, ``relative_gap`` includes the second only
        (``docs/math.md``, rounding). ``inf`` when float64 cannot resolve X.
    fingerprint : str
        ``DeepLinearProblem.fingerprint`` of the problem solved; ``recover`` and
        ``duality_gap`` reject a dual whose fingerprint is another problem's ("" skips that
        check, for a result built by hand).
    dual_upper : float
        An upper bound on the dual optimum: ``value <= D* <= dual_upper``. It is the relaxed
        primal ``U(N) = 1/2||Y||^2 + 1/2||N||_(k)*^2 - <N, A> + rho ||N diag(s)^-1||_*``
        (``||.||_(k)*`` the spectral k-support norm) at an explicit ``N``, or ``upper_bound``
        when that is lower (a primal value bounds ``D*`` too). ``dual_upper - value`` is how
        well ``D*`` is known even where the duality gap is not zero (``docs/math.md``). Like
        ``value`` it holds for the data as given (raised by the rounding margin;
        :func:`duallinear.prove_gap` adds its own allowance before it calls a gap proved).
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
    float_value: float = float("nan")
    rounding: tuple[float, float] = (0.0, 0.0)
    fingerprint: str = ""
    dual_upper: float = float("inf")
    #: The rounding terms at ``Gamma`` with the dual point's map (normalised units), kept by
    #: :func:`duallinear.solve_dual` so that certifying weights against this point needs no
    #: second decomposition; not an init argument, so a copy with another ``Gamma``
    #: (``dataclasses.replace``) drops it.
    _rounding_detail: object = field(default=None, init=False, repr=False, compare=False)
    #: The k leading singular triplets ``(U_k, s_k, Vt_k)`` of ``A - Gamma`` the certificate
    #: used, kept for :func:`duallinear.recover` (same rule: dropped by a copy).
    _truncation: object = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return summary(self, ("method", "status", "converged"))
