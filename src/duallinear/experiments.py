"""Data generators and single points of the benchmark sweeps (pure functions).

Everything here returns plain dicts of numbers and strings, one per point, so that the
command line (:mod:`duallinear.cli`) and the scripts in ``benchmarks/`` can write them to CSV
and plot them. Nothing here prints or imports matplotlib.

The paper's experiment (its Appendix A.2) is ``H = 3``, ``X = I`` and a Gaussian ``Y``; the
widths and ``gamma`` are ours (``hidden = (d/2, d/2)``, ``gamma = 0.1`` by default) and can be
swept.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ._optional import require
from .certificates import closed_form, relative_gap
from .dual import solve_dual
from .primal import end_to_end, solve_primal
from .problem import DeepLinearProblem
from .recovery import recover
from .results import ConvergenceWarning, RecoveryWarning

__all__ = [
    "X_KINDS",
    "make_data",
    "make_problem",
    "product",
    "gap_point",
    "speed_point",
    "warm_up",
    "hitting_point",
    "sweep",
]

X_KINDS = ("identity", "gaussian", "rank-deficient", "ill-conditioned")

#: Condition number of the "ill-conditioned" inputs.
ILL_CONDITION = 1e3


def make_data(d0: int, dH: int, x_kind: str = "identity", seed: int = 0,
              n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``X`` of shape ``(d0, n)`` of the given kind and Gaussian targets ``(dH, n)``.

    Parameters
    ----------
    d0, dH : int
        Input and output dimensions.
    x_kind : {"identity", "gaussian", "rank-deficient", "ill-conditioned"}
        ``identity``: ``X = I`` (``n = d0``, the paper's setting). ``gaussian``: i.i.d.
        standard normal, full row rank. ``rank-deficient``: a Gaussian matrix of rank
        ``max(1, d0 // 2)``. ``ill-conditioned``: singular values log-spaced from 1 to
        ``1 / ILL_CONDITION`` between random orthonormal bases.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same data.
    n : int, optional
        Number of samples for the non-identity kinds (default ``2 d0``).
    """
    if x_kind not in X_KINDS:
        raise ValueError(f"x_kind must be one of {X_KINDS}, got {x_kind!r}")
    rng = np.random.default_rng(seed)
    if x_kind == "identity":
        n = d0
        X = np.eye(d0)
    else:
        n = 2 * d0 if n is None else n
        if x_kind == "gaussian":
            X = rng.standard_normal((d0, n))
        elif x_kind == "rank-deficient":
            r = max(1, d0 // 2)
            X = rng.standard_normal((d0, r)) @ rng.standard_normal((r, n)) / np.sqrt(r)
        else:
            m = min(d0, n)
            Q1, _ = np.linalg.qr(rng.standard_normal((d0, m)))
            Q2, _ = np.linalg.qr(rng.standard_normal((n, m)))
            X = (Q1 * np.logspace(0.0, -np.log10(ILL_CONDITION), m)) @ Q2.T
    Y = rng.standard_normal((dH, n))
    return X, Y


def make_problem(d: int, *, depth: int = 3, width: int | None = None,
                 width_frac: float = 0.5, gamma: float = 0.1, x_kind: str = "identity",
                 seed: int = 0) -> DeepLinearProblem:
    """A square instance ``d0 = dH = d`` with all hidden widths equal.

    The width is ``width`` if given, else ``max(1, round(width_frac * d))``.
    """
    w = width if width is not None else max(1, int(round(width_frac * d)))
    X, Y = make_data(d, d, x_kind, seed)
    return DeepLinearProblem(X, Y, (w,) * (depth - 1), gamma)


def product(weights: Sequence[np.ndarray]) -> np.ndarray:
    """End-to-end matrix ``W_H .. W_1`` (shape ``(dH, d0)``): :func:`duallinear.end_to_end`."""
    return end_to_end(weights)


def _quiet(func: Callable, *args, **kwargs):
    """Call a solver with its convergence warnings silenced (the results carry the flags)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RecoveryWarning)
        # CVXPY's own note on an inexact solve: the status is recorded in the row instead
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        return func(*args, **kwargs)


def _describe(problem: DeepLinearProblem, d: int, x_kind: str, seed: int) -> dict:
    return {"d": d, "x_kind": x_kind, "seed": seed, "depth": problem.depth,
            "width": problem.k, "gamma": problem.gamma}


# -------------------------------------------------------------------------------- gap
def gap_point(d: int, *, depth: int = 3, width: int | None = None, width_frac: float = 0.5,
              gamma: float = 0.1, x_kind: str = "identity", seed: int = 0, restarts: int = 5,
              primal_tol: float = 1e-10, dual_tol: float = 1e-12) -> dict:
    """Primal (best of ``restarts``) vs dual vs recovered weights on one instance.

    Returns
    -------
    dict
        ``primal_value``, ``dual_value`` (certified lower bound), ``recovered_value``,
        ``closed_form_value`` (NaN unless X is whitened), ``relative_gap``
        (``(primal - dual) / primal``), ``recovered_gap`` (``(recovered - dual) / recovered``),
        ``product_distance`` (``||M_primal - M_recovered||_F / ||M_recovered||_F`` with
        ``M = W_H..W_1``; NaN when the recovered product is zero), the convergence flags and
        the times in seconds.
    """
    problem = make_problem(d, depth=depth, width=width, width_frac=width_frac, gamma=gamma,
                           x_kind=x_kind, seed=seed)
    primal = _quiet(solve_primal, problem, restarts=restarts, seed=seed, tol=primal_tol)
    dual = _quiet(solve_dual, problem, tol=dual_tol)
    t0 = time.perf_counter()
    rec = _quiet(recover, problem, dual, tol=1e-10)
    t_rec = time.perf_counter() - t0
    M_rec = product(rec.weights)
    norm_rec = float(np.linalg.norm(M_rec))
    dist = (float(np.linalg.norm(product(primal.weights) - M_rec)) / norm_rec
            if norm_rec > 0 else float("nan"))
    cf = closed_form(problem).value if problem.is_whitened else float("nan")
    zero = problem.zero_value
    return {
        **_describe(problem, d, x_kind, seed),
        "restarts": restarts,
        "primal_value": primal.value,
        "dual_value": dual.value,
        "recovered_value": rec.value,
        "closed_form_value": cf,
        "relative_gap": relative_gap(primal.value, dual.value, zero),
        "recovered_gap": relative_gap(rec.value, dual.value, zero),
        "product_distance": dist,
        "primal_converged": bool(primal.converged),
        "dual_converged": bool(dual.converged),
        "recovery_repaired": bool(rec.repaired),
        "primal_time": primal.time,
        "dual_time": dual.time,
        "recover_time": t_rec,
    }


# ------------------------------------------------------------------------------ speed
def speed_point(d: int, *, depth: int = 3, width: int | None = None, width_frac: float = 0.2,
                gamma: float = 1.0, x_kind: str = "identity", seed: int = 0,
                restarts: int = 3, cvxpy_budget: float | None = 60.0,
                run_cvxpy: bool = True) -> dict:
    """Time and accuracy of DR, CVXPY/SCS and primal restarts on the same instance.

    Accuracy is the relative error ``|value - reference| / |reference|`` against the closed
    form when X is whitened, else against the DR dual value (a certified lower bound).
    ``cvxpy_budget`` (seconds) is passed to SCS as ``time_limit_secs``; a run that used it up
    is marked ``cvxpy_over_budget``. ``run_cvxpy=False`` skips CVXPY (fields NaN, status
    ``"skipped"``).
    """
    problem = make_problem(d, depth=depth, width=width, width_frac=width_frac, gamma=gamma,
                           x_kind=x_kind, seed=seed)
    dr = _quiet(solve_dual, problem, tol=1e-10)
    reference = closed_form(problem).value if problem.is_whitened else dr.value

    def err(v: float) -> float:
        return abs(v - reference) / max(abs(reference), 1e-300)

    row = {**_describe(problem, d, x_kind, seed), "reference": reference,
           "dr_time": dr.time, "dr_value": dr.value, "dr_error": err(dr.value),
           "dr_certified_gap": dr.relative_gap, "dr_iterations": dr.iterations,
           "dr_converged": bool(dr.converged)}
    if run_cvxpy:
        options = {} if cvxpy_budget is None else {"time_limit_secs": float(cvxpy_budget)}
        t0 = time.perf_counter()
        cv = _quiet(solve_dual, problem, method="cvxpy", tol=1e-8, solver_options=options)
        wall = time.perf_counter() - t0
        over = cvxpy_budget is not None and (wall >= cvxpy_budget or "time" in cv.status.lower()
                                             or not cv.converged and wall >= 0.9 * cvxpy_budget)
        row.update(cvxpy_time=wall, cvxpy_value=cv.value, cvxpy_error=err(cv.value),
                   cvxpy_status=cv.status, cvxpy_over_budget=bool(over))
    else:
        row.update(cvxpy_time=float("nan"), cvxpy_value=float("nan"),
                   cvxpy_error=float("nan"), cvxpy_status="skipped", cvxpy_over_budget=False)
    primal = _quiet(solve_primal, problem, restarts=restarts, seed=seed, tol=1e-8)
    row.update(primal_time=primal.time, primal_value=primal.value,
               primal_error=err(primal.value), primal_restarts=restarts,
               cvxpy_over_dr=row["cvxpy_time"] / dr.time if dr.time > 0 else float("nan"),
               primal_over_dr=primal.time / dr.time if dr.time > 0 else float("nan"))
    return row


def warm_up(*, x_kind: str = "identity", cvxpy: bool = True) -> None:
    """Solve one tiny instance with each solver of :func:`speed_point`, untimed.

    The first CVXPY solve of a process pays for ``import cvxpy`` and its first problem
    compilation: 0.64 s at d = 10 against 0.14 s warm, which inflated the first ratio of the
    ``speed`` sweep. Run this once before timing.
    """
    problem = make_problem(4, depth=3, width=1, gamma=1.0, x_kind=x_kind)
    _quiet(solve_dual, problem, tol=1e-10)
    if cvxpy:
        _quiet(solve_dual, problem, method="cvxpy", tol=1e-6)
    _quiet(solve_primal, problem, restarts=1, seed=0, tol=1e-8)


# ---------------------------------------------------------------------------- hitting
def hitting_point(width: int, *, depth: int = 3, gamma: float = 0.5, method: str = "gd",
                  d: int = 10, x_kind: str = "identity", data_seed: int = 0,
                  seeds: Iterable[int] = range(100), rtol: float = 1e-6,
                  tol: float = 1e-8, max_iter: int | None = None) -> dict:
    """How often one local search from a random start reaches the certified optimum.

    The optimum comes from the dual (DR + recovery, certified); a run *hits* when its final
    objective is within ``rtol`` (relative) of the dual value. Each seed is one restart of
    ``solve_primal(method=method, seed=seed)`` on the same data.
    """
    problem = make_problem(d, depth=depth, width=width, gamma=gamma, x_kind=x_kind,
                           seed=data_seed)
    dual = _quiet(solve_dual, problem, tol=1e-12)
    rec = _quiet(recover, problem, dual, tol=1e-10)
    optimum = dual.value
    seeds = list(seeds)
    hits = converged = 0
    worst = best = None
    t0 = time.perf_counter()
    for s in seeds:
        res = _quiet(solve_primal, problem, restarts=1, method=method, seed=s, tol=tol,
                     max_iter=max_iter)
        rel = relative_gap(res.value, optimum, problem.zero_value)
        hits += rel <= rtol
        converged += bool(res.converged)
        worst = rel if worst is None else max(worst, rel)
        best = rel if best is None else min(best, rel)
    return {
        **_describe(problem, d, x_kind, data_seed),
        "method": method, "runs": len(seeds), "hits": int(hits),
        "hit_rate": hits / len(seeds) if seeds else float("nan"),
        "converged_runs": int(converged), "optimum": optimum,
        "certified_gap": rec.relative_gap, "rtol": rtol,
        "best_relative_gap": best, "worst_relative_gap": worst,
        "time": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------------ sweep
def sweep(func: Callable[..., dict], points: Sequence[dict], *, n_jobs: int | None = 1,
          callback: Callable[[dict], None] | None = None) -> list[dict]:
    """Evaluate ``func(**p)`` for every ``p`` in ``points``, in order.

    ``n_jobs > 1`` (or -1) runs points in parallel with joblib; ``callback`` is called with
    each finished row (e.g. to advance a progress bar).
    """
    rows: list[dict] = []
    if n_jobs is None or n_jobs == 1:
        for p in points:
            rows.append(func(**p))
            if callback is not None:
                callback(rows[-1])
        return rows
    joblib = require("joblib", "parallel points (n_jobs)")
    for row in joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
            joblib.delayed(func)(**p) for p in points):
        rows.append(row)
        if callback is not None:
            callback(row)
    return rows
