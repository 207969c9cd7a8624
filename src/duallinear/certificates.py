r"""Dual values, duality gaps and the whitened closed form (MATH.md sections 5 and 6).

The functions with a leading underscore work on reduced data ``(A, s, rho, k, residual_sq)``
and are shared by the dual solvers and the recovery; the public ones take a
:class:`~duallinear.DeepLinearProblem`.

Values are computed so that no large terms cancel: the dual value
``D(Gamma) = 1/2 ||Y||^2 - 1/2 ||A - Gamma||_(k)^2`` is evaluated as
``1/2 residual_sq + <Gamma, A - Gamma/2> + 1/2 sum_{j > k} sigma_j(A - Gamma)^2``, a sum of
terms that are each small when the optimum is small.
"""

from __future__ import annotations

import numpy as np

from ._linalg import svd, svdvals
from ._validation import as_matrix
from .primal import objective
from .problem import DeepLinearProblem, check_problem
from .results import DualResult

__all__ = ["dual_value", "duality_gap", "relative_gap", "closed_form", "ClosedForm"]

#: Floor of the denominator of a relative gap, as a fraction of the zero network's value
#: ``1/2 ||Y||^2``: an objective below it counts as zero (a fit residual under 1e-4 of
#: ``||Y||``). Objectives evaluated through float64 weights cannot resolve much less on
#: ill-conditioned X: measured 5e-17 of ``1/2 ||Y||^2`` for an exact fit at cond(X) = 7.5e8.
GAP_FLOOR = 1e-8


