r"""Optimal layer weights rebuilt from a dual solution ([(9)][eq-recovery] on the math page).

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

from ._dr import DRSettings
from ._linalg import LeadingSVD, svd, svd_of_product, top_triplets
from ._reduced import numerical_rank, pruned_ranks
from ._threads import one_blas_thread_for
from ._validation import as_hidden, as_matrix, as_nonneg_scalar
from .certificates import certified_gap, check_dual, closed_form, relative_gap
from .primal import objective, solve_primal
from .problem import DeepLinearProblem, check_chain
from .results import ConvergenceWarning, DualResult, RecoveryWarning, summary

__all__ = ["recover", "recover_weights", "balanced_factors", "Recovery"]


@dataclass(frozen=True, eq=False, repr=False)
class Recovery:
    """Weights rebuilt from a dual solution and their certificate.

    Attributes
    ----------
    weights : list of ndarray
        ``[W_1, .., W_H]``, shapes ``(d_i, d_{i-1})``.
    value : float
        Objective [(1)][eq-primal] at ``weights``.
    gap : float
        Certified bound on ``P(weights) - P*`` for the data as given: ``value - dual.value``
        up to rounding in the reduction of X (see :func:`~duallinear.duality_gap`).
    relative_gap : float
        ``gap / max(|value + rounding_bound|, 1e-8 * 1/2 ||Y||^2)``.
    repaired : bool
        Whether the plain truncation missed ``tol`` and other weights were taken: a local
        polish, or for whitened X the closed form (the message says which).
    certified : bool
        ``relative_gap <= tol``.
    message : str
    rounding_bound : float
        How far the objective of the weights for the data as given can be from ``value``
        (rounding in the reduction of X); included in ``gap``.
    """

    weights: list[np.ndarray]
    value: float
    gap: float
    relative_gap: float
    repaired: bool
    certified: bool
    message: str
    rounding_bound: float = 0.0

    def __repr__(self) -> str:
        return summary(self, ("certified", "repaired"))


def balanced_factors(M: np.ndarray, dims: tuple[int, ...]) -> list[np.ndarray]:
    """Factor ``M`` (shape ``(dims[-1], dims[0])``) as ``W_H .. W_1`` with equal spectra.

    Every ``W_i`` carries ``m^(1/H)``, where ``m`` are the numerically non-zero singular values
    of ``M``; zero rows and columns pad to the widths. This attains
    ``sum_i ||W_i||_{S_H}^H = H ||M||_*`` ([section 2][sec-collapse] of the math page).

    Parameters
    ----------
    M : array_like, shape (dims[-1], dims[0])
    dims : sequence of int, ``(d0, d1, .., dH)`` with ``H = len(dims) - 1 >= 2``

    Raises
    ------
    ValueError
        If ``M`` has the wrong shape or its rank exceeds the bottleneck ``min(dims[1:-1])``.

    Examples
    --------
    >>> import numpy as np
    >>> from duallinear import balanced_factors
    >>> W = balanced_factors(np.diag([8.0, 1.0]), (2, 2, 2, 2))  # H = 3 layers
    >>> np.round(np.linalg.svd(W[1], compute_uv=False), 12)
    array([2., 1.])
    """
    M = as_matrix(M, "M", allow_empty=True)
    dims = as_hidden(dims, "dims")
    if len(dims) < 3:
        raise ValueError(
            f"dims must be (d0, d1, .., dH) with at least one hidden width, got {dims}")
    if M.shape != (dims[-1], dims[0]):
        raise ValueError(f"M must have shape (dims[-1], dims[0]) = {(dims[-1], dims[0])}, "
                         f"got {M.shape}")
    return _balanced(M, dims)


def _balanced(M: np.ndarray, dims: tuple[int, ...], rank: int | None = None,
              factors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              ) -> list[np.ndarray]:
    """Balanced factors of ``M``; ``factors`` is its SVD if already computed."""
    P, m, Qt = factors if factors is not None else svd(M)
    if rank is None:
        rank = numerical_rank(m, M.shape)
    return _from_factors(P, m, Qt, dims, rank)


def _from_factors(P: np.ndarray, m: np.ndarray, Qt: np.ndarray, dims: tuple[int, ...],
                  rank: int) -> list[np.ndarray]:
    """Balanced factors of ``P[:, :rank] diag(m[:rank]) Qt[:rank]``."""
    H = len(dims) - 1
    if rank > min(dims[1:-1]):
        raise ValueError(f"M has rank {rank}, more than the bottleneck width {min(dims[1:-1])}")
    root = m[:rank] ** (1.0 / H)
    return _pad_layers(dims, rank, P[:, :rank] * root, root[:, None] * Qt[:rank], root)


def _pad_layers(dims: tuple[int, ...], rank: int, last: np.ndarray, first: np.ndarray,
                middle: np.ndarray) -> list[np.ndarray]:
    """``W_H = [last, 0]``, ``W_i = diag(middle)`` padded, ``W_1 = [first; 0]``."""
    H = len(dims) - 1
    weights = []
    for i in range(H):
        W = np.zeros((dims[i + 1], dims[i]))
        if i == 0:
            W[:rank] = first
        elif i == H - 1:
            W[:, :rank] = last
        else:
            W[np.arange(rank), np.arange(rank)] = middle
        weights.append(W)
    return weights


#: The solver's defaults (``partial_svd=None``), built once: validation costs 0.3 ms a call.
_DEFAULTS = DRSettings()


def recover(problem: DeepLinearProblem, dual: DualResult, *, tol: float = 1e-9,
            polish: bool = True, partial_svd: bool | None = None,
            blas_limit: bool = True) -> Recovery:
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
    partial_svd : bool, optional
        Take the truncation from leading singular triplets instead of a full SVD; ``None``
        (default) does so from the same size as :func:`~duallinear.solve_dual`
        (``min(dH, rank X) >= 1500``).
    blas_limit : bool
        Run BLAS on one thread while ``min(dH, rank X) < 1000``, like :func:`solve_dual`
        (default); ``False`` keeps the caller's setting.

    Returns
    -------
    Recovery

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> rec = dl.recover(problem, dl.solve_dual(problem))
    >>> rec.certified, [W.shape for W in rec.weights]
    (True, [(2, 4), (3, 2)])
    """
    check_chain(problem)
    check_dual(problem, dual)
    tol = as_nonneg_scalar(tol, "tol")
    if not isinstance(polish, (bool, np.bool_)):
        raise TypeError(f"polish must be a bool, got {type(polish).__name__}")
    if not isinstance(blas_limit, (bool, np.bool_)):
        raise TypeError(f"blas_limit must be a bool, got {type(blas_limit).__name__}")
    partial = (_DEFAULTS if partial_svd is None else DRSettings(partial_svd=partial_svd)
               ).uses_partial(min(problem.A.shape))
    with one_blas_thread_for(problem.A.shape, active=bool(blas_limit)):
        weights, value, rel, repaired, message = _rebuild(problem, dual, tol, polish, partial)
        gap, margin = certified_gap(problem, weights, dual, value)
    rel = (float(relative_gap(value + margin, value + margin - gap, problem.zero_value))
           if np.isfinite(gap) else float("inf"))
    certified = bool(rel <= tol)
    if not certified:
        warnings.warn(
            f"recovered weights are certified only to relative gap {rel:.2e} > tol {tol:.1e} "
            f"(dual: {dual.message})", RecoveryWarning, stacklevel=2)
    if margin and rel > tol >= relative_gap(value, dual.float_value, problem.zero_value):
        message += (f"; rounding in the reduction of X (cond(X) = "
                    f"{problem.condition_number:.1e}) leaves {rel:.2e} for the data as given")
    return Recovery(weights=weights, value=value, gap=gap, relative_gap=rel,
                    repaired=repaired, certified=certified, message=message,
                    rounding_bound=margin)


