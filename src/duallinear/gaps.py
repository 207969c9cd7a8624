r"""Proofs about the duality gap: zero, non-zero, or undecided with both intervals.

The dual (5) is a convex relaxation of the deep linear problem, and it is not always tight
(``docs/math.md``, "When the relaxation is not tight"). :func:`prove_gap` brackets both
optima: ``dual_lower <= D* <= dual_upper`` from :func:`duallinear.solve_dual`, and
``primal_lower <= P* <= primal_upper``, the upper end from weights it found and the lower end
from a branch-and-bound over the null spaces of the rank-``k`` product (:mod:`duallinear._bnb`).
The verdict is

* ``"zero"`` when the gap is zero: the weights found are certified against ``dual_lower``
  (as :func:`duallinear.recover` certifies them), or a theorem says so (whitened X, ``gamma =
  0``, or a bottleneck at least ``min(dH, rank X)``, where the problem is convex);
* ``"gap"`` when ``primal_lower > dual_upper``: a non-zero duality gap, proved;
* ``"undecided"`` otherwise (the search hit its time limit, or the instance is too large for
  it), with both intervals.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._bnb import Data, RankOne, allowance, branch_and_bound, routes
from ._reduced import Reduced
from ._threads import one_blas_thread_for
from ._validation import as_nonneg_scalar
from .certificates import check_dual, relative_gap
from .dual import solve_dual
from .primal import objective
from .problem import DeepLinearProblem, check_problem
from .recovery import balanced_factors, recover
from .results import ConvergenceWarning, DualResult, RecoveryWarning

__all__ = ["GapProof", "prove_gap", "VERDICTS", "ROUTES"]

VERDICTS = ("zero", "gap", "undecided")
ROUTES = ("left", "right", "rank_one")


@dataclass(frozen=True, eq=False)
class GapProof:
    """Outcome of :func:`prove_gap`.

    Attributes
    ----------
    verdict : {"zero", "gap", "undecided"}
        ``"gap"`` only when ``primal_lower > dual_upper`` holds with rounding accounted for.
    primal_lower : float
        A proved lower bound on the primal optimum ``P*`` (the dual value where nothing
        better was proved: ``P* >= D* >= dual_lower`` always).
    primal_upper : float
        Objective (4) of ``weights``, the best primal point found (an upper bound on ``P*``).
    weights : list of ndarray
        ``[W_1, .., W_H]`` attaining ``primal_upper``.
    dual_lower, dual_upper : float
        ``dual_lower <= D* <= dual_upper`` (``DualResult.value`` and ``.dual_upper``).
    relative_gap : float
        The proved relative gap ``(primal_lower - dual_upper) / |primal_upper|`` (positive only
        when the verdict is ``"gap"``).
    route : str
        How the verdict came: ``"certificate"``, ``"theorem"``, ``"rank_one"`` (``k = 1``),
        ``"left"`` / ``"right"`` (null spaces of ``N`` on the left or right, a Grassmannian of
        dimension ``dimension``), or ``"too_large"``.
    dimension : int
        Dimension of the space the branch-and-bound searched (0 if none).
    cells : int
        Cells of the search evaluated; ``subproblems`` of them solved a convex problem, with
        ``inner_iterations`` iterations in all.
    covered : float
        Fraction of the search space (volume of its charts) closed by the bound.
    rounding : float
        The rounding allowance (user units) the comparison ``primal_lower > dual_upper`` adds
        on the dual side; the cell bounds carry their own.
    time : float
        Wall-clock seconds, the dual solve included when ``prove_gap`` ran it.
    message : str
    dual : DualResult
        The dual result used.
    """

    verdict: str
    primal_lower: float
    primal_upper: float
    weights: list[np.ndarray]
    dual_lower: float
    dual_upper: float
    relative_gap: float
    route: str
    dimension: int
    cells: int
    subproblems: int
    inner_iterations: int
    covered: float
    rounding: float
    time: float
    message: str
    dual: DualResult = field(repr=False)


def prove_gap(problem: DeepLinearProblem, dual: DualResult | None = None, *,
              time_limit: float = 60.0, rtol: float | None = None, zero_tol: float = 1e-9,
              max_dimension: int = 8, route: str | None = None,
              progress: bool = False) -> GapProof:
    r"""Decide whether the duality gap of ``problem`` is zero, with proof where one exists.

    Parameters
    ----------
    problem : DeepLinearProblem
    dual : DualResult, optional
        From :func:`duallinear.solve_dual` on ``problem``; solved here (default settings) if
        omitted.
    time_limit : float > 0
        Seconds the branch-and-bound may take (the verdict is ``"undecided"`` if it has not
        decided by then).
    rtol : float >= 0, optional
        Go on after a ``"gap"`` verdict until ``P*`` is bracketed to this relative width
        (``primal_upper - primal_lower <= rtol |primal_upper|``); default: stop once decided.
    zero_tol : float >= 0
        Relative certified gap of the weights below which the gap counts as zero.
    max_dimension : int
        Largest search space attempted: the Grassmannian of null spaces has dimension
        ``k (n - k)`` with ``n = dH`` or ``rank X``.
    route : {"left", "right", "rank_one"}, optional
        The search: null spaces of ``N`` on the left (``n = dH``) or on the right
        (``n = rank X``), or for ``k = 1`` the exact rank-one formula over the unit sphere of
        ``R^(rank X)``. Default: the smallest space (left or right).
    progress : bool
        Show a progress bar (tqdm, on stderr): the fraction of the search space closed and the
        current bounds.

    Returns
    -------
    GapProof

    Notes
    -----
    The branch-and-bound is exponential in the dimension of the search space: it is meant for
    small instances (``k = dH - 1`` or ``rank X - 1`` with few outputs, ``k = 1``, or a small
    Grassmannian). ``primal_lower`` is always valid: where the search ran out of time it is
    the lowest bound over the cells still open.

    Examples
    --------
    A 3 x 3 instance of the survey behind ``duallinear gaps`` (H = 2, k = 2, cond(X) = 100,
    gamma at 1% of the zero-network threshold) whose duality gap is not zero:

    >>> import duallinear as dl
    >>> from duallinear.survey import instance
    >>> proof = dl.prove_gap(instance(123, k=2, cond=100.0, frac=0.01))
    >>> proof.verdict, proof.route, bool(proof.primal_lower > proof.dual_upper)
    ('gap', 'left', True)
    >>> proof.dual.status  # solve_dual had pinned D* and flagged the rank signal
    'duality_gap'
    """
    started = time.perf_counter()
    check_problem(problem)
    time_limit = as_nonneg_scalar(time_limit, "time_limit")
    if time_limit == 0:
        raise ValueError("time_limit must be > 0")
    if rtol is not None:
        rtol = as_nonneg_scalar(rtol, "rtol")
    zero_tol = as_nonneg_scalar(zero_tol, "zero_tol")
    if isinstance(max_dimension, (bool, np.bool_)) or not isinstance(max_dimension,
                                                                     (int, np.integer)):
        raise TypeError(f"max_dimension must be an integer, got {max_dimension!r}")
    if max_dimension < 0:
        raise ValueError(f"max_dimension must be >= 0, got {max_dimension}")
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if route is not None and route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES} or None, got {route!r}")
    if route == "rank_one" and problem.k != 1:
        raise ValueError(f"route 'rank_one' needs k = 1, got k = {problem.k}")
    if dual is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dual = solve_dual(problem)
    else:
        check_dual(problem, dual)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecoveryWarning)
        rec = recover(problem, dual, tol=zero_tol)
    with one_blas_thread_for(problem.A.shape):
        return _prove(problem, dual, rec, time_limit, rtol, zero_tol, int(max_dimension),
                      route, bool(progress), started)


def _route_name(route) -> str:
    return "rank_one" if isinstance(route, RankOne) else "left" if route.left else "right"


def _prove(problem, dual, rec, time_limit, rtol, zero_tol, max_dimension, choice, progress,
           started):
    red = Reduced.of(problem)
    scale = red.a**2
    data = Data(red.A, red.s, red.rho, red.k, red.residual_sq)
    dH, r = red.A.shape
    rounding = allowance(red.zero_value + float(np.vdot(red.A, red.A))
                         + abs(dual.dual_upper) / scale, dH + r) * scale
    lower, upper = dual.value, min(dual.dual_upper, dual.upper_bound)
    weights, value = rec.weights, rec.value

    def result(verdict, primal_lower, route, message, dimension=0, search=None):
        gap = 0.0 if verdict == "zero" else (primal_lower - upper) / max(abs(value), 1e-300)
        return GapProof(
            verdict=verdict, primal_lower=primal_lower, primal_upper=value, weights=weights,
            dual_lower=lower, dual_upper=upper, relative_gap=gap, route=route,
            dimension=dimension, cells=search.cells if search else 0,
            subproblems=search.subproblems if search else 0,
            inner_iterations=search.inner_iterations if search else 0,
            covered=search.covered if search else 0.0, rounding=rounding,
            time=time.perf_counter() - started, message=message, dual=dual)

    if relative_gap(value, lower, problem.zero_value) <= zero_tol:
        # (A certificate can close to rounding, the dual value a few ulps above the objective.)
        return result("zero", min(lower, value), "certificate",
                      f"zero duality gap: the weights found are certified against the dual "
                      f"value to relative gap {relative_gap(value, lower, problem.zero_value):.1e}"
                      f" <= {zero_tol:.0e}")
    theorem = _zero_gap_theorem(problem)
    if theorem:
        return result("zero", lower, "theorem",
                      f"zero duality gap by theorem ({theorem}); numerically the weights are "
                      f"certified to relative gap "
                      f"{relative_gap(value, lower, problem.zero_value):.1e} only")
    options = routes(data)
    if choice is not None:
        chosen = [o for o in options if _route_name(o) == choice]
        if not chosen:
            raise ValueError(f"route {choice!r} does not apply here (k = {problem.k}; "
                             "'rank_one' needs k = 1)")
        options = chosen
    route = options[0]
    name = _route_name(route)
    if route.dim > max_dimension:
        return result("undecided", lower, "too_large",
                      f"undecided: the smallest search space (route {name!r}) has dimension "
                      f"{route.dim} > max_dimension = {max_dimension}; D* lies in "
                      f"[{lower:.10g}, {upper:.10g}], the best weights found reach "
                      f"{value:.10g}", route.dim)
    target = (upper + rounding) / scale
    prune_at = None if rtol is None else (lambda u: max(target, u - rtol * abs(u)))
    bar = _progress_bar(progress, route.dim)
    try:
        search = branch_and_bound(
            route, target, value / scale, time_limit=max(time_limit - (
                time.perf_counter() - started), 1e-3), prune_at=prune_at,
            progress=None if bar is None else _updater(bar, scale))
    finally:
        if bar is not None:
            bar.close()
    if search.N is not None and search.upper * scale < value:
        found = _weights_of(problem, red, search.N)
        found_value = objective(problem, found)
        if found_value < value:
            weights, value = found, found_value
    primal_lower = max(search.lower * scale, lower)
    if primal_lower > upper + rounding and math.isfinite(search.lower):
        verdict = "gap"
        message = (f"non-zero duality gap proved: P* >= {primal_lower:.10g} > "
                   f"D* <= {upper:.10g} (relative {(primal_lower - upper) / abs(value):.2e}); "
                   f"best weights found {value:.10g}; {search.cells} cells over a space of "
                   f"dimension {route.dim} (route {name!r})")
    elif relative_gap(value, lower, problem.zero_value) <= zero_tol:
        verdict, primal_lower = "zero", min(primal_lower, value)
        message = (f"zero duality gap: the search found weights certified to relative gap "
                   f"{relative_gap(value, lower, problem.zero_value):.1e}")
    else:
        verdict = "undecided"
        why = {"time": "the time limit was reached", "cells": "the cell limit was reached",
               "primal": "a primal point within the dual interval was found",
               "closed": "the bounds could not separate the optima"}[search.reason]
        message = (f"undecided ({why}): P* in [{primal_lower:.10g}, {value:.10g}], D* in "
                   f"[{lower:.10g}, {upper:.10g}]; {search.cells} cells, "
                   f"{100 * search.covered:.1f}% of the space closed")
    return result(verdict, primal_lower, name, message, route.dim, search)


def _zero_gap_theorem(problem: DeepLinearProblem) -> str:
    """The reason the gap is zero by theorem, or ``""``."""
    if problem.k >= min(problem.dH, problem.rank):
        return "the bottleneck is at least min(dH, rank X): the problem is convex"
    if problem.gamma == 0:
        return "gamma = 0 is reduced-rank regression (Eckart-Young)"
    if problem.is_whitened:
        return "whitened X: the closed form"
    return ""


def _weights_of(problem: DeepLinearProblem, red: Reduced, N: np.ndarray) -> list[np.ndarray]:
    """Balanced weights of the product ``M = N diag(s)^-1 U^T`` (``N`` in normalised units)."""
    M = ((N * red.a) / problem.s) @ problem.U.T
    return balanced_factors(M, problem.dims)


def _progress_bar(enabled: bool, dimension: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=100.0, desc=f"prove_gap (dim {dimension})", unit="%",
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f}% [{elapsed}] {postfix}")


def _updater(bar, scale: float):
    def update(covered: float, lower: float, upper: float) -> None:
        bar.n = 100.0 * covered
        bar.set_postfix_str(f"P* in [{lower * scale:.8g}, {upper * scale:.8g}]", refresh=False)
        bar.refresh()

    return update
