r"""The convex dual: validation, dispatch to a solver route, and the result in user units.

In reduced coordinates ([(3)][eq-reduction] of the math page) the dual [(4)][eq-dual] reads

    maximise  D(Gamma) = 1/2 ||Y||^2 - 1/2 ||A - Gamma||_(k)^2   s.t.  ||Gamma diag(s)||_op <= rho,

i.e. minimise ``f(Gamma) + g(Gamma diag(s))`` with ``f(Gamma) = 1/2 ||A - Gamma||_(k)^2`` and
``g`` the indicator of the operator-norm ball of radius ``rho``. The routes live in
:mod:`duallinear._dr`: Douglas-Rachford on the singular values of ``A`` for whitened X, in a
product space for general X, and an SDP through CVXPY. They run in normalised units
(``||A||_op = s_max = 1``) and stop on the *certified* relative gap between the weights
recovered from the current iterate and its dual value.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable

import numpy as np

from ._dr import DRSettings, SDPSettings, check_solver, solve_dr, solve_sdp
from ._reduced import GAP_FLOOR, Reduced
from ._threads import one_blas_thread_for
from ._validation import as_nonneg_scalar, as_positive_int, check_callback
from .problem import DeepLinearProblem, check_chain
from .results import ConditioningWarning, ConvergenceWarning, DualResult

__all__ = ["solve_dual", "DUAL_METHODS", "DRSettings", "SDPSettings"]

DUAL_METHODS = ("dr", "cvxpy")


def solve_dual(
    problem: DeepLinearProblem,
    *,
    method: str = "dr",
    tol: float = 1e-10,
    max_iter: int = 5000,
    settings: DRSettings | SDPSettings | None = None,
    step: float | None = None,
    relaxation: float | None = None,
    solver: str | None = None,
    solver_options: dict | None = None,
    partial_svd: bool | None = None,
    primal_refine: bool | None = None,
    callback: Callable[[int, float], object] | None = None,
    blas_limit: bool = True,
) -> DualResult:
    """Solve the convex dual of the deep linear problem.

    Parameters
    ----------
    problem : DeepLinearProblem
    method : {"dr", "cvxpy"}
        ``"dr"``: Douglas-Rachford splitting on spectral proximal operators.
        ``"cvxpy"``: the semidefinite program through CVXPY (reference path).
    tol : float >= 0
        ``"dr"`` stops once the certified relative gap is at most ``tol``; ``tol = 0`` runs
        all ``max_iter`` iterations and reports ``converged=False``. Passed to the conic
        solver as its ``eps`` (SCS) for ``"cvxpy"`` unless ``solver_options`` sets it.
    max_iter : int
        Iteration cap for ``"dr"``.
    settings : DRSettings or SDPSettings, optional
        Every knob of the method's solver (:class:`~duallinear.DRSettings` for ``"dr"``,
        :class:`~duallinear.SDPSettings` for ``"cvxpy"``); the defaults carry the
        measurements behind them. The keywords below override the matching fields.
    step : float, optional
        DR step ``t`` in normalised units (default chosen from the data).
    relaxation : float in (0, 2), optional
        DR over-relaxation ``lam`` (default 1.5).
    solver : str, optional
        CVXPY solver name for ``"cvxpy"`` (default SCS).
    solver_options : dict, optional
        Extra keyword arguments for ``cvxpy.Problem.solve``.
    partial_svd : bool, optional
        ``"dr"`` on general X: replace the full SVDs inside the iteration by the leading
        singular triplets that the proximal maps change (warm-started subspace iteration,
        falling back to a full SVD when it cannot settle them). ``None`` (default) does so when
        ``min(dH, rank X) >= settings.partial_min_dim`` (1500). The stopping test stays exact:
        an estimate from the triplets only decides when to compute the certificate, whose dual
        value uses every singular value. Ignored for whitened X and for ``"cvxpy"``.
    primal_refine : bool, optional
        ``"dr"`` on general X (default True): at the 2nd, 10th and 70th iterations, until one
        succeeds, try a certificate through the primal: a local search on the factored rank-k
        problem started from the current iterate, and the dual point its optimality
        conditions give ([section 7][sec-dr] of the math page). It is certified like any
        other point; the message and ``diagnostics.refine_route`` say when it was used.
        ``False``: plain DR.
    callback : callable, optional
        ``"dr"``: ``callback(iteration, relative_gap)`` at every check of the certificate
        (every iteration for whitened X, every ``settings.check_every`` for general X, and
        after each refinement), with the number that goes into ``result.gaps``. Not called
        for ``"cvxpy"`` nor when no iteration is needed (``gamma = 0``, zero network optimal).
    blas_limit : bool
        ``"dr"`` runs BLAS on one thread while ``min(dH, rank X) < 1000`` (default);
        ``False`` keeps the caller's setting, as does ``DUALLINEAR_BLAS_LIMIT=0``.

    Returns
    -------
    DualResult
        ``value`` is always the dual objective at a feasible point, hence a valid lower bound
        on the primal optimum even when ``converged`` is False; ``dual_upper`` bounds the dual
        optimum from above (``value <= D* <= dual_upper``). On general X without a
        certificate by the 7th iteration, DR bounds ``D*`` from both sides and stops with
        status ``"duality_gap"`` once the interval meets ``tol`` while the relaxed minimiser
        has rank above ``k`` (``DRSettings(two_sided=False)``: run to a stall instead);
        :func:`duallinear.prove_gap` proves such a gap on small instances.

    Notes
    -----
    ``"dr"`` runs BLAS on one thread while ``min(dH, rank X) < 1000`` (process-wide, restored
    afterwards; measured 4.2x faster at d = 100 and 16x at d = 200 on two cores than the
    default threads). ``"cvxpy"`` needs the optional dependency CVXPY
    (``pip install "duallinear[cvxpy]"``).

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((6, 12)), rng.standard_normal((4, 12))
    >>> dual = dl.solve_dual(dl.DeepLinearProblem(X, Y, hidden=(2,), gamma=0.5))
    >>> dual.converged, dual.relative_gap <= 1e-10
    (True, True)
    """
    check_chain(problem)
    if method not in DUAL_METHODS:
        raise ValueError(f"method must be one of {DUAL_METHODS}, got {method!r}")
    tol = as_nonneg_scalar(tol, "tol")
    max_iter = as_positive_int(max_iter, "max_iter")
    dr = _dr_settings(settings if method == "dr" else None, step, relaxation, partial_svd,
                      primal_refine)
    sdp = _sdp_settings(settings if method == "cvxpy" else None, solver, solver_options)
    if settings is not None and not isinstance(settings, DRSettings if method == "dr"
                                               else SDPSettings):
        expected = "DRSettings" if method == "dr" else "SDPSettings"
        raise TypeError(f"settings for method {method!r} must be a {expected}, got "
                        f"{type(settings).__name__}")
    check_callback(callback)
    if not isinstance(blas_limit, (bool, np.bool_)):
        raise TypeError(f"blas_limit must be a bool, got {type(blas_limit).__name__}")
    if method == "cvxpy":
        check_solver(sdp.solver)

    with one_blas_thread_for(problem.A.shape, active=method == "dr" and bool(blas_limit)):
        red = Reduced.of(problem)
        t0 = time.perf_counter()
        if method == "dr":
            out = solve_dr(red, tol, max_iter, dr, whitened=problem.is_whitened,
                           callback=callback)
        else:
            out = solve_sdp(red, tol, sdp)
        budget = 1e-3 * tol * max(abs(out.upper), GAP_FLOOR * red.zero_value)
        kept = _kept_truncation(red, out.Gamma)
        rnd = red.rounding(out.Gamma, out.upper, budget)
        margin = _relative_second(red, out, rnd)
        if (method == "dr" and out.converged and tol > 0.0
                and red.gap(out.upper, out.lower) + margin > tol and margin < 0.5 * tol):
            # Certified for the rounded data but not with the rounding margin, which leaves
            # room: solve again to the tolerance that margin leaves (at most twice the work).
            again = solve_dr(red, tol - margin, max_iter, dr, whitened=problem.is_whitened)
            if again.converged:
                again.iterations += out.iterations
                kept = _kept_truncation(red, again.Gamma)
                out, rnd = again, red.rounding(again.Gamma, again.upper, budget)
        elapsed = time.perf_counter() - t0
        Gamma = out.Gamma * red.a
        Lambda = (Gamma * problem.s) @ problem.U.T
    # Bounds for the problem as given (the objective is never negative), and the gap of the
    # pair, where the first-order shift cancels.
    arithmetic = 16.0 * np.finfo(np.float64).eps * max(abs(out.lower), abs(out.upper))
    second = rnd.dual_second + rnd.primal_second + arithmetic
    lower = float(max(out.lower - rnd.first - rnd.dual_second - arithmetic, 0.0))
    upper = float(out.upper + rnd.first + rnd.primal_second + arithmetic)
    gap = float(red.gap(out.upper + second, out.lower)) if np.isfinite(second) else np.inf
    converged, status, message = out.converged, out.status, out.message
    needed = tol if method == "dr" else max(tol, sdp.certified)  # what the route accepted
    if converged and not (needed > 0.0 and gap <= needed):
        converged, status = False, "ill_conditioned"
        error = gap - red.gap(out.upper, out.lower)
        message += (f"; but rounding in the reduction of X (cond(X) = "
                    f"{problem.condition_number:.1e}, ||X - U S V^T||_F <= "
                    f"{problem.rounding:.1e}) can move the bounds by {error:.1e} (relative): "
                    f"for the problem as given the certified relative gap is {gap:.2e} > "
                    f"{needed:.1e}, the accuracy float64 attains here (better conditioned inputs, "
                    "e.g. rescaled or fewer near-dependent features, would reach further)")
    result = DualResult(
        method=method, Lambda=Lambda, Gamma=Gamma, value=lower * red.a**2,
        converged=converged, iterations=out.iterations, message=message, time=elapsed,
        upper_bound=upper * red.a**2, relative_gap=gap, status=status,
        residuals=np.asarray(out.residuals), gaps=np.asarray(out.gaps),
        diagnostics=out.diagnostics, float_value=out.lower * red.a**2,
        rounding=(rnd.first * red.a**2, (rnd.dual_second + arithmetic) * red.a**2),
        fingerprint=problem.fingerprint,
        # D* of the data as given: the float64 bound plus the primal side's rounding margin.
        dual_upper=(out.dual_upper + rnd.first + rnd.primal_second + arithmetic) * red.a**2,
    )
    if rnd.M is not None:
        object.__setattr__(result, "_rounding_detail", rnd)
    if kept is not None:
        object.__setattr__(result, "_truncation", (kept[0], kept[1] * red.a, kept[2]))
    if not result.converged:
        what = ("stopped on a duality gap" if result.status == "duality_gap"
                else "did not converge")
        category = ConditioningWarning if status == "ill_conditioned" else ConvergenceWarning
        warnings.warn(f"solve_dual({method!r}) {what}: {result.message}", category,
                      stacklevel=2)
    return result


def _kept_truncation(red: Reduced, Gamma: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The k leading triplets of ``A - Gamma`` (normalised units) when the route left that
    decomposition at hand (the rounding bound releases it): ``recover`` reuses them."""
    if not red.knows(Gamma):
        return None
    U, sv, Vt = red._last[1]  # (what knows() just matched)
    k = min(red.k, sv.size)
    return U[:, :k], sv[:k], Vt[:k]


