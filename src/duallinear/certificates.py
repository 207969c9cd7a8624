r"""Certificates: dual values, duality gaps, and the whitened closed form.

The public functions take a :class:`~duallinear.DeepLinearProblem`; the arithmetic on
reduced data they share with the solvers lives in :mod:`duallinear._reduced` (the dual value
is evaluated there without cancellation, as a sum of terms that are each small when the
optimum is small).
"""

from __future__ import annotations

import numpy as np

from . import _reduced
from ._linalg import svd, svdvals
from ._reduced import (
    GAP_FLOOR,
    PRUNE_LEVELS,
    Reduced,
    make_feasible,
    op_norm,
    relative_gap,
    tail_sq,
)
from ._validation import as_matrix
from .primal import objective
from .problem import DeepLinearProblem, check_chain
from .results import DualResult

__all__ = ["dual_value", "duality_gap", "relative_gap", "closed_form", "ClosedForm",
           "check_dual", "certified_gap", "GAP_FLOOR", "PRUNE_LEVELS"]


def check_dual(problem: DeepLinearProblem, dual: object, name: str = "dual") -> DualResult:
    """Raise unless ``dual`` is a :class:`~duallinear.DualResult` of ``problem``'s shapes."""
    if not isinstance(dual, DualResult):
        raise TypeError(f"{name} must be a DualResult from solve_dual, got {type(dual).__name__}")
    if dual.Gamma.shape != problem.A.shape or dual.Lambda.shape != (problem.dH, problem.d0):
        raise ValueError(
            f"{name} was computed for another problem: its Lambda has shape "
            f"{dual.Lambda.shape} and Gamma {dual.Gamma.shape}, expected "
            f"{(problem.dH, problem.d0)} and {problem.A.shape}")
    if dual.fingerprint and dual.fingerprint != problem.fingerprint:
        raise ValueError(
            f"{name} was computed for another problem: same shapes, but other data or another "
            f"gamma (fingerprint {dual.fingerprint[:12]}.. against the problem's "
            f"{problem.fingerprint[:12]}..); solve_dual(problem) first, or use "
            "dual_value(problem, dual.Lambda) to evaluate its point explicitly")
    return dual


def dual_value(problem: DeepLinearProblem, Lambda: np.ndarray) -> float:
    """Dual objective [(4)][eq-dual] at ``Lambda`` after scaling it into the feasible set.

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

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> bool(dl.dual_value(problem, np.zeros((3, 4))) <= problem.zero_value)  # weak duality
    True
    """
    check_chain(problem)
    Lambda = as_matrix(Lambda, "Lambda", allow_empty=True)
    if Lambda.shape != (problem.dH, problem.d0):
        raise ValueError(
            f"Lambda must have shape (dH, d0) = {(problem.dH, problem.d0)}, got {Lambda.shape}"
        )
    Gamma = make_feasible((Lambda @ problem.U) / problem.s, problem.s, problem.rho)
    tail = tail_sq(svdvals(problem.A - Gamma), problem.k) if problem.A.size else 0.0
    return _reduced.dual_value(problem.A, Gamma, problem.residual_sq, tail)


def scale_of(red: Reduced) -> float:
    """Values in user units are ``a^2`` times those in normalised units."""
    return red.a**2


def certified_gap(problem: DeepLinearProblem, weights: list[np.ndarray], dual: DualResult,
                  value: float | None = None) -> tuple[float, float]:
    """``(gap, margin)`` for validated ``weights`` of objective ``value`` (computed if None).

    ``gap`` bounds ``P(weights) - P*`` for the data as given; ``margin`` bounds how far the
    objective of the data as given can be from ``value`` (rounding in the reduction of X).
    """
    if value is None:
        value = objective(problem, weights)
    if not np.isfinite(dual.float_value) or not problem.rank:
        return value - dual.value, 0.0
    red = Reduced.of(problem)
    left, right = _split_at_bottleneck(weights)  # W_H .. W_1 = left @ right
    right_U = right @ problem.U  # (c, r); the product on the basis is left @ right_U
    if problem.U.shape[0] == problem.U.shape[1]:
        # U is orthogonal up to rounding: the part off the basis is product (I - U U^T), of
        # norm at most ||I - U U^T|| <= 8 d0 eps (a LAPACK orthogonal factor) times its own.
        on_basis_norm = _reduced.product_frobenius(left, right_U)
        off_norm = 8.0 * problem.U.shape[0] * np.finfo(np.float64).eps * on_basis_norm
    else:
        off = left @ (right - right_U @ problem.U.T)  # ~0 unless X has fewer directions
        off_norm = float(np.sqrt(np.vdot(off, off)))  # >= its operator norm
    outside = off_norm * red.b / red.a
    # ||left @ right_U||_op from the c x r matrix T right_U (left = Q T), when c is small.
    c = right.shape[0]
    norm = (op_norm(np.linalg.qr(left, mode="r") @ right_U)
            if 2 * c <= min(left.shape[0], right_U.shape[1]) else None)
    M = (left, right_U * (red.b / red.a))  # the map on the basis, factored
    upper = dual.upper_bound / scale_of(red)
    rounding = dual._rounding_detail
    if rounding is None:
        # Bounds from norms alone are taken when they stay below 1e-13 of the gap's
        # denominator.
        rounding = red.rounding(dual.Gamma / red.a, upper,
                                1e-13 * max(abs(upper), GAP_FLOOR * red.zero_value))
    own, pair = red.weights_rounding(rounding, M, outside,
                                     None if norm is None else norm * red.b / red.a)
    scale = red.a**2
    return value - dual.float_value + pair * scale, own * scale


def _split_at_bottleneck(weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(W_H .. W_{i+1}, W_i .. W_1)`` split after the narrowest hidden layer i."""
    i = int(np.argmin([W.shape[0] for W in weights[:-1]]))
    right = weights[0]
    for W in weights[1:i + 1]:
        right = W @ right
    left = weights[i + 1]
    for W in weights[i + 2:]:
        left = W @ left
    return left, right


def duality_gap(problem: DeepLinearProblem, weights: list[np.ndarray],
                dual: DualResult) -> float:
    """Certified suboptimality bound ``P(weights) - dual.value``.

    By weak duality this is ``>= P(weights) - P* >= 0``: the weights are within this much of
    the global optimum of the data as given. It includes what rounding in the reduction of X
    can add (``docs/math.md``, rounding), so it may exceed ``objective - dual.value`` slightly.

    Parameters
    ----------
    problem : DeepLinearProblem
    weights : list of ndarray
        ``[W_1, .., W_H]``, shapes ``(d_i, d_{i-1})``.
    dual : DualResult
        From :func:`duallinear.solve_dual` on the same problem.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> dual = dl.solve_dual(problem)
    >>> gap = dl.duality_gap(problem, dl.recover_weights(problem, dual), dual)
    >>> bool(gap <= 1e-9 * problem.zero_value)
    True
    """
    check_chain(problem)
    check_dual(problem, dual)
    weights = problem.check_weights(weights)
    return certified_gap(problem, weights, dual)[0]


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
    r"""Exact optimum for whitened X (the closed form [(6)][eq-closed-form]).

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

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> Y = np.diag([3.0, 2.0, 0.5])
    >>> problem = dl.DeepLinearProblem(np.eye(3), Y, hidden=(2,), gamma=0.5)  # t = rho = 1
    >>> float(dl.closed_form(problem).value)  # (3 - 1/2) + (2 - 1/2) + 0.5^2 / 2
    4.125
    """
    check_chain(problem)
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