def _rebuild(problem: DeepLinearProblem, dual: DualResult, tol: float, polish: bool,
             partial: bool) -> tuple[list[np.ndarray], float, float, bool, str]:
    """Weights from the truncation of ``A - Gamma`` (polished if their gap exceeds ``tol``),
    their objective value, relative gap, whether they were polished, and a message."""
    if problem.rank:
        # N = trunc_k(A - Gamma), factored: as the certificate had it, if kept.
        Nfac = dual._truncation or truncation(problem, dual.Gamma, partial)
        Mfac = factors_of_M(problem, *Nfac)
    else:
        Mfac = (np.zeros((problem.dH, 0)), np.zeros(0), np.zeros((0, problem.d0)))
    weights, value = _best_pruned(problem, Mfac)
    if problem.gamma == 0.0 and problem.rank:
        # No regulariser: any factorisation of M is optimal, and one built from N without
        # forming M avoids the eps * cond(X) error of an SVD of M (matters for exact fits).
        exact = _factors_of_N(problem, *Nfac)
        exact_value = _finite_objective(problem, exact)
        if exact_value < value:
            weights, value = exact, exact_value
    rel = relative_gap(value, dual.value, problem.zero_value)
    repaired = False
    message = f"truncation of A - Gamma: certified relative gap {rel:.2e}"
    if rel > tol and problem.is_whitened and problem.rank:
        # Singular values of A - Gamma tied across position k leave the truncation ambiguous
        # (fuzzer: A with values 2, 1, 1 and k = 1 gives A - Gamma* = three equal values);
        # for whitened X the optimal N is known (docs/math.md, equation (6)).
        U, m, Vt = svd(closed_form(problem)[1])
        exact, exact_value = _best_pruned(
            problem, factors_of_M(problem, U[:, :problem.k], m[:problem.k], Vt[:problem.k]))
        if exact_value < value:
            weights, value = exact, exact_value
            rel, repaired = relative_gap(value, dual.value, problem.zero_value), True
            message += f"; the closed form for whitened X instead: {rel:.2e}"
    if rel > tol and polish:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = solve_primal(problem, restarts=1, init=weights, tol=1e-12, max_iter=2000)
        if res.value < value:
            weights, value = res.weights, res.value
            rel_new = relative_gap(value, dual.value, problem.zero_value)
            message += f"; polished by L-BFGS from the recovered point: {rel_new:.2e}"
            rel, repaired = rel_new, True
    return weights, value, rel, repaired, message


