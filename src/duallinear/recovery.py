r"""Optimal layer weights rebuilt from a dual solution (MATH.md section 7).

1. ``N* =`` best rank-k approximation of ``A - Gamma*``;
2. ``M* = N* diag(s)^-1 U^T``, shape ``(dH, d0)``;
3. ``M* = P diag(m) Q^T`` and every layer carries ``m^(1/H)`` (the balanced factorisation,
   which attains ``sum_i ||W_i||_{S_H}^H = H ||M*||_*``), zero-padded to the widths.

The recovered weights are always evaluated. When the truncation in step 1 is ambiguous
(tied singular values at position k) or the dual point is inexact, the certified gap can be
large; the weights are then polished by a local primal search started from them, and the
result says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._linalg import svd
from ._validation import as_nonneg_scalar
from .certificates import _truncate, relative_gap
from .primal import objective, solve_primal
from .problem import DeepLinearProblem
from .results import ConvergenceWarning, DualResult, RecoveryWarning

__all__ = ["recover", "recover_weights", "balanced_factors", "Recovery"]


@dataclass(frozen=True, eq=False)
class Recovery:
    """Weights rebuilt from a dual solution and their certificate.

    Attributes
    ----------
    weights : list of ndarray
        ``[W_1, .., W_H]``, shapes ``(d_i, d_{i-1})``.
    value : float
        Objective (4) at ``weights``.
    gap : float
        ``value - dual.value``: certified bound on the suboptimality of ``weights``.
    relative_gap : float
        ``gap / max(|value|, 1e-12 * 1/2 ||Y||^2)``.
    repaired : bool
        Whether the plain truncation missed ``tol`` and a local polish was applied.
    certified : bool
        ``relative_gap <= tol``.
    message : str
    """

    weights: list[np.ndarray]
    value: float
    gap: float
    relative_gap: float
    repaired: bool
    certified: bool
    message: str


def balanced_factors(M: np.ndarray, dims: tuple[int, ...]) -> list[np.ndarray]:
    """Factor ``M`` (shape ``(dims[-1], dims[0])``) as ``W_H .. W_1`` with equal spectra.

    Every ``W_i`` has the singular values ``m^(1/H)`` of ``M``'s non-zero singular values
    ``m``; requires ``rank(M) <= min(dims[1:-1])``. Zero rows/columns pad to the widths.
    """
    H = len(dims) - 1
    P, m, Qt = svd(M)
    cut = m[0] * max(M.shape) * np.finfo(np.float64).eps if m.size else 0.0
    rank = int(np.sum(m > cut)) if m.size and m[0] > 0 else 0
    rank = min(rank, min(dims[1:-1]))
    root = m[:rank] ** (1.0 / H)
    weights = []
    for i in range(H):
        W = np.zeros((dims[i + 1], dims[i]))
        if i == 0:
            W[:rank] = root[:, None] * Qt[:rank]
        elif i == H - 1:
            W[:, :rank] = P[:, :rank] * root
        else:
            W[np.arange(rank), np.arange(rank)] = root
        weights.append(W)
    return weights


def recover(problem: DeepLinearProblem, dual: DualResult, *, tol: float = 1e-9,
            polish: bool = True) -> Recovery:
    """Rebuild weights from ``dual`` and certify them against ``dual.value``.

    Parameters
    ----------
    problem : DeepLinearProblem
    dual : DualResult
        From :func:`duallinear.solve_dual` on the same problem.
    tol : float
        Relative certified gap below which the plain truncation is accepted.
    polish : bool
        If the gap exceeds ``tol``, polish the weights by L-BFGS started from them.

    Returns
    -------
    Recovery
    """
    if not isinstance(problem, DeepLinearProblem):
        raise TypeError(f"problem must be a DeepLinearProblem, got {type(problem).__name__}")
    if not isinstance(dual, DualResult):
        raise TypeError(f"dual must be a DualResult from solve_dual, got {type(dual).__name__}")
    if dual.Gamma.shape != problem.A.shape or dual.Lambda.shape != (problem.dH, problem.d0):
        raise ValueError(
            f"dual does not belong to this problem: its Lambda has shape {dual.Lambda.shape}, "
            f"expected {(problem.dH, problem.d0)}"
        )
    tol = as_nonneg_scalar(tol, "tol")
    N, _ = _truncate(problem.A - dual.Gamma, problem.k)
    M = (N / problem.s) @ problem.U.T if problem.rank else np.zeros((problem.dH, problem.d0))
    weights = balanced_factors(M, problem.dims)
    value = objective(problem, weights)
    rel = relative_gap(value, dual.value, problem.zero_value)
    repaired = False
    message = f"truncation of A - Gamma: certified relative gap {rel:.2e}"
    if rel > tol and polish:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = solve_primal(problem, restarts=1, init=weights, tol=1e-12)
        if res.value < value:
            weights, value = res.weights, res.value
            rel_new = relative_gap(value, dual.value, problem.zero_value)
            message += f"; polished by L-BFGS from the recovered point: {rel_new:.2e}"
            rel, repaired = rel_new, True
    certified = rel <= tol
    if not certified:
        warnings.warn(
            f"recovered weights are certified only to relative gap {rel:.2e} > tol {tol:.1e} "
            f"(dual: {dual.message})", RecoveryWarning, stacklevel=2)
    return Recovery(weights=weights, value=value, gap=value - dual.value, relative_gap=rel,
                    repaired=repaired, certified=certified, message=message)


def recover_weights(problem: DeepLinearProblem, dual: DualResult, *, tol: float = 1e-9,
                    polish: bool = True) -> list[np.ndarray]:
    """Optimal weights ``[W_1, .., W_H]`` rebuilt from a dual solution (see :func:`recover`).

    Shapes are exactly ``(d_i, d_{i-1})``; the factors are balanced. A
    :class:`~duallinear.RecoveryWarning` is raised if they cannot be certified to ``tol``.
    """
    return recover(problem, dual, tol=tol, polish=polish).weights
