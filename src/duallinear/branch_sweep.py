"""The ``duallinear branches`` command: the duality gap and local search against B.

For every ``(x_kind, penalty, H)`` and ``B = 1 .. max`` branches of one width, one row:

* ``lower``, ``upper``: the certified interval on ``P*(B)`` from :func:`duallinear.solve`;
* ``dual_lower``, ``dual_upper``: the output-coupled dual (``D_oc = P_cvx`` for the Schatten
  penalty, the same for every ``B``; vacuous, ``1/2 ||Y - A V^T||^2``, for weight decay at
  ``H >= 3``), and ``relative_gap = (upper - dual_lower) / upper``, an upper bound on the
  relative duality gap (the paper's Theorem-1 quantity, here exact);
* ``hit_rate``: the fraction of single L-BFGS runs from random starts that end within
  ``rtol`` of the certified optimum (of the best value found where the interval is open).

This module is the edge (it writes files and imports matplotlib); the mathematics is in
:mod:`duallinear.branches`.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from .branches import output_coupled_dual, solve
from .certificates import relative_gap
from .experiments import make_data, sweep
from .primal import solve_primal
from .problem import PENALTIES, DeepLinearProblem
from .results import ConvergenceWarning

__all__ = ["branch_point", "add_parser", "run", "plot_branches", "X_KINDS"]

#: Inputs swept by default: whitened (closed forms) and Gaussian (d x 2d).
X_KINDS = ("identity", "gaussian")


def _problem(d: int, x_kind: str, penalty: str, H: int, B: int, width: int, gamma: float,
             seed: int) -> DeepLinearProblem:
    X, Y = make_data(d, d, x_kind, seed)
    return DeepLinearProblem(X, Y, (width,) * (H - 1), gamma, branches=B, penalty=penalty)


def branch_point(*, d: int, x_kind: str, penalty: str, H: int, B: int, width: int = 1,
                 gamma: float = 0.5, seed: int = 0, runs: int = 10, rtol: float = 1e-6,
                 restarts: int = 4, max_iter: int | None = None) -> dict:
    """One row of the sweep (see the module docstring for the columns)."""
    problem = _problem(d, x_kind, penalty, H, B, width, gamma, seed)
    t0 = time.perf_counter()
    sol = solve(problem, restarts=restarts, seed=seed)
    t_solve = time.perf_counter() - t0
    dual = output_coupled_dual(problem)
    values = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for run in range(runs):
            res = solve_primal(problem, restarts=1, seed=1000 + run, max_iter=max_iter)
            values.append(res.value)
    t_runs = time.perf_counter() - t0
    zero = problem.zero_value
    reference = sol.lower if sol.exact else min([sol.upper, *values])
    hits = sum(relative_gap(v, reference, zero) <= rtol for v in values)
    return {
        "x_kind": x_kind, "penalty": penalty, "H": H, "B": B, "width": width, "K": problem.K,
        "d": d, "gamma": gamma, "seed": seed,
        "lower": sol.lower, "upper": sol.upper, "exact": sol.exact,
        "interval": sol.relative_gap,
        "dual_lower": dual.lower, "dual_upper": dual.upper, "dual_vacuous": dual.vacuous,
        "cvx_rank": -1 if dual.rank is None else dual.rank,
        "relative_gap": relative_gap(sol.upper, dual.lower, zero),
        "lower_route": sol.lower_route.split(" (")[0],
        "runs": runs, "hits": int(hits), "hit_rate": hits / runs if runs else float("nan"),
        "hit_reference": "certified optimum" if sol.exact else "best value found",
        "best_run": min(values) if values else float("nan"),
        "solve_time": t_solve, "runs_time": t_runs,
    }


# ---------------------------------------------------------------------- command line
def add_parser(sub, common: Callable[[argparse.ArgumentParser], None],
               depths: Callable[[str], list[int]], positive_int: Callable[[str], int],
               positive_float: Callable[[str], float],
               nonneg_float: Callable[[str], float]) -> None:
    """Register the ``branches`` subcommand (the argument types come from :mod:`cli`)."""
    p = sub.add_parser("branches", help="duality gap and hitting rate of local search against "
                                        "the number of branches, both penalties",
                       description="The relative duality gap of the output-coupled dual and the "
                                   "hitting rate of one L-BFGS run against the number of "
                                   "branches B, for both penalties and depths 2-4. Without "
                                   "--x-kind: X = I and Gaussian X, both swept.")
    common(p)
    p.set_defaults(x_kind=",".join(X_KINDS))
    p.add_argument("--d", type=positive_int, default=10, help="d0 = dH (default 10)")
    p.add_argument("--depth", type=depths, default=[2, 3, 4], help="depths H (default 2,3,4)")
    p.add_argument("--max-branches", type=positive_int, default=None,
                   help="largest B (default d: past rank M_cvx the Schatten gap is zero)")
    p.add_argument("--width", type=positive_int, default=1,
                   help="hidden width of every branch (default 1)")
    p.add_argument("--gamma", type=nonneg_float, default=0.5, help="gamma (default 0.5)")
    p.add_argument("--penalties", type=_penalties, default=list(PENALTIES),
                   help="comma-separated subset of schatten,frobenius (default both)")
    p.add_argument("--runs", type=positive_int, default=20,
                   help="single L-BFGS runs per point for the hitting rate (default 20)")
    p.add_argument("--rtol", type=positive_float, default=1e-6,
                   help="relative tolerance of a hit (default 1e-6)")
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")


def _penalties(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in PENALTIES for v in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(PENALTIES)}, got {text!r}")
    return values


def run(args: argparse.Namespace, out: Path, *,
        write_csv: Callable[[Path, Sequence[dict]], None], progress: Callable) -> int:
    """Run the sweep, write ``branches.csv`` and ``branches.png``, print a table."""
    x_kinds, penalties = args.x_kind.split(","), args.penalties
    runs, max_iter = args.runs, None
    if args.quick:
        args.d, args.depth, args.max_branches, runs, max_iter = 4, [2, 3], 3, 3, 2000
    max_b = args.max_branches or args.d
    points = [dict(d=args.d, x_kind=x, penalty=pen, H=H, B=B, width=args.width,
                   gamma=args.gamma, seed=args.seed, runs=runs, rtol=args.rtol,
                   max_iter=max_iter)
              for x, pen, H, B in itertools.product(x_kinds, penalties, args.depth,
                                                     range(1, max_b + 1))]
    with progress(len(points), "branches", args.no_progress) as bar:
        rows = sweep(branch_point, points, n_jobs=args.jobs, callback=lambda _: bar.update())
    write_csv(out / "branches.csv", rows)
    plot_branches(rows, out / "branches.png")
    print(f"{'X':>8} {'penalty':>9} {'H':>2} {'B':>3} {'lower':>14} {'upper':>14} "
          f"{'interval':>9} {'rel.gap':>9} {'hits':>7}  lower bound")
    for r in rows:
        print(f"{r['x_kind']:>8} {r['penalty']:>9} {r['H']:>2} {r['B']:>3} "
              f"{r['lower']:>14.8g} {r['upper']:>14.8g} {r['interval']:>9.1e} "
              f"{r['relative_gap']:>9.2e} {r['hits']:>3}/{r['runs']:<3}  {r['lower_route']}")
    print(f"d = {args.d}, width {args.width} per branch, gamma = {args.gamma:g}; rel.gap: "
          "(upper - output-coupled dual) / upper; interval: (upper - lower) / upper")
    print(f"wrote {out / 'branches.csv'} and {out / 'branches.png'}")
    return 0


def plot_branches(rows: Sequence[dict], path: Path) -> None:
    """Relative duality gap and hitting rate against B, one panel per (penalty, x_kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["penalty"], r["x_kind"]) for r in rows})
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7), squeeze=False)
    for j, (penalty, x_kind) in enumerate(panels):
        top, bottom = axes[0][j], axes[1][j]
        for H in sorted({r["H"] for r in rows}):
            sel = sorted((r for r in rows if (r["penalty"], r["x_kind"], r["H"]) ==
                          (penalty, x_kind, H)), key=lambda r: r["B"])
            if not sel:
                continue
            B = [r["B"] for r in sel]
            gap = [max(r["relative_gap"], 1e-17) for r in sel]
            line, = top.semilogy(B, gap, "o-", label=f"H={H}")
            width = [max(r["interval"], 1e-17) for r in sel]
            if max(width) > 1e-8:
                top.semilogy(B, width, "x:", color=line.get_color(),
                             label=f"H={H}: interval (upper - lower) / upper")
            bottom.plot(B, [r["hit_rate"] for r in sel], "o-", label=f"H={H}")
        top.set_title(f"{penalty}, X {x_kind}", fontsize=9)
        top.set_xlabel("branches B")
        top.set_ylabel("(P*(B) - output-coupled dual) / P*(B)")
        top.legend(fontsize=7)
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_xlabel("branches B")
        bottom.set_ylabel("hitting rate of one L-BFGS run")
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

