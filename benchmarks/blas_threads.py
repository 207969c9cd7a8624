"""What the library's own one-thread BLAS limit buys a user on default thread settings.

``solve_dual`` (and ``recover``, and each primal restart) run BLAS on one thread while
``min(dH, rank X) < SINGLE_THREAD_MAX_DIM`` (``duallinear._threads``). This script times
``solve_dual`` on Gaussian X (d x 2d), Gaussian Y, k = d/5, gamma*H = 0.3 sqrt(d), with the
BLAS pools left at their defaults (as a user would have them), twice: with that limit, and
with it switched off (``SINGLE_THREAD_MAX_DIM = 0``). Best of ``--repeats`` runs each.

Example
-------
    python benchmarks/blas_threads.py
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from common import machine_line
from threadpoolctl import threadpool_info

import duallinear as dl
from duallinear._threads import LIMIT_ENV


def best_time(problem: dl.DeepLinearProblem, repeats: int) -> tuple[float, dl.DualResult]:
    best, result = np.inf, None
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dl.ConvergenceWarning)
            t0 = time.perf_counter()
            result = dl.solve_dual(problem)
            best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400, 700])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    threads = sorted({lib["num_threads"] for lib in threadpool_info()
                      if lib["user_api"] == "blas" and lib.get("threading_layer") != "disabled"})
    print(machine_line("blas_threads") + f", default BLAS threads {threads}")
    warm = np.random.default_rng(1).standard_normal((20, 40))
    best_time(dl.DeepLinearProblem(warm, warm, (4, 4), 0.5), 1)
    print(f"{'d':>5} {'limit on [s]':>12} {'limit off [s]':>13} {'off / on':>9} {'iters':>6}")
    for d in args.sizes:
        rng = np.random.default_rng(0)
        X, Y = rng.standard_normal((d, 2 * d)), rng.standard_normal((d, 2 * d))
        problem = dl.DeepLinearProblem(X, Y, (d // 5, d // 5), 0.3 * np.sqrt(d) / 3)
        on, result = best_time(problem, args.repeats)
        os.environ[LIMIT_ENV] = "0"  # the library's documented opt-out
        try:
            off, _ = best_time(problem, args.repeats)
        finally:
            del os.environ[LIMIT_ENV]
        print(f"{d:5d} {on:12.4f} {off:13.4f} {off / on:9.2f} {result.iterations:6d}", flush=True)


if __name__ == "__main__":
    main()