def relative_gap(upper: float, lower: float, zero_value: float) -> float:
    """``(upper - lower) / max(|upper|, GAP_FLOOR * zero_value)``; 0 when both are 0.

    Parameters
    ----------
    upper : float
        A primal objective value (upper bound on the optimum).
    lower : float
        A dual value (lower bound).
    zero_value : float >= 0
        ``1/2 ||Y||_F^2``, the objective of the zero network (sets the scale of the floor).
    """
    for name, value in (("upper", upper), ("lower", lower), ("zero_value", zero_value)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not np.isfinite(value) and name != "upper":
            raise ValueError(f"{name} must be finite, got {value}")
        if np.isnan(value):
            raise ValueError(f"{name} must not be NaN")
    if zero_value < 0:
        raise ValueError(f"zero_value must be >= 0, got {zero_value}")
    if upper == np.inf:
        return float("inf")
    denom = max(abs(upper), GAP_FLOOR * zero_value)
    if denom == 0.0:
        return 0.0 if upper == lower else float("inf")
    return (upper - lower) / denom


def _op_norm(Z: np.ndarray) -> float:
    return float(svdvals(Z)[0]) if Z.size else 0.0


def _make_feasible(Gamma: np.ndarray, s: np.ndarray, rho: float) -> np.ndarray:
    """Scale Gamma into ``{||Gamma diag(s)||_op <= rho}`` (MATH.md section 5)."""
    norm = _op_norm(Gamma * s)
    if norm <= rho:
        return Gamma
    if rho == 0.0:
        return np.zeros_like(Gamma)
    return Gamma * (rho / norm)


def _dual_value(A: np.ndarray, Gamma: np.ndarray, k: int, residual_sq: float,
                sv_B: np.ndarray | None = None) -> float:
    """``D(Gamma)`` without cancellation; ``sv_B`` are the singular values of ``A - Gamma``."""
    if sv_B is None:
        sv_B = svdvals(A - Gamma) if A.size else np.zeros(0)
    tail = float(np.dot(sv_B[k:], sv_B[k:]))
    return 0.5 * residual_sq + float(np.vdot(Gamma, A - 0.5 * Gamma)) + 0.5 * tail


def _certify(A: np.ndarray, Gamma: np.ndarray, s: np.ndarray, rho: float, k: int,
             residual_sq: float) -> tuple[float, float]:
    """Dual value at a feasible ``Gamma`` and the objective (6) of ``N = trunc_k(A - Gamma)``.

    One SVD of ``A - Gamma`` serves both; the nuclear norm of ``N diag(s)^-1`` comes from the
    ``k x r`` factor ``diag(sigma_k) V_k^T diag(s)^-1`` (N has rank k).
    """
    if A.size == 0:
        return 0.5 * residual_sq, 0.5 * residual_sq
    U, sv, Vt = svd(A - Gamma)
    lower = _dual_value(A, Gamma, k, residual_sq, sv)
    return lower, _truncation_value(A, U[:, :k], sv[:k], Vt[:k], s, rho, residual_sq)


#: Relative levels below which the singular values of ``M = N diag(s)^-1`` are also tried
#: dropped in the upper bound (as ``recover`` does when it prunes the weights).
PRUNE_LEVELS = (1e-10, 1e-8, 1e-6)


def _truncation_value(A: np.ndarray, Uk: np.ndarray, sk: np.ndarray, Vtk: np.ndarray,
                      s: np.ndarray, rho: float, residual_sq: float) -> float:
    """Objective (6) of ``N = Uk diag(sk) Vtk`` (any such triplets: a valid upper bound), or
    of ``N`` with the smallest singular values of ``M = N diag(s)^-1`` dropped, if lower.

    With ill-conditioned X a dual point accurate to rounding leaves values of ``M`` of order
    ``eps / s_min`` where the optimum has zeros, and their nuclear norm alone can exceed
    ``tol`` (found by the fuzzer: cond(X) = 4.5e6, gap 6e-10 unpruned, -5e-16 pruned).
    """
    Rk = sk[:, None] * Vtk
    upper = 0.5 * float(np.sum((Uk @ Rk - A) ** 2)) + 0.5 * residual_sq
    if rho == 0.0 or not Rk.size:
        return upper
    Z, mu, Wt = svd(Rk / s)  # M = (Uk Z) diag(mu) Wt
    best = upper + rho * float(np.sum(mu))
    ranks = {int(np.sum(mu > mu[0] * level)) for level in PRUNE_LEVELS} if mu[0] > 0 else set()
    for rank in sorted(ranks - {mu.size}, reverse=True):
        N = ((Uk @ Z[:, :rank]) * mu[:rank]) @ (Wt[:rank] * s)
        value = (0.5 * float(np.sum((N - A) ** 2)) + 0.5 * residual_sq
                 + rho * float(np.sum(mu[:rank])))
        best = min(best, value)
    return best


def dual_value(problem: DeepLinearProblem, Lambda: np.ndarray) -> float:
    """Dual objective (5) at ``Lambda`` after scaling it into the feasible set.

    Parameters
    ----------
    problem : DeepLinearProblem
    Lambda : array_like, shape (dH, d0)
        Any matrix; its component outside the row space of X is dropped and the rest is
        scaled so that ``||Lambda||_op <= rho``. The returned value is therefore always a
        valid lower bound on the primal optimum (weak duality).

    Returns
    -------
    float
    """
    check_problem(problem)
    Lambda = as_matrix(Lambda, "Lambda", allow_empty=True)
    if Lambda.shape != (problem.dH, problem.d0):
        raise ValueError(
            f"Lambda must have shape (dH, d0) = {(problem.dH, problem.d0)}, got {Lambda.shape}"
        )
    Gamma = _make_feasible((Lambda @ problem.U) / problem.s, problem.s, problem.rho)
    return _dual_value(problem.A, Gamma, problem.k, problem.residual_sq)


def duality_gap(problem: DeepLinearProblem, weights: list[np.ndarray],
                dual: DualResult) -> float:
    """Certified suboptimality bound ``P(weights) - dual.value``.

    By weak duality this is ``>= P(weights) - P*  >= 0`` (up to rounding): the weights are
    within this much of the global optimum.

    Parameters
    ----------
    problem : DeepLinearProblem
    weights : list of ndarray
        ``[W_1, .., W_H]``, shapes ``(d_i, d_{i-1})``.
    dual : DualResult
        From :func:`duallinear.solve_dual` on the same problem.
    """
    check_problem(problem)
    if not isinstance(dual, DualResult):
        raise TypeError(f"dual must be a DualResult from solve_dual, got {type(dual).__name__}")
    if dual.Lambda.shape != (problem.dH, problem.d0):
        raise ValueError(
            f"dual was computed for another problem: its Lambda has shape {dual.Lambda.shape}, "
            f"expected {(problem.dH, problem.d0)}"
        )
    return objective(problem, weights) - dual.value


class ClosedForm(tuple):
    """``(value, N)``: the optimum and the optimal reduced product (see :func:`closed_form`)."""

    __slots__ = ()

    @property
    def value(self) -> float:
        return self[0]

    @property
    def N(self) -> np.ndarray:
        return self[1]


def closed_form(problem: DeepLinearProblem) -> ClosedForm:
    r"""Exact optimum for whitened X (MATH.md section 6).

    With the non-zero singular values of X all equal to ``c`` and ``t = rho / c``, the optimum
    soft-thresholds the ``k`` largest singular values ``sigma_j`` of ``A`` by ``t``:
    ``P* = 1/2 residual + 1/2 sum_{j>k} sigma_j^2 + sum_{j<=k} h_t(sigma_j)`` with
    ``h_t(x) = t x - t^2/2`` if ``x > t`` else ``x^2/2``.

    Returns
    -------
    ClosedForm
        ``value`` (the optimum ``P* = D*``) and ``N`` of shape ``(dH, r)``, the optimal
        ``M U diag(s)``; the optimal end-to-end product is ``M = N diag(s)^-1 U^T``.

    Raises
    ------
    ValueError
        If X is not whitened (its non-zero singular values differ).
    """
    check_problem(problem)
    if not problem.is_whitened:
        raise ValueError(
            "closed_form needs whitened X (X X^T = c I on the range of X); the singular values "
            f"of X range from {problem.s[-1]:.6g} to {problem.s[0]:.6g}. "
            "Use solve_dual for general X."
        )
    if problem.rank == 0:
        return ClosedForm((0.5 * problem.residual_sq, np.zeros_like(problem.A)))
    t = problem.rho / problem.s[0]
    U, sigma, Vt = svd(problem.A)
    k = problem.k
    top, tail = sigma[:k], sigma[k:]
    h = np.where(top > t, t * top - 0.5 * t * t, 0.5 * top * top)
    value = 0.5 * problem.residual_sq + 0.5 * float(np.dot(tail, tail)) + float(np.sum(h))
    N = (U[:, :k] * np.maximum(top - t, 0.0)) @ Vt[:k]
    return ClosedForm((value, N))