def _factors_of_N(problem: DeepLinearProblem, P: np.ndarray, m: np.ndarray,
                  Qt: np.ndarray) -> list[np.ndarray]:
    """``W_H .. W_1 = N diag(s)^-1 U^T`` for ``N = P diag(m) Q^T``, with ``W_1 U diag(s)``
    formed without cancellation: ``W_H = [P m^(1/2), 0]``, identities in between,
    ``W_1 = [m^(1/2) Q^T diag(s)^-1 U^T; 0]``.
    """
    rank = min(numerical_rank(m, (P.shape[0], Qt.shape[1])), problem.k)
    root = np.sqrt(m[:rank])
    first = (root[:, None] * Qt[:rank] / problem.s) @ problem.U.T
    return _pad_layers(problem.dims, rank, P[:, :rank] * root, first, np.ones(rank))


def truncation(problem: DeepLinearProblem, Gamma: np.ndarray, partial: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k singular triplets of ``A - Gamma`` (from leading triplets if ``partial``)."""
    return top_triplets(problem.A - Gamma, problem.k, LeadingSVD() if partial else None)


def factors_of_M(problem: DeepLinearProblem, Uk: np.ndarray, sk: np.ndarray,
                  Vtk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of ``M = Uk diag(sk) Vtk diag(s)^-1 U^T`` (rank <= k) from its factors.

    Never forms ``M``, whose small singular values would carry ``eps * cond(X)`` noise.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        right = problem.U @ (sk[:, None] * Vtk / problem.s).T
    if not np.all(np.isfinite(right)):
        raise ValueError(
            "X and Y: the optimal end-to-end map W_H..W_1 has entries beyond the range of "
            f"float64 (||Y||_F = {problem.y_norm:.3g} against a smallest singular value of X "
            f"of {problem.s[-1]:.3g}); rescale X up or Y down (the weights scale accordingly)")
    return svd_of_product(Uk, right)


def _best_pruned(problem: DeepLinearProblem, factors: tuple[np.ndarray, np.ndarray, np.ndarray]
                 ) -> tuple[list[np.ndarray], float]:
    """Balanced factors of ``M = P diag(m) Qt`` (``factors``) with negligible singular values
    dropped when that does not increase the objective.

    A dual point accurate to ``eps`` leaves singular values of order ``eps`` in ``M`` where the
    optimum has exact zeros; the ``1/H``-th root would turn them into visible weights
    (``(1e-12)^(1/4) = 1e-3``). Each candidate rank is evaluated and the best kept; the zero
    network is always a candidate.
    """
    m = factors[1]
    ranks = {numerical_rank(m, (problem.dH, problem.d0)), 0} | pruned_ranks(m)
    best: tuple[list[np.ndarray], float] | None = None
    for rank in sorted(ranks, reverse=True):
        weights = _from_factors(*factors, problem.dims, min(rank, problem.k))
        value = _finite_objective(problem, weights)
        if best is None or value <= best[1]:
            best = (weights, value)
    assert best is not None
    return best


def _finite_objective(problem: DeepLinearProblem, weights: list[np.ndarray]) -> float:
    """The objective, or ``inf`` for a candidate whose value overflows float64 (the zero
    network, always a candidate, never does)."""
    try:
        return objective(problem, weights)
    except ValueError:
        return float("inf")


def recover_weights(problem: DeepLinearProblem, dual: DualResult, *, tol: float = 1e-9,
                    polish: bool = True, partial_svd: bool | None = None,
                    blas_limit: bool = True) -> list[np.ndarray]:
    """Optimal weights ``[W_1, .., W_H]`` rebuilt from a dual solution (see :func:`recover`).

    Shapes are exactly ``(d_i, d_{i-1})``; the factors are balanced. A
    :class:`~duallinear.RecoveryWarning` is raised if they cannot be certified to ``tol``.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> [W.shape for W in dl.recover_weights(problem, dl.solve_dual(problem))]
    [(2, 4), (3, 2)]
    """
    return recover(problem, dual, tol=tol, polish=polish, partial_svd=partial_svd,
                   blas_limit=blas_limit).weights
