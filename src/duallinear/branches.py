r"""Several parallel branches and plain weight decay: reductions, closed forms, bounds, solve.

A problem with ``B`` branches of hidden widths ``hidden`` (bottleneck ``k`` each) computes
``sum_b W_{H,b} .. W_{1,b} X``. Over all factorisations of the end-to-end matrix ``M`` the
penalty is at least ``rho sum_j sigma_j(M)^p`` with ``rho = gamma H`` and

* ``p = 1`` (nuclear norm) for the Schatten-H penalty, at every depth;
* ``p = 2/H`` for weight decay ``gamma sum ||W||_F^2`` (the same at ``H = 2``);

and ``rank M <= K = B k``; splitting the SVD of ``M`` across the branches and factoring each
part in balance attains it (``docs/math.md``, several branches). So with the reduced data
``A``, ``s`` of :class:`~duallinear.DeepLinearProblem` and ``M' = M U`` (shape ``(dH, r)``)

    P*(B) = min_{rank M' <= K} 1/2 residual + 1/2 ||M' diag(s) - A||^2 + rho sum_j sigma_j(M')^p.

:func:`solve` answers every architecture with a certified interval ``[lower, upper]``:

* Schatten penalty (or ``H = 2``, or ``gamma = 0``): one chain of bottleneck ``K`` and its
  convex dual (:func:`~duallinear.solve_dual`), weights split across the branches;
* weight decay at ``H >= 3`` on whitened X: the exact optimum (:func:`whitened_optimum`);
* weight decay at ``H >= 3`` on general X: the lower bound of
  :func:`weight_decay_lower_bound`, and local search from the best candidates for the upper.

:func:`output_coupled_dual` and :func:`gap_curve` give the dual obtained by dualising only the
coupling of the branch outputs, and the duality gap as a function of ``B``. :func:`budget_form`
solves the network under a weight budget (the shape of the paper's Theorem 1) exactly for
whitened X, with the dual of the budget alone and the bound :func:`budget_gap_bound` on its gap.

Lower bounds hold for X as given, not only for its float64 reduction: the routes that do not go
through :func:`~duallinear.solve_dual` subtract a margin for ``problem.rounding``
(``docs/math.md``, rounding on the weight-decay routes).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ._linalg import svd, svdvals
from ._reduced import GAP_FLOOR, numerical_rank
from ._validation import as_nonneg_scalar, as_positive_int
from .certificates import closed_form, relative_gap
from .dual import solve_dual
from .primal import objective, solve_primal
from .problem import DeepLinearProblem, check_problem
from .recovery import balanced_factors, recover
from .results import ConvergenceWarning, RecoveryWarning

__all__ = [
    "chain_problem",
    "whitened_optimum",
    "singular_value_bound",
    "weight_decay_lower_bound",
    "output_coupled_dual",
    "gap_curve",
    "solve",
    "Solution",
    "LowerBound",
    "CoupledDual",
    "GapCurve",
    "budget_form",
    "BudgetSolution",
    "budget_gap_bound",
]

#: Iterations of the golden-section search for the multiplier of the budget form: the bracket
#: shrinks by 0.618 per step, to a 1e-17 fraction of its width after 80 (the float64 limit).
BUDGET_GOLDEN_STEPS = 80
#: Points of the grid on which the branch of KKT points of the budget form with one value on
#: its smaller root is scanned for sign changes (then bisected). On 2000 random instances
#: (K <= 6, H = 3..6, measured with a one-off script) 400 points gave the value of a 16x finer
#: grid on every one, 3 points missed it on 24; about half of those optima had one value on
#: its smaller root.
BUDGET_KKT_GRID = 400

#: Grids of the lower bound for weight decay on general X (``docs/math.md``): the nuclear-norm
#: weights ``rho'`` relative to the chord slope ``rho T^(p-1)``, the shares ``theta`` of the loss
#: given to the nuclear-norm part, and the clipping levels ``c`` of ``diag(s)``. Any grid gives
#: a valid bound; these were the smallest that stayed within 1e-3 (relative) of a 4x finer one
#: on Gaussian X at d = 20 (H = 3, 4; gamma = 0.1..2).
RHO_GRID = tuple(float(v) for v in np.geomspace(0.5, 4.0, 7))
THETA_GRID = tuple(float(v) for v in np.linspace(0.0, 1.0, 21))
CLIP_GRID = 15


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Solution:
    """Outcome of :func:`solve`: a certified interval on the optimum and weights at its top.

    Attributes
    ----------
    lower : float
        A certified lower bound on the optimum ``P*`` of the problem as stated.
    upper : float
        Objective of ``weights`` (an upper bound on ``P*``).
    weights : list
        ``[W_1, .., W_H]`` for one chain, else a list of ``B`` such lists.
    exact : bool
        ``relative_gap <= tol``: the interval is closed to the tolerance.
    relative_gap : float
        ``(upper + upper_rounding - lower) / max(|upper + upper_rounding|,
        1e-8 * 1/2 ||Y||^2)``: for the data as given.
    lower_route, upper_route : str
        How each bound was obtained.
    message : str
        Both routes and the gap, in one line.
    K : int
        ``branches * k``, the rank bound on the end-to-end matrix.
    time : float
        Wall-clock seconds.
    rounding : float
        How much ``lower`` was lowered so that it holds for X as given, not only for the
        float64 reduction of X (``docs/math.md``, rounding on the weight-decay routes); 0
        where ``lower`` comes from :func:`~duallinear.solve_dual`, which applies its own.
    upper_rounding : float
        How far the objective of ``weights`` for X as given can lie above ``upper`` (which is
        evaluated on the float64 reduction of X): ``||M||_2 ||M X_hat - Y||_F eps_x +
        1/2 (||M||_2 eps_x)^2`` at the end-to-end map ``M``, plus the rounding of the
        residual term. ``relative_gap`` and ``exact`` use ``upper + upper_rounding``.
    """

    lower: float
    upper: float
    weights: list
    exact: bool
    relative_gap: float
    lower_route: str
    upper_route: str
    message: str
    K: int
    time: float
    rounding: float = 0.0
    upper_rounding: float = 0.0


@dataclass(frozen=True)
class LowerBound:
    """A certified lower bound on the optimum of a weight-decay problem
    (:func:`weight_decay_lower_bound`).

    Attributes
    ----------
    value : float
        The bound: the largest of the three below.
    route : str
        Which family gave ``value`` and at which parameters.
    T : float
        The bound on the largest singular value of every minimiser the bound relies on
        (:func:`singular_value_bound`).
    chord, comparison, combined : float
        The chord bound (``theta = 1``), the comparison with whitened data (``theta = 0``)
        and the best combination of the two (``docs/math.md``), for the reduced data; NaN
        where not computed (whitened X, where ``value`` is the exact optimum).
    rounding : float
        ``value`` is the largest of them minus ``rounding``, the most the optimum for X as
        given can lie below the one for the float64 reduction of X.
    """

    value: float
    route: str
    T: float
    chord: float
    comparison: float
    combined: float
    rounding: float = 0.0


@dataclass(frozen=True)
class CoupledDual:
    """The dual obtained by dualising only ``Z = sum_b f_b(X)`` (:func:`output_coupled_dual`).

    Attributes
    ----------
    lower, upper : float
        Bounds on its optimal value ``D_oc``: for the Schatten penalty ``D_oc`` equals the
        convex problem ``P_cvx = min_M 1/2 ||M X - Y||^2 + rho ||M||_*`` (no rank bound), and
        ``upper`` is the objective of a point of that problem; for weight decay at ``H >= 3``
        it is ``1/2 ||Y - A V^T||^2`` exactly (the dual is vacuous).
    rank : int or None
        The rank of a truncated point of the convex problem whose objective is certified
        against ``lower`` to ``tol`` (``certified``), the smallest found by bisection:
        ``gap(B)`` is zero (to ``tol``) once ``B k >= rank``. ``None`` when the dual is vacuous.
    rank_value : float
        The objective of that rank-``rank`` point: an upper bound on ``P*(B)`` for every
        ``B k >= rank``.
    certified : bool
        Whether the point met ``tol`` (else ``rank`` is its full numerical rank).
    vacuous : bool
        True for weight decay at ``H >= 3``.
    message : str
    """

    lower: float
    upper: float
    rank: int | None
    rank_value: float
    certified: bool
    vacuous: bool
    message: str


@dataclass(frozen=True, eq=False)
class GapCurve:
    """``gap(B) = P*(B) - D_oc`` for ``B`` in ``branches`` (:func:`gap_curve`).

    Arrays are of shape ``(len(branches),)``.

    Attributes
    ----------
    branches : ndarray of int
    lower, upper : ndarray
        Certified bounds on ``P*(B)``, made monotone (``P*(B)`` is non-increasing in ``B``: a
        bound at one ``B`` holds at the others on the right side).
    gap_lower, gap_upper : ndarray
        Bounds on ``gap(B)``: ``max(lower - dual.upper, 0)`` and ``upper - dual.lower``.
    relative_gap : ndarray
        ``gap_upper / upper``: the relative duality gap, bounded from above.
    zero_from : int
        ``ceil(rank M_cvx / k)``: from this ``B`` on the gap is zero (to ``tol``).
    dual : CoupledDual
    exact : ndarray of bool
        Whether ``P*(B)`` is certified to ``tol`` (relative).
    time : float
    """

    branches: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gap_lower: np.ndarray
    gap_upper: np.ndarray
    relative_gap: np.ndarray
    zero_from: int
    dual: CoupledDual
    exact: np.ndarray
    time: float = field(default=0.0)


# -------------------------------------------------------------------------- reductions
def chain_problem(problem: DeepLinearProblem) -> DeepLinearProblem:
    """The single chain with the same optimum: widths ``B d_i``, the same penalty.

    ``B`` branches of widths ``(d_1, .., d_{H-1})`` and one chain of widths
    ``(B d_1, .., B d_{H-1})`` both reduce to the rank bound ``K = B k`` on the end-to-end
    matrix (``docs/math.md``). The data (and the SVD of X) are shared.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import chain_problem
    >>> p = dl.DeepLinearProblem(np.eye(4), np.eye(4), (1, 2), 0.1, branches=3)
    >>> chain_problem(p).hidden, chain_problem(p).k
    ((3, 6), 3)
    """
    check_problem(problem)
    return dataclasses.replace(problem, hidden=tuple(problem.branches * d for d in problem.hidden),
                               branches=1)


def _schatten_chain(problem: DeepLinearProblem, gamma: float | None = None,
                    k: int | None = None) -> DeepLinearProblem:
    """One Schatten chain of bottleneck ``k`` (default ``K``) on the same data."""
    k = problem.K if k is None else k
    return dataclasses.replace(problem, hidden=(k,) * (problem.depth - 1), branches=1,
                               penalty="schatten",
                               gamma=problem.gamma if gamma is None else gamma)


def _power(problem: DeepLinearProblem) -> float:
    """``p``: the penalty on ``M`` is ``rho sum sigma_j(M)^p``."""
    return 1.0 if problem.is_schatten else 2.0 / problem.depth


def _reduced_value(problem: DeepLinearProblem, Mr: np.ndarray) -> float:
    """Objective of the balanced network with end-to-end ``M = Mr U^T`` (``Mr``: (dH, r))."""
    R = Mr * problem.s - problem.A
    m = svdvals(Mr) if Mr.size else np.zeros(0)
    return (0.5 * problem.residual_sq + 0.5 * float(np.sum(R * R))
            + problem.rho * float(np.sum(m ** _power(problem))))


def _branch_weights(problem: DeepLinearProblem, Mr: np.ndarray) -> list:
    """Balanced weights of every branch for the end-to-end matrix ``Mr U^T`` (rank <= K):
    branch ``b`` carries the singular triplets ``b k .. (b + 1) k - 1``."""
    P, m, Qt = svd(Mr)
    Qt = Qt @ problem.U.T
    # Values at rounding level would turn into weights of size m^(1/H) (1e-16 -> 5e-6 at
    # H = 3), whose weight decay m^(2/H) shows in the objective (measured: 1e-11 relative).
    k, rank = problem.k, min(problem.K, numerical_rank(m, Mr.shape))
    out = []
    for b in range(problem.branches):
        idx = slice(b * k, min((b + 1) * k, rank))
        Mb = (P[:, idx] * m[idx]) @ Qt[idx]
        out.append(balanced_factors(Mb, problem.dims))
    return out if problem.branches > 1 else out[0]


def _split(problem: DeepLinearProblem, chain_weights: list[np.ndarray]) -> list:
    """Weights of a chain of bottleneck ``K`` -> the same end-to-end matrix over the branches."""
    M = chain_weights[0]
    for W in chain_weights[1:]:
        M = W @ M
    return _branch_weights(problem, M @ problem.U)


# ------------------------------------------------------------------------ scalar problem
def _larger_root(a: np.ndarray, lam: np.ndarray, p: float) -> np.ndarray:
    """The larger root of ``x + lam p x^(p-1) = a`` (``0 < p < 1``), NaN where there is none.

    ``q(x) = x + lam p x^(p-1)`` is convex on ``x > 0`` with its minimum at
    ``x0 = (lam p (1-p))^(1/(2-p))``; Newton from ``x = a`` (where ``q > a``) decreases
    monotonically to the root right of ``x0``.
    """
    a, lam = np.broadcast_arrays(np.asarray(a, float), np.asarray(lam, float))
    x0 = (lam * p * (1.0 - p)) ** (1.0 / (2.0 - p))
    with np.errstate(divide="ignore", invalid="ignore"):
        q0 = x0 + lam * p * x0 ** (p - 1.0)
        ok = (a > q0) & (lam > 0)
        x = np.where(ok, a, 1.0)
        for _ in range(100):
            step = (x + lam * p * x ** (p - 1.0) - a) / (1.0 - lam * p * (1.0 - p)
                                                         * x ** (p - 2.0))
            x_new = np.where(ok, np.maximum(x - step, x0), x)
            if np.all(np.abs(x_new - x) <= 4 * np.finfo(float).eps * np.abs(x)):
                x = x_new
                break
            x = x_new
    return np.where(lam > 0, np.where(ok, x, np.nan), a)


def _threshold(a: np.ndarray, lam: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    """``argmin_{x >= 0} 1/2 (x - a)^2 + lam x^p`` and its value, for each ``a >= 0``.

    ``p = 1``: soft thresholding. ``0 < p < 1``: zero or the larger stationary point,
    whichever is lower (the smaller one is a local maximum).
    """
    a = np.asarray(a, float)
    if p == 1.0:
        x = np.maximum(a - lam, 0.0)
    else:
        root = _larger_root(a, lam, p)
        x = np.where(np.isnan(root), 0.0, root)
        x = np.where(0.5 * (x - a) ** 2 + lam * x**p < 0.5 * a * a, x, 0.0)
    return x, 0.5 * (x - a) ** 2 + lam * x**p


# ------------------------------------------------------------------------ closed forms
def whitened_optimum(problem: DeepLinearProblem) -> tuple[float, np.ndarray]:
    """Exact optimum for whitened X, any number of branches, either penalty.

    With every non-zero singular value of X equal to ``c`` and ``sigma_j`` those of ``A``,
    the optimum keeps the ``K = B k`` largest and shrinks each by the scalar problem
    ``min_{x >= 0} 1/2 (x - sigma_j)^2 + rho c^(-p) x^p`` (``p = 1``: soft thresholding by
    ``rho / c``, the Schatten case; ``p = 2/H``: weight decay), ``docs/math.md``.

    Returns
    -------
    value : float
        ``P*``.
    N : ndarray, shape (dH, r)
        The optimal ``M U diag(s)``.

    Raises
    ------
    ValueError
        If X is not whitened.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import whitened_optimum
    >>> p = dl.DeepLinearProblem(np.eye(3), np.diag([3.0, 2.0, 0.5]), (1,), 0.5, branches=2)
    >>> float(whitened_optimum(p)[0])  # (3 - 1/2) + (2 - 1/2) + 0.5^2 / 2, as one chain, k = 2
    4.125
    """
    check_problem(problem)
    if not problem.is_whitened:
        raise ValueError(
            "whitened_optimum needs whitened X (X X^T = c I on the range of X); the singular "
            f"values of X range from {problem.s[-1]:.6g} to {problem.s[0]:.6g}")
    if problem.rank == 0:
        return 0.5 * problem.residual_sq, np.zeros_like(problem.A)
    c, p, K = float(problem.s[0]), _power(problem), problem.K
    U, sigma, Vt = svd(problem.A)
    x, h = _threshold(sigma[:K], problem.rho * c ** (-p), p)
    value = (0.5 * problem.residual_sq + float(np.sum(h))
             + 0.5 * float(np.dot(sigma[K:], sigma[K:])))
    return value, (U[:, :x.size] * x) @ Vt[:x.size]


# ------------------------------------------------------------- the data as given (rounding)
def _distance_to_reduced(problem: DeepLinearProblem, whitened: bool) -> float:
    """``eps_x``: a bound on ``||X - X_hat||_F`` for the matrix ``X_hat`` the bound was
    computed for: ``U diag(s) V^T`` (``problem.rounding``), or ``s_1 U V^T`` for the closed
    forms of whitened X (``s`` is equal only to ``WHITENED_RTOL``)."""
    eps = problem.rounding
    if whitened and problem.rank:
        eps += float(np.linalg.norm(problem.s - problem.s[0]))
    return eps


def _minimiser_norm_bound(problem: DeepLinearProblem, upper: float) -> float:
    """``T_X >= ||M*||_2`` for every minimiser ``M*`` of the problem for X *as given*, whose
    optimum is at most ``upper``; ``inf`` when nothing is known.

    The penalty: ``rho sigma_1(M*)^p <= P* <= upper``. Stationarity (X of full rank, no
    direction dropped): scaling the top triplet of ``M*`` gives
    ``m_1 ||X^T v_1||^2 <= sigma_1(Y) ||X^T v_1|| - rho p m_1^(p-1)`` with ``v_1`` in the range
    of X, so ``||X^T v_1||`` lies in ``[s_r - eps_x, s_1 + eps_x]`` (Weyl), and
    ``m_1 <= max_z (sigma_1(Y) z - kappa) / z^2`` with ``kappa = rho p T^(p-1)`` for any valid
    ``T``, as in :func:`singular_value_bound`.
    """
    p, rho, eps = _power(problem), problem.rho, problem.rounding
    T = (upper / rho) ** (1.0 / p) if rho > 0 else math.inf
    z_lo = float(problem.s[-1]) - eps if problem.rank else 0.0
    if problem.dropped_singular_values.size or z_lo <= 0.0:
        return T
    z_hi = float(problem.s[0]) + eps
    # sigma_1(Y) <= sigma_1(A) + ||Y - A V^T||_F, with a margin for the float64 values.
    y1 = (float(svdvals(problem.A)[0]) + problem.residual) * (1.0 + 1e-12)
    T = min(T, y1 / z_lo)
    for _ in range(50):
        kappa = rho * p * T ** (p - 1.0) if 0.0 < T < math.inf else 0.0
        z = min(max(2.0 * kappa / y1, z_lo), z_hi) if y1 > 0 else z_lo
        T_new = max(min(T, (y1 * z - kappa) / z**2), 0.0)
        if T_new >= T * (1 - 1e-12):
            break
        T = T_new
    return T


def _rounding_margin(problem: DeepLinearProblem, upper: float, whitened: bool = False,
                     norm_bound: float | None = None) -> float:
    """``delta`` with ``P*(X) >= P*(X_hat) - delta``: how far the optimum for X as given can
    lie below the one of the reduced data (``docs/math.md``, rounding on the weight-decay
    routes).

    At the minimiser ``M*`` for X, with ``R = M* X - Y`` (``||R|| <= sqrt(2 upper)``) and
    ``Delta = X - X_hat``: ``P_X_hat(M*) = P_X(M*) - <R, M* Delta> + 1/2 ||M* Delta||^2``, so
    ``P*(X_hat) <= P*(X) + T sqrt(2 upper) eps_x + 1/2 (T eps_x)^2`` with ``T >= ||M*||_2``
    (``norm_bound`` when the caller has one, else :func:`_minimiser_norm_bound`).
    """
    eps = _distance_to_reduced(problem, whitened)
    if eps == 0.0:
        return problem.residual_error
    upper = min(upper, problem.zero_value) * (1.0 + 1e-12)
    T = _minimiser_norm_bound(problem, upper) if norm_bound is None else norm_bound
    if T == 0.0:
        return problem.residual_error
    return T * math.sqrt(2.0 * upper) * eps + 0.5 * (T * eps) ** 2 + problem.residual_error


def _point_margin(problem: DeepLinearProblem, Mr: np.ndarray, whitened: bool = False,
                  norm: float | None = None) -> float:
    """``P_X(M) - P_X_hat(M) <= ||M||_2 ||M X_hat - Y||_F eps_x + 1/2 (||M||_2 eps_x)^2`` at a
    known map ``M`` with ``M U = Mr`` (``Mr``: (dH, r)): what an upper bound computed on the
    reduced data needs to hold for X as given. ``norm``: ``||M||_2`` when ``M`` may act off
    the range of ``U`` (default: ``M = Mr U^T``, whose norm is ``Mr``'s).

    The residual is formed at ``U diag(s) V^T``; with ``whitened`` (``X_hat = s_1 U V^T``)
    the one at ``X_hat`` is within ``||M|| ||s - s_1||_2 <= ||M|| eps_x`` of it, which adds
    ``(||M||_2 eps_x)^2``."""
    eps = _distance_to_reduced(problem, whitened)
    if eps == 0.0 or not Mr.size:
        return problem.residual_error
    m = float(svdvals(Mr)[0]) if norm is None else norm
    R = Mr * problem.s - problem.A
    residual = math.sqrt(problem.residual_sq + float(np.sum(R * R)))
    second = 1.5 if whitened else 0.5
    return m * residual * eps + second * (m * eps) ** 2 + problem.residual_error


def _lower_for_data(problem: DeepLinearProblem, lower: float, upper: float,
                    whitened: bool = False) -> tuple[float, float]:
    """``(lower - delta, delta)``, floored at the trivial bound 0."""
    delta = _rounding_margin(problem, upper, whitened)
    return max(lower - delta, 0.0), delta


# -------------------------------------------------------------------------- the bounds
def singular_value_bound(problem: DeepLinearProblem, upper: float | None = None) -> float:
    """A bound ``T >= sigma_1(M*)`` valid for every minimiser ``M*`` of the problem.

    Two arguments (``docs/math.md``): scaling the top singular value of a minimiser cannot
    lower the objective, which gives ``sigma_1(M*) <= max_z (sigma_1(A) z - kappa) / z^2``
    over ``z`` in ``[s_min, s_max]`` with ``kappa = rho p T^(p-1)`` for any valid ``T``
    (iterated from ``T = sigma_1(A) / s_min``); and if ``upper`` (the objective of any
    weights) is given, ``rho sigma_1(M*)^p <= upper - (the rank-K least-squares value)``.

    Returns ``0.0`` when the zero network is the only possible minimiser.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import singular_value_bound
    >>> p = dl.DeepLinearProblem(np.eye(2), np.diag([2.0, 1.0]), (2, 2), 0.0)
    >>> singular_value_bound(p)  # gamma = 0: the least-squares fit, sigma_1(Y) / 1
    2.0
    """
    check_problem(problem)
    if upper is not None:
        upper = as_nonneg_scalar(upper, "upper")
    if problem.rank == 0 or not np.any(problem.A):
        return 0.0
    s1 = float(svdvals(problem.A)[0])
    s_min, s_max = float(problem.s[-1]), float(problem.s[0])
    p, rho = _power(problem), problem.rho
    T = s1 / s_min
    if upper is not None and rho > 0:
        sigma = svdvals(problem.A)
        fit = 0.5 * problem.residual_sq + 0.5 * float(np.dot(sigma[problem.K:],
                                                              sigma[problem.K:]))
        T = min(T, (max(upper - fit, 0.0) / rho) ** (1.0 / p))
    for _ in range(100):
        if T <= 0.0:
            return 0.0
        kappa = rho * p * T ** (p - 1.0)
        z = min(max(2.0 * kappa / s1, s_min), s_max)
        T_new = min(T, (s1 * z - kappa) / z**2)
        if T_new >= T * (1 - 1e-12):
            break
        T = T_new
    return max(T_new, 0.0)


def _dual_points(problem: DeepLinearProblem, rhos: Iterable[float], tol: float
                 ) -> list[tuple[float, float, np.ndarray]]:
    """``(rho', D, Mr)`` for each ``rho'``: a certified lower bound ``D`` on
    ``min_{rank <= K} loss + rho' ||M||_*`` (dual of the Schatten chain) and the point ``Mr``
    its truncation gives."""
    out = []
    for rho in rhos:
        chain = _schatten_chain(problem, gamma=rho / problem.depth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dual = solve_dual(chain, tol=tol)
        U, sv, Vt = svd(problem.A - dual.Gamma)
        K = min(problem.K, sv.size)
        out.append((rho, dual.value, ((U[:, :K] * sv[:K]) @ Vt[:K]) / problem.s))
    return out


def _second_terms(a: np.ndarray, tail: float, const: float, theta: np.ndarray,
                  beta: np.ndarray, lam: float, p: float, c: float, T: float) -> np.ndarray:
    """For each ``(theta, beta)``: the exact minimum over ``x_j`` in ``[0, c T]`` of
    ``sum_j (1-theta)/2 (x_j - a_j)^2 + lam r(x_j / c)``, plus ``(1-theta) (const + tail/2)``,
    where ``r(m) = min(m^p - beta m, T^p - beta T)`` (the largest non-decreasing minorant of
    ``m^p - beta m`` on ``[0, T]``).

    Candidates for the minimum of each 1-D piecewise problem: ``0``, the ends ``c mbar``,
    ``c T`` of the flat piece, the stationary point of the flat piece, and the larger
    stationary point of the concave piece (``mbar``: where ``m^p - beta m`` first reaches
    ``T^p - beta T``).
    """
    w = (1.0 - theta)[:, None]
    beta_c = beta[:, None]
    rT = T**p - beta_c * T
    # mbar by bisection on [0, m_peak], where m^p - beta m increases.
    with np.errstate(divide="ignore", over="ignore"):
        peak = np.where(beta_c > 0, (p / np.maximum(beta_c, 1e-300)) ** (1.0 / (1.0 - p)), T)
    lo, hi = np.zeros_like(rT), np.minimum(peak, T)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = mid**p - beta_c * mid < rT
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    mbar = hi
    a = a[None, :]

    def f(x: np.ndarray) -> np.ndarray:
        # min(r(m), r(T)) is the minorant exactly (r is concave); mbar only places candidates.
        m = x / c
        return 0.5 * w * (x - a) ** 2 + lam * np.minimum(m**p - beta_c * m, rT)

    with np.errstate(divide="ignore", invalid="ignore"):
        root = _larger_root(a + lam * beta_c / (w * c), lam * c ** (-p) / w, p)
    root = np.where(np.isfinite(root) & (root < c * mbar), root, 0.0)
    candidates = [np.zeros_like(root), np.broadcast_to(c * mbar, root.shape),
                  np.full(root.shape, c * T), np.clip(a, c * mbar, c * T), root]
    best = np.min([f(x) for x in candidates], axis=0)
    return np.sum(best, axis=1) + (1.0 - theta) * (const + 0.5 * tail)


def _combined_bound(problem: DeepLinearProblem, T: float,
                    points: list[tuple[float, float, np.ndarray]]
                    ) -> tuple[float, float, float, str]:
    """The chord, comparison and combined bounds (``docs/math.md``) at the given ``T`` and
    dual points; returns ``(chord, comparison, combined, route of the combined)``."""
    p, lam, K = _power(problem), problem.rho, problem.K
    slope = T ** (p - 1.0)
    const = 0.5 * problem.residual_sq
    chord = max((D for rho, D, _ in points if rho <= lam * slope * (1 + 1e-12)),
                default=-math.inf)
    theta_grid = np.asarray(THETA_GRID)
    best, comparison, route = -math.inf, -math.inf, ""
    for c in np.geomspace(problem.s[-1], problem.s[0], CLIP_GRID):
        sigma = svdvals(problem.A * (np.minimum(problem.s, c) / problem.s))
        a, tail = sigma[:K], float(np.dot(sigma[K:], sigma[K:]))
        zero = _second_terms(a, tail, const, np.zeros(1), np.zeros(1), lam, p, c, T)[0]
        comparison = max(comparison, zero)
        for rho, D, _ in points:
            theta = theta_grid[(theta_grid < 1.0) & (rho * theta_grid <= lam * slope)]
            values = theta * D + _second_terms(a, tail, const, theta, rho * theta / lam, lam,
                                               p, c, T)
            i = int(np.argmax(values))
            if values[i] > best:
                best = float(values[i])
                route = (f"combined bound (theta = {theta[i]:.2f} of the loss with "
                         f"rho' = {rho:.4g} on the nuclear norm, the rest compared with "
                         f"diag(s) clipped at {c:.4g}; T = {T:.4g})")
    return chord, comparison, max(best, chord, comparison), route


def weight_decay_lower_bound(problem: DeepLinearProblem, *, upper: float | None = None,
                             tol: float = 1e-10) -> LowerBound:
    """A certified lower bound on the optimum with weight decay at ``H >= 3``, any X.

    With ``p = 2/H`` and ``T`` from :func:`singular_value_bound` (every minimiser has
    ``sigma_1(M*) <= T``), three families of bounds, each proved in ``docs/math.md``:

    * **chord**: ``m^p >= T^(p-1) m`` on ``[0, T]``, so ``P*`` is at least the optimum with
      the nuclear norm weighted ``rho T^(p-1)``, bounded below by its dual
      (:func:`~duallinear.solve_dual` on the chain of bottleneck ``K``);
    * **comparison**: with ``diag(s)`` clipped at ``c``, the loss only shrinks and
      ``sigma_j(M) >= sigma_j(M U min(diag(s), c)) / c``, which leaves a whitened problem
      solved exactly per singular value;
    * **combined**: a share ``theta`` of the loss with ``rho' ||M||_*`` (dual bound) plus the
      rest with the remainder ``m^p - (theta rho' / rho) m`` (comparison bound), maximised
      over grids of ``(rho', theta, c)``.

    Parameters
    ----------
    problem : DeepLinearProblem
        ``penalty="frobenius"`` at ``H >= 3``.
    upper : float, optional
        The objective of any weights; tightens ``T``.
    tol : float
        Tolerance of the dual solves (the bound is valid at any accuracy).

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import weight_decay_lower_bound
    >>> rng = np.random.default_rng(0)
    >>> p = dl.DeepLinearProblem(rng.standard_normal((3, 6)), rng.standard_normal((2, 6)),
    ...                          (1, 1), 0.1, penalty="frobenius")
    >>> bound = weight_decay_lower_bound(p)
    >>> bool(bound.value <= dl.solve_primal(p, restarts=3, seed=0).value)
    True
    """
    check_problem(problem)
    if problem.is_schatten or problem.gamma == 0.0:
        raise ValueError(
            "weight_decay_lower_bound is for penalty='frobenius' at H >= 3 with gamma > 0; "
            f"this problem has penalty={problem.penalty!r}, H = {problem.depth}, gamma = "
            f"{problem.gamma:g}: use duallinear.solve(problem) (the dual is exact there)")
    if upper is not None:
        upper = as_nonneg_scalar(upper, "upper")
    tol = as_nonneg_scalar(tol, "tol")
    T = singular_value_bound(problem, upper)
    bound = problem.zero_value if upper is None else min(upper, problem.zero_value)
    if T == 0.0:
        value, delta = _lower_for_data(problem, problem.zero_value, bound)
        return LowerBound(value, "the zero network is the only stationary point "
                          "(singular_value_bound = 0)", T, *(problem.zero_value,) * 3,
                          rounding=delta)
    if problem.is_whitened:
        value, delta = _lower_for_data(problem, whitened_optimum(problem)[0], bound,
                                       whitened=True)
        return LowerBound(value, "exact optimum for whitened X", T, math.nan, math.nan,
                          math.nan, rounding=delta)
    slope = problem.rho * T ** (_power(problem) - 1.0)
    points = _dual_points(problem, [slope * f for f in RHO_GRID], tol)
    chord, comparison, combined, route = _combined_bound(problem, T, points)
    if combined <= max(chord, comparison):
        route = (f"chord bound (T = {T:.4g})" if chord >= comparison else
                 "comparison with whitened data")
    value, delta = _lower_for_data(problem, min(combined, problem.zero_value), bound)
    return LowerBound(value, route, T, chord, comparison, combined, rounding=delta)


# ------------------------------------------------------------------------------ solve
def solve(problem: DeepLinearProblem, *, tol: float = 1e-9, restarts: int = 4,
          seed: int | None = 0) -> Solution:
    """The library's best certified answer for any architecture and penalty.

    Routes (``docs/math.md``, several branches):

    * Schatten penalty, ``H = 2`` or ``gamma = 0``: the reduction to one chain of bottleneck
      ``K = B k``; ``lower`` is the dual value (:func:`~duallinear.solve_dual`), ``upper`` the
      objective of the weights recovered from it, split across the branches.
    * weight decay at ``H >= 3``, whitened X: the exact optimum (:func:`whitened_optimum`),
      ``lower`` its value and ``upper`` the objective of its weights.
    * weight decay at ``H >= 3``, general X: ``lower`` from :func:`weight_decay_lower_bound`;
      ``upper`` the best of candidates built from the bounds' minimisers, polished by L-BFGS
      on the network together with ``restarts - 1`` random restarts.

    Parameters
    ----------
    problem : DeepLinearProblem
    tol : float
        ``exact`` means ``relative_gap <= tol``; also the tolerance of the dual solves.
    restarts : int >= 1
        Local searches on the general weight-decay route.
    seed : int, optional
        Seed of those restarts.

    Returns
    -------
    Solution

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((4, 8)), rng.standard_normal((3, 8))
    >>> sol = dl.solve(dl.DeepLinearProblem(X, Y, (1, 1), 0.1, branches=2))
    >>> sol.exact, len(sol.weights), bool(sol.lower <= sol.upper)
    (True, 2, True)
    """
    check_problem(problem)
    tol = as_nonneg_scalar(tol, "tol")
    restarts = as_positive_int(restarts, "restarts")
    if seed is not None:
        seed = as_positive_int(seed, "seed", minimum=0)
    t0 = time.perf_counter()
    delta = 0.0
    if problem.is_schatten or problem.gamma == 0.0:
        weights, lower, upper, lower_route, upper_route = _solve_chain(problem, tol)
        reduced = lower
    elif problem.is_whitened:
        reduced, N = whitened_optimum(problem)
        weights = _branch_weights(problem, N / problem.s)
        upper = objective(problem, weights)
        lower, delta = _lower_for_data(problem, reduced, upper, whitened=True)
        lower_route = "exact optimum for whitened X (per-singular-value problems)"
        upper_route = "balanced weights of that optimum"
    else:
        weights, reduced, upper, lower_route, upper_route = _solve_weight_decay(
            problem, tol, restarts, seed)
        lower, delta = _lower_for_data(problem, reduced, upper)
    upper_delta = _weights_margin(problem, weights)
    gap = relative_gap(upper + upper_delta, lower, problem.zero_value)
    message = f"lower: {lower_route}; upper: {upper_route}; relative gap {gap:.2e}"
    if delta > 0.0:
        message += (f"; lower reduced by {delta:.2e} for rounding in the reduction of X "
                    f"(||X - X_hat||_F <= {problem.rounding:.1e}, cond(X) = "
                    f"{problem.condition_number:.1e})")
        if gap > tol >= relative_gap(upper, min(reduced, upper), problem.zero_value):
            message += ": that margin is what keeps the interval from exact"
    if upper_delta > 0.0 and relative_gap(upper + upper_delta, upper, problem.zero_value) > 1e-15:
        message += (f"; upper raised by {upper_delta:.2e} in the gap, for X as given (the "
                    "objective is evaluated on the reduction of X)")
    return Solution(lower=lower, upper=upper, weights=weights, exact=bool(gap <= tol),
                    relative_gap=gap, lower_route=lower_route, upper_route=upper_route,
                    message=message, K=problem.K, time=time.perf_counter() - t0,
                    rounding=delta, upper_rounding=upper_delta)


def _weights_margin(problem: DeepLinearProblem, weights: list) -> float:
    """:func:`_point_margin` at the end-to-end map of ``weights`` (every branch), with its
    norm taken from the full map: weights from a local search may act off the range of X."""
    branches = weights if problem.branches > 1 else [weights]
    M = np.zeros((problem.dH, problem.d0))
    for chain in branches:
        product = chain[0]
        for W in chain[1:]:
            product = W @ product
        M += product
    norm = float(svdvals(M)[0]) if M.size else 0.0
    return _point_margin(problem, M @ problem.U, norm=norm)


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RecoveryWarning)
        return func(*args, **kwargs)


def _solve_chain(problem: DeepLinearProblem, tol: float
                 ) -> tuple[list, float, float, str, str]:
    chain = problem if problem.is_chain else _schatten_chain(problem)
    dual = _quiet(solve_dual, chain, tol=tol)
    rec = _quiet(recover, chain, dual, tol=tol)
    weights = rec.weights if problem.is_chain else _split(problem, rec.weights)
    upper = objective(problem, weights)
    what = "one chain" if problem.is_chain else f"the equivalent chain (bottleneck K = {problem.K})"
    return (weights, dual.value, upper, f"dual of {what} ({dual.message})",
            "weights recovered from the dual" + ("" if problem.is_chain else
                                                 f", split across {problem.branches} branches"))


def _solve_weight_decay(problem: DeepLinearProblem, tol: float, restarts: int,
                        seed: int | None) -> tuple[list, float, float, str, str]:
    T = singular_value_bound(problem)
    p, lam = _power(problem), problem.rho
    if T == 0.0:
        weights = _branch_weights(problem, np.zeros_like(problem.A))
        return (weights, problem.zero_value, objective(problem, weights),
                "the zero network is the only stationary point", "the zero network")
    points = _dual_points(problem, [lam * T ** (p - 1.0) * f for f in RHO_GRID], tol)
    # Candidates: the minimisers of the bounds' sub-problems, evaluated exactly.
    candidates = [Mr for _, _, Mr in points]
    for c in np.geomspace(problem.s[-1], problem.s[0], CLIP_GRID):
        w = np.minimum(problem.s, c)
        U, sigma, Vt = svd(problem.A * (w / problem.s))
        x, _ = _threshold(sigma[:problem.K], lam * c ** (-p), p)
        candidates.append(((U[:, :x.size] * x) @ Vt[:x.size]) / w)
    candidates.append(np.zeros_like(problem.A))
    ranked = sorted(candidates, key=lambda Mr: _reduced_value(problem, Mr))
    start = _branch_weights(problem, ranked[0])
    primal = _quiet(solve_primal, problem, restarts=restarts, seed=seed, init=start)
    weights, upper = primal.weights, primal.value
    route = (f"best of {restarts} L-BFGS restart(s) on the network, the first started at the "
             "best bound minimiser")
    start_value = objective(problem, start)
    if start_value < upper:
        weights, upper, route = start, start_value, "the best bound minimiser"
    T = singular_value_bound(problem, upper)
    chord, comparison, combined, bound_route = _combined_bound(problem, T, points)
    if combined <= max(chord, comparison):
        bound_route = (f"chord bound (T = {T:.4g})" if chord >= comparison else
                       "comparison with whitened data")
    return weights, min(combined, problem.zero_value), upper, bound_route, route


def _whitened_bounds(chain: DeepLinearProblem) -> tuple[float, float]:
    """Bounds on the optimum of one Schatten chain on whitened X for X as given: the closed
    form, lowered by the rounding margin and raised by the margin at its minimiser."""
    value, N = closed_form(chain)
    upper = value + _point_margin(chain, N / chain.s if chain.rank else N, whitened=True)
    return max(value - _rounding_margin(chain, upper, whitened=True), 0.0), upper


def _chain_bounds(chain: DeepLinearProblem, tol: float, max_iter: int) -> tuple[float, float]:
    """Certified bounds on the optimum of one Schatten chain from its dual (a top-level
    function so that joblib can ship it)."""
    res = _quiet(solve_dual, chain, tol=tol, max_iter=max_iter)
    return res.value, min(res.upper_bound, chain.zero_value)


# ----------------------------------------------------------------- output-coupled dual
def output_coupled_dual(problem: DeepLinearProblem, *, tol: float = 1e-10) -> CoupledDual:
    """The dual of the problem with only the coupling ``Z = sum_b f_b(X)`` dualised.

    Each branch's inner minimum is ``0`` or ``-inf``: for the Schatten penalty it is finite
    exactly when ``||Lambda X^T||_op <= rho`` and the dual is that of the convex problem
    ``P_cvx = min_M 1/2 ||M X - Y||^2 + rho ||M||_*`` (no rank bound), the same for every
    ``B``; for weight decay at ``H >= 3`` it is finite only when ``Lambda X^T = 0`` and the
    dual value is ``1/2 ||Y - A V^T||^2`` (vacuous). ``docs/math.md`` has the derivation.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import output_coupled_dual
    >>> p = dl.DeepLinearProblem(np.eye(3), np.diag([3.0, 2.0, 0.5]), (1,), 0.5)
    >>> d = output_coupled_dual(p)  # soft-threshold all three values by rho = 1
    >>> round(float(d.lower), 10), d.rank
    (4.125, 2)
    """
    check_problem(problem)
    tol = as_nonneg_scalar(tol, "tol")
    if not (problem.is_schatten or problem.gamma == 0.0):
        # The dual value is the least-squares optimum over X: 1/2 ||Y - A V^T||^2 for the
        # reduction, within the rounding margins of the least-squares fit for X as given.
        c0 = 0.5 * problem.residual_sq
        fit = problem.A / problem.s if problem.rank else problem.A
        up = c0 + _point_margin(problem, fit)
        lo = max(c0 - _rounding_margin(problem.with_gamma(0.0), up), 0.0)
        return CoupledDual(lo, up, None, math.inf, True, True,
                           "vacuous: with weight decay at H >= 3 each branch's inner minimum "
                           "is -inf unless Lambda X^T = 0")
    convex = _schatten_chain(problem, k=min(problem.dH, problem.rank) or 1)
    if problem.is_whitened:
        lower, N = closed_form(convex)
        # The closed form is exact for s_1 U V^T: lowered for X as given (solve_dual does it
        # itself on the other route).
        lower = max(lower - _rounding_margin(convex, problem.zero_value, whitened=True), 0.0)
    else:
        dual = _quiet(solve_dual, convex, tol=tol)
        lower, N = dual.value, problem.A - dual.Gamma  # the convex problem's optimal N
    P, m, Qt = svd(N / problem.s) if N.size else (N, np.zeros(0), N)
    eps = problem.rounding

    def value(r: int) -> float:  # objective of the truncation of M' = N diag(s)^-1 to rank r
        R = (P[:, :r] * m[:r]) @ (Qt[:r] * problem.s) - problem.A
        loss = problem.residual_sq + float(np.sum(R * R))
        # For X as given: the margin at this known map (_point_margin, with ||M||_2 = m_1).
        margin = (float(m[0]) * math.sqrt(loss) * eps + 0.5 * (float(m[0]) * eps) ** 2
                  + problem.residual_error) if r else 0.0
        return 0.5 * loss + problem.rho * float(np.sum(m[:r])) + margin

    values = {m.size: value(m.size)}
    if relative_gap(values[m.size], lower, problem.zero_value) <= tol:
        # The smallest certified rank, by bisection (truncations lose value as rank falls).
        lo, hi = -1, m.size
        while hi - lo > 1:
            mid = (lo + hi) // 2
            values[mid] = value(mid)
            if relative_gap(values[mid], lower, problem.zero_value) <= tol:
                hi = mid
            else:
                lo = mid
        rank, certified = hi, True
    else:
        rank, certified = m.size, False
    upper = min(values.values())
    gap = relative_gap(values[rank], lower, problem.zero_value)
    return CoupledDual(lower, upper, rank, values[rank], certified, False,
                       f"the convex nuclear-norm problem (no rank bound): certified rank "
                       f"{rank}, relative gap {gap:.1e}" +
                       ("" if certified else f" (tol {tol:.0e} not met)"))


def gap_curve(problem: DeepLinearProblem, branches: Iterable[int] | None = None, *,
              tol: float = 1e-10, max_iter: int = 75, n_jobs: int | None = None) -> GapCurve:
    """The duality gap ``gap(B) = P*(B) - D_oc`` of the output-coupled dual over ``B``.

    ``P*(B)`` is the optimum with ``B`` branches of the problem's widths (the problem's own
    ``branches`` is ignored). It is non-increasing in ``B`` and equals ``P_cvx = D_oc`` once
    ``B k >= rank M_cvx``: those points need no solve. For whitened X each ``P*(B)`` is a
    closed form, else the dual of the chain of bottleneck ``B k`` (an interval when that dual
    is not tight).

    Parameters
    ----------
    problem : DeepLinearProblem
        Schatten penalty (or ``H = 2``); for weight decay at ``H >= 3`` the output-coupled
        dual is vacuous and a ``ValueError`` says so.
    branches : iterable of int >= 1, optional
        Default ``1 .. zero_from``.
    tol : float
    max_iter : int
        Iteration cap of each dual solve. Most points certify at the 2nd iteration; where the
        chain's dual is not tight DR cannot close the interval and the cap bounds the cost:
        at d = 100 (Gaussian X, ``benchmarks/branches_gap_curve.py``) such points were left at
        relative intervals of 4e-6..4e-5 after 75 iterations, 2e-6..9e-5 after 5000, at a
        seventh of the time.
    n_jobs : int, optional
        Solve the points in parallel through joblib (``None`` or 1: one after the other;
        -1: all cores). Each solve runs BLAS on one thread.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> from duallinear.branches import gap_curve
    >>> p = dl.DeepLinearProblem(np.eye(3), np.diag([3.0, 2.0, 0.5]), (1,), 0.5)
    >>> curve = gap_curve(p)  # gap(1) = 1/2 (2 - 1)^2, zero from B = 2 on
    >>> curve.branches.tolist(), np.round(curve.gap_upper, 12).tolist()
    ([1, 2], [0.5, 0.0])
    """
    check_problem(problem)
    tol = as_nonneg_scalar(tol, "tol")
    max_iter = as_positive_int(max_iter, "max_iter")
    if n_jobs is not None:
        n_jobs = as_positive_int(n_jobs, "n_jobs", minimum=-1)
        if n_jobs == 0:
            raise ValueError("n_jobs must be >= 1, or -1 for all cores; got 0")
    if not (problem.is_schatten or problem.gamma == 0.0):
        raise ValueError(
            "gap_curve needs the Schatten penalty (or H = 2): with weight decay at H >= 3 the "
            "output-coupled dual is vacuous (see output_coupled_dual); use solve() for each B")
    t0 = time.perf_counter()
    dual = output_coupled_dual(problem, tol=tol)
    zero_from = max(1, math.ceil(dual.rank / problem.k))
    if branches is None:
        Bs = list(range(1, zero_from + 1))
    else:
        if isinstance(branches, (str, bytes)) or not isinstance(branches, Iterable):
            raise TypeError(f"branches must be an iterable of positive integers, got "
                            f"{type(branches).__name__}")
        Bs = [as_positive_int(B, "branches[]") for B in branches]
        if not Bs:
            raise ValueError("branches must hold at least one value")
    need = sorted({B for B in Bs if B < zero_from})
    if problem.is_whitened:
        found = {B: _whitened_bounds(_schatten_chain(problem, k=B * problem.k)) for B in need}
    else:
        chains = [_schatten_chain(problem, k=B * problem.k) for B in need]
        if n_jobs is None or n_jobs == 1:
            bounds = [_chain_bounds(chain, tol, max_iter) for chain in chains]
        else:
            from joblib import Parallel, delayed

            bounds = Parallel(n_jobs=n_jobs)(delayed(_chain_bounds)(chain, tol, max_iter)
                                             for chain in chains)
        found = dict(zip(need, bounds, strict=True))
    lower, upper, exact = [], [], []
    for B in Bs:
        lo, up = found.get(B, (dual.lower, dual.rank_value))
        lower.append(lo)
        upper.append(up)
    order = np.argsort(Bs)
    lo_arr, up_arr = np.array(lower)[order], np.array(upper)[order]
    # P*(B) is non-increasing: an upper bound at B holds on the right, a lower one on the left.
    up_arr = np.minimum.accumulate(up_arr)
    lo_arr = np.maximum.accumulate(lo_arr[::-1])[::-1]
    inverse = np.argsort(order)
    lo_arr, up_arr = lo_arr[inverse], up_arr[inverse]
    for lo, up in zip(lo_arr, up_arr, strict=True):
        exact.append(relative_gap(float(up), float(lo), problem.zero_value) <= tol)
    gap_lower = np.maximum(lo_arr - dual.upper, 0.0)
    gap_upper = np.maximum(up_arr - dual.lower, 0.0)
    denom = np.maximum(np.abs(up_arr), 1e-8 * problem.zero_value)
    return GapCurve(branches=np.array(Bs), lower=lo_arr, upper=up_arr, gap_lower=gap_lower,
                    gap_upper=gap_upper, relative_gap=gap_upper / np.where(denom > 0, denom, 1),
                    zero_from=zero_from, dual=dual, exact=np.array(exact),
                    time=time.perf_counter() - t0)


# ------------------------------------------------------------------------- budget form
@dataclass(frozen=True, eq=False)
class BudgetSolution:
    """Outcome of :func:`budget_form`: the exact optimum under a weight budget and its dual.

    Attributes
    ----------
    value : float
        The optimum ``min 1/2 ||f(X) - Y||_F^2`` subject to ``penalty(W) <= budget``.
    dual_value : float
        ``max_{lam >= 0} g(lam)``, the dual obtained by dualising the budget alone (a lower
        bound on ``value``; equal to it when the penalty is convex in the singular values).
    multiplier : float
        The ``lam`` at which ``dual_value`` was attained.
    weights : list
        Weights attaining ``value`` (``[W_1, .., W_H]`` for one chain, else ``B`` such
        lists), balanced, spending at most ``budget`` (up to rounding, 1e-15 relative).
    spent : float
        ``penalty(weights)``, the part of the budget the weights use.
    relative_gap : float
        ``(value - dual_value) / max(|value|, 1e-8 * 1/2 ||Y||^2)``.
    gap_bound : float
        The proved bound on ``value - dual_value`` (:func:`budget_gap_bound`).
    budget : float
    message : str
    rounding : float
        ``value`` and ``dual_value`` are exact for the whitened matrix ``s_1 U V^T`` within
        ``problem.rounding + ||s - s_1||_2`` of X (X counts as whitened to
        ``WHITENED_RTOL``); for X as given, ``dual_value - rounding <= P_b <= value +
        rounding``, and the weights' objective on X is at most ``value + rounding``
        (``docs/math.md``, budget form).
    """

    value: float
    dual_value: float
    multiplier: float
    weights: list
    spent: float
    relative_gap: float
    gap_bound: float
    budget: float
    message: str
    rounding: float = 0.0


def _nonconvexity(p: float) -> float:
    """``sup (psi - conv psi)`` for ``psi(tau) = 1/2 (1 - tau^(1/p))_+^2`` on ``tau >= 0``.

    With ``r = 1/p > 1`` and ``y = tau^r``: the line through ``(0, 1/2)`` touches ``psi`` at
    ``y* = 2 (r - 1) / (2 r - 1)``; ``psi`` is concave left of ``y_i = (r - 1) / (2 r - 1)``,
    where the distance to the line is largest at the point of slope equal to the line's
    (found by bisection on the decreasing ``psi'``). ``0`` for ``p = 1`` (``psi`` convex).
    """
    if p >= 1.0:
        return 0.0
    r = 1.0 / p

    def psi(tau: float) -> float:
        return 0.5 * (1.0 - tau**r) ** 2

    def dpsi(tau: float) -> float:
        return -r * tau ** (r - 1.0) * (1.0 - tau**r)

    tau_star = (2.0 * (r - 1.0) / (2.0 * r - 1.0)) ** p
    slope = dpsi(tau_star)
    lo, hi = 0.0, ((r - 1.0) / (2.0 * r - 1.0)) ** p
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if dpsi(mid) > slope else (lo, mid)
    tau = 0.5 * (lo + hi)
    return max(psi(tau) - 0.5 - slope * tau, 0.0)


def _budget_values(problem: DeepLinearProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        float, float]:
    """``(U, a, Vt, c, tail)``: the SVD of ``A`` cut to the top ``K`` positive values, the
    level ``c`` of the whitened X and ``1/2`` the energy of ``A`` beyond them."""
    U, sigma, Vt = svd(problem.A)
    K = min(problem.K, int(np.sum(sigma > 0)))
    tail = 0.5 * float(np.dot(sigma[K:], sigma[K:]))
    return U[:, :K], sigma[:K], Vt[:K], float(problem.s[0]), tail


def _budget_primal(a: np.ndarray, beta: float, p: float) -> tuple[float, np.ndarray]:
    """``min sum_j 1/2 (x_j - a_j)^2`` subject to ``sum_j x_j^p <= beta``, ``x >= 0``, for
    ``a`` sorted decreasing and positive; returns the value and a minimiser (feasible).

    ``p = 1``: the projection onto the simplex-like ball, ``x = (a - tau)_+``. ``0 < p < 1``:
    the best of the KKT points (``docs/math.md``, budget form): for each support
    ``{1 .. s}`` the curve ``t = x_s`` in ``(0, a_s]``, ``mu(t) = (a_s - t) t^(1-p) / p`` and
    ``x_j`` the larger root of ``x + mu p x^(p-1) = a_j`` for ``j < s``, cut by the budget.
    """
    if a.size == 0 or float(np.sum(a**p)) <= beta:
        return 0.0, a.copy()
    if beta <= 0.0:
        return 0.5 * float(np.dot(a, a)), np.zeros_like(a)
    if p == 1.0:
        lo, hi = 0.0, float(a[0])  # sum (a - tau)_+ falls from sum a > beta to 0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.sum(np.maximum(a - mid, 0.0)) > beta else (lo, mid)
        x = np.maximum(a - hi, 0.0)
        return 0.5 * float(np.sum((x - a) ** 2)), x

    def points(s: int, t: np.ndarray) -> np.ndarray:
        mu = (a[s - 1] - t) * t ** (1.0 - p) / p
        head = _larger_root(a[:s - 1, None], mu[None, :], p)
        return np.vstack([head, t[None, :]])  # shape (s, len(t))

    def excess(s: int, t: np.ndarray) -> np.ndarray:
        return np.sum(points(s, t) ** p, axis=0) - beta

    best, best_x = 0.5 * float(np.dot(a, a)), np.zeros_like(a)
    for s in range(1, a.size + 1):
        t = a[s - 1] * np.geomspace(1e-12, 1.0, BUDGET_KKT_GRID)
        g = excess(s, t)
        for i in np.nonzero((g[:-1] <= 0.0) != (g[1:] <= 0.0))[0]:
            lo, hi = t[i], t[i + 1]
            feasible_lo = g[i] <= 0.0
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if (excess(s, np.array([mid]))[0] <= 0.0) == feasible_lo:
                    lo = mid
                else:
                    hi = mid
                if hi - lo <= 4 * np.finfo(float).eps * hi:
                    break
            x_s = points(s, np.array([lo if feasible_lo else hi]))[:, 0]
            x = np.zeros_like(a)
            x[:s] = x_s
            value = 0.5 * float(np.sum((x - a) ** 2))
            if value < best and float(np.sum(x**p)) <= beta:
                best, best_x = value, x
    return best, best_x


def _budget_dual(a: np.ndarray, beta: float, p: float) -> tuple[float, float]:
    """``max_{Lam >= 0} sum_j phi_Lam(a_j) - Lam beta`` with ``phi_Lam(a) = min_{x >= 0}
    1/2 (x - a)^2 + Lam x^p`` (concave in ``Lam``); returns the best value found and its
    ``Lam``. The maximiser lies in ``[0, 1/2 sum a^2 / beta]``: beyond, every minimiser has
    ``sum x^p <= 1/2 sum a^2 / Lam < beta``, a negative supergradient."""
    def g(lam: float) -> float:
        return float(np.sum(_threshold(a, lam, p)[1])) - lam * beta

    if a.size == 0:
        return 0.0, 0.0
    lo, hi = 0.0, 0.5 * float(np.dot(a, a)) / beta
    found = [(g(lo), lo), (g(hi), hi)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = g(x1), g(x2)
    for _ in range(BUDGET_GOLDEN_STEPS):
        found += [(f1, x1), (f2, x2)]
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = g(x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = g(x1)
    return max(found)


def budget_gap_bound(problem: DeepLinearProblem) -> float:
    """A bound on the duality gap of :func:`budget_form`, valid for every budget.

    Returns ``rho_p a_1^2``, with ``a_1`` the largest singular value of ``A`` and
    ``rho_p = sup (psi - conv psi)`` for ``psi(tau) = 1/2 (1 - tau^(1/p))_+^2``, ``p = 2/H``
    (weight decay) or 1 (Schatten, where it is 0): the problem splits into one scalar problem
    per singular value, all sharing the budget, and at most one of them needs its convex
    envelope (``docs/math.md``, budget form). ``rho_p`` is 0.0337 at ``H = 3`` and 0.0774 at
    ``H = 4``.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> p = dl.DeepLinearProblem(np.eye(2), np.diag([2.0, 1.0]), (1, 1), 0.0,
    ...                          penalty="frobenius")
    >>> round(dl.budget_gap_bound(p), 6)  # 4 * rho_{2/3}
    0.134884
    """
    check_problem(problem)
    if problem.rank == 0 or not np.any(problem.A):
        return 0.0
    a1 = float(svdvals(problem.A)[0])
    return _nonconvexity(_power(problem)) * a1 * a1


def budget_form(problem: DeepLinearProblem, budget: float) -> BudgetSolution:
    """The network under a weight budget, solved exactly for whitened X, with its dual.

    Minimise ``1/2 ||f(X) - Y||_F^2`` over the weights of ``problem``'s architecture (``B``
    branches of widths ``hidden``) subject to ``penalty(W) <= budget``, where the penalty is
    ``sum ||W||_F^2`` over all layers of all branches for ``penalty="frobenius"`` and
    ``sum ||W||_{S_H}^H`` for ``"schatten"``; ``problem.gamma`` is not used. Over all
    factorisations of an end-to-end ``M`` of rank ``<= K`` the cheapest costs
    ``H sum_j sigma_j(M)^p`` (``p = 2/H``, or 1), so for whitened X the problem splits over the
    singular values ``a_j`` of ``A``, sharing the budget; its minimum is the best of the KKT
    points, found per support by a 1-D root find. The dual dualises the budget alone:
    ``g(lam) = P_wd(lam) - lam budget`` with ``P_wd(lam)`` the weight-decay optimum at
    ``gamma = lam`` (:func:`whitened_optimum`), a concave function of ``lam`` maximised by
    golden section on a proved bracket. ``docs/math.md`` (budget form) has the derivation and
    the bound :func:`budget_gap_bound` on the gap.

    Parameters
    ----------
    problem : DeepLinearProblem
        With whitened X (``X X^T = c I`` on the range of X): only there is the primal exact,
        and other X raise ``ValueError``.
    budget : float > 0

    Returns
    -------
    BudgetSolution

    Raises
    ------
    ValueError
        If ``budget`` is not positive and finite, or X is not whitened.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> p = dl.DeepLinearProblem(np.eye(2), np.diag([2.0, 1.0]), (1, 1), 0.0,
    ...                          penalty="frobenius", branches=2)
    >>> sol = dl.budget_form(p, budget=1.0)  # 3 (m_1^(2/3) + m_2^(2/3)) <= 1
    >>> round(sol.value, 6), round(sol.dual_value, 6), bool(sol.value - sol.dual_value
    ...                                                     <= sol.gap_bound)
    (2.133618, 2.0, True)
    """
    check_problem(problem)
    budget = as_nonneg_scalar(budget, "budget")
    if not (budget > 0.0 and math.isfinite(budget)):
        raise ValueError(f"budget must be positive and finite, got {budget!r}")
    if not problem.is_whitened:
        raise ValueError(
            "budget_form is exact only for whitened X (X X^T = c I on the range of X); the "
            f"singular values of X range from {problem.s[-1]:.6g} to {problem.s[0]:.6g}")
    p, H = _power(problem), problem.depth
    const = 0.5 * problem.residual_sq
    if problem.rank == 0:
        U, a, Vt, c, tail = np.zeros((problem.dH, 0)), np.zeros(0), np.zeros((0, 0)), 1.0, 0.0
    else:
        U, a, Vt, c, tail = _budget_values(problem)
    # In N = M U diag(s) = c M U the constraint H sum_j sigma_j(M)^p <= budget reads
    # sum_j x_j^p <= beta, with x_j = sigma_j(N).
    beta = budget * c**p / H
    loss, x = _budget_primal(a, beta, p)
    dual, lam = _budget_dual(a, beta, p)
    weights = _branch_weights(problem, (U * x) @ Vt / c if a.size else
                              np.zeros_like(problem.A))
    value = const + tail + loss
    dual_value = min(const + tail + dual, value)  # equal up to rounding when the gap is 0
    spent = _spent(problem, weights)
    gap = relative_gap(value, dual_value, problem.zero_value)
    bound = budget_gap_bound(problem)
    rounding = _budget_rounding(problem, budget, value,
                                (U * x) @ Vt / c if a.size else np.zeros_like(problem.A))
    message = (f"exact optimum over the KKT points of {a.size} per-singular-value problems; "
               f"dual of the budget at lam = {lam * c**p / H:.6g}: relative gap {gap:.2e} "
               f"(proved bound on the gap {bound:.3g})")
    if rounding > 1e-12 * max(value, GAP_FLOOR * problem.zero_value):
        message += (f"; for X as given both may be off by {rounding:.2e} (X is whitened only to "
                    f"{float(problem.s[0] - problem.s[-1]) / float(problem.s[0]):.1e} "
                    "relative, and rounding in its reduction)")
    return BudgetSolution(value=value, dual_value=dual_value, multiplier=lam * c**p / H,
                          weights=weights, spent=spent, relative_gap=gap, gap_bound=bound,
                          budget=budget, message=message, rounding=rounding)


def _budget_rounding(problem: DeepLinearProblem, budget: float, value: float,
                     Mr: np.ndarray) -> float:
    """``BudgetSolution.rounding``: how far the budget problem for X as given can be from the
    one for ``X_hat = s_1 U V^T`` (``eps_x = ||X - X_hat||_F``), on both sides.

    Every feasible end-to-end ``M`` has ``H sigma_1(M)^p <= budget``, so
    ``||M||_2 <= T = (budget / H)^(1/p)``. Below: at the minimiser ``M*`` for X,
    ``P_b(X_hat) <= P_b(X) + T sqrt(2 P_b(X)) eps_x + 1/2 (T eps_x)^2``, with ``P_b(X)`` at
    most the weights' objective on X. Above: the weights' map ``M = Mr U^T`` moves by
    :func:`_point_margin`.
    """
    if not Mr.size:
        return problem.residual_error
    above = _point_margin(problem, Mr, whitened=True)
    T = (budget / problem.depth) ** (1.0 / _power(problem))
    return max(above, _rounding_margin(problem, value + above, True, norm_bound=T))


def _spent(problem: DeepLinearProblem, weights: list) -> float:
    """The penalty of ``weights`` (without ``gamma``): what they use of a budget."""
    branches = weights if problem.branches > 1 else [weights]
    total = 0.0
    for chain in branches:
        for W in chain:
            if problem.is_schatten:
                total += float(np.sum(svdvals(W) ** problem.depth)) if W.size else 0.0
            else:
                total += float(np.sum(W * W))
    return total
