"""Speed floor of the dual solvers: Douglas-Rachford against the CVXPY/SCS reference path.

For each size ``d`` one instance: ``X = I_d``, ``Y`` with i.i.d. standard Gaussian entries,
``H = 3`` (two hidden layers of width ``k``), ``gamma * H = 3``. Both solvers run on the same
problem object; the relative accuracy of each is measured against the closed form of the
whitened case (MATH.md section 6) as ``|value - P*| / |P*|``. The DR time is the best of
``--repeats`` runs (it is short); SCS runs once.

Examples
--------
    python benchmarks/dr_vs_cvxpy.py                      # d = 50 and d = 100
    python benchmarks/dr_vs_cvxpy.py --sizes 50           # the quick one
    nice python benchmarks/dr_vs_cvxpy.py --sizes 100 &   # SCS takes minutes here
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from common import add_blas_option, blas_limits, machine_line

import duallinear as dl

#: Bottleneck width used for each size (the issue's instances); other sizes use d // 5.
DEFAULT_K = {50: 10, 100: 20}


def instance(d: int, k: int, seed: int) -> dl.DeepLinearProblem:
    """``X = I``, Gaussian ``Y`` (d x d), ``H = 3`` with widths ``(k, k)``, ``gamma H = 3``."""
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((d, d))
    return dl.DeepLinearProblem(np.eye(d), Y, hidden=(k, k), gamma=1.0)


def run_dual(problem: dl.DeepLinearProblem, method: str, repeats: int) -> tuple[float, object]:
    """Best wall-clock time over ``repeats`` solves, and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dl.ConvergenceWarning)
            t0 = time.perf_counter()
            result = dl.solve_dual(problem, method=method)
            best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100],
                        help="values of d (default: 50 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="DR repetitions (best kept)")
    parser.add_argument("--skip-cvxpy", action="store_true", help="time DR only")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    add_blas_option(parser)
    args = parser.parse_args(argv)
    with blas_limits(args.blas_threads):
        return _run(args)


def _run(args: argparse.Namespace) -> list[dict]:
    print(machine_line("dr_vs_cvxpy") + f", BLAS threads {args.blas_threads or 'default'}")
    print("# X = I, Gaussian Y, H = 3, gamma*H = 3; accuracy = |value - closed form| / |closed "
          "form|")
    header = (f"{'d':>5} {'k':>4} {'method':>7} {'time [s]':>10} {'rel. accuracy':>14} "
              f"{'cert. gap':>10} {'iters':>7} {'converged':>9} {'SCS/DR':>9}")
    print(header)
    rows = []
    for d in args.sizes:
        k = DEFAULT_K.get(d, max(1, d // 5))
        problem = instance(d, k, args.seed)
        exact = dl.closed_form(problem)[0]
        methods = ["dr"] if args.skip_cvxpy else ["dr", "cvxpy"]
        times = {}
        for method in methods:
            elapsed, res = run_dual(problem, method, args.repeats if method == "dr" else 1)
            times[method] = elapsed
            row = dict(d=d, k=k, method=method, time=elapsed,
                       accuracy=abs(res.value - exact) / abs(exact),
                       certified_gap=float(res.relative_gap), iterations=int(res.iterations),
                       converged=bool(res.converged), status=str(res.status))
            rows.append(row)
            ratio = (f"{times['cvxpy'] / times['dr']:9.0f}" if method == "cvxpy"
                     else f"{'':>9}")
            print(f"{d:5d} {k:4d} {method:>7} {elapsed:10.4f} {row['accuracy']:14.2e} "
                  f"{row['certified_gap']:10.2e} {row['iterations']:7d} "
                  f"{str(row['converged']):>9} {ratio}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