def _relative_second(red: Reduced, out, rnd) -> float:
    """The second-order rounding term relative to the gap's denominator."""
    second = rnd.dual_second + rnd.primal_second
    if not np.isfinite(second):
        return float("inf")
    return red.gap(out.upper + second, out.lower) - red.gap(out.upper, out.lower)


def _dr_settings(settings: object, step: object, relaxation: object, partial_svd: object,
                 primal_refine: object) -> DRSettings:
    """``settings`` (or the defaults) with the given keywords in place (validated)."""
    base = settings if isinstance(settings, DRSettings) else DRSettings()
    changes: dict[str, object] = {}
    if step is not None:
        step = as_nonneg_scalar(step, "step")
        if step == 0.0:
            raise ValueError("step must be > 0")
        changes["step"] = step
    if relaxation is not None:
        changes["relaxation"] = as_nonneg_scalar(relaxation, "relaxation")
    if partial_svd is not None:
        changes["partial_svd"] = partial_svd
    if primal_refine is not None:
        changes["primal_refine"] = primal_refine
    return dataclasses.replace(base, **changes) if changes else base


def _sdp_settings(settings: object, solver: object, solver_options: object) -> SDPSettings:
    base = settings if isinstance(settings, SDPSettings) else SDPSettings()
    changes: dict[str, object] = {}
    if solver is not None:
        changes["solver"] = solver
    if solver_options is not None:
        changes["solver_options"] = solver_options
    return dataclasses.replace(base, **changes) if changes else base
