"""Cost of solve_dual("dr") in SVD-equivalents (issue 5, target 1).

One SVD-equivalent is the wall time of one full thin SVD of the reduced data ``A`` (shape
``(dH, r)``) in the same process, so the ratio is insensitive to the machine's speed. For
whitened X one SVD of A is the exact answer (MATH.md section 6), the floor of any method.

    python benchmarks/svd_equivalents.py                 # d = 200, X = I and Gaussian X
    python benchmarks/svd_equivalents.py --sizes 100 200 400 --seeds 0 1 2

Instance: Gaussian Y, H = 3, k = d/5, gamma*H = 0.3*sqrt(d); X is the identity or a Gaussian
(d, n) matrix with n = d ("square", the harder case) or n = 2d. Prints, for each instance, the
DR iterations, its certified relative gap, its time, the time of one SVD of A and the ratio,
the status (``duality_gap`` where DR pinned the dual optimum on an instance whose relaxation
is not tight) and the relative width ``(dual_upper - value) / value`` of its interval on D*.

The SVD of one ``A`` was seen to vary by 30% within a run (7.8 to 11.3 ms at d = 200), more
than the effects compared. ``SVD-eq`` divides by SVDs interleaved with the instance's own DR
runs, so a machine whose speed drifts between instances cancels out; ``SVD-eq*`` divides by
the fastest SVD of any ``A`` of that shape in the run (LAPACK's cost barely depends on the
entries), which is steady across instances but larger wherever the machine was slow during
an instance. Read the two together. The last lines summarise, per size, the Gaussian
instances without a duality gap in both units: their median and largest (issue 15, target 1:
median <= 10, none above 20).
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import time
import warnings

import numpy as np
from common import benchmark_instance, commit, svd_time
from threadpoolctl import threadpool_limits

import duallinear as dl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--kinds", nargs="+", default=["identity", "gaussian-square",
                                                        "gaussian-2d"])
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (0: library default)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by process CPU time instead of wall clock (with one BLAS "
                             "thread this is the work done, whatever else loads the machine)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each instance; the times are the shortest (default 3)")
    parser.add_argument("--against", nargs="+", metavar="FIELD=VALUE", default=None,
                        help="also run DRSettings(FIELD=VALUE, ..) on each instance, "
                             "interleaved with the defaults, and print its iterations, status "
                             "and time ratio (defaults / these), e.g. refine_on_rank=False")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    against = _settings(parser, args.against) if args.against else None
    clock = time.process_time if args.cpu_time else time.perf_counter
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# svd_equivalents: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.machine()}, {os.cpu_count()} cores (load {load}), duallinear "
          f"{dl.__version__} at {commit()}, BLAS threads {args.blas_threads or 'default'}, "
          f"{'CPU time' if args.cpu_time else 'wall clock'}, best of {args.repeats}")
    print(f"# Gaussian Y, H = 3, k = d/5, gamma*H = 0.3 sqrt(d), tol = {args.tol:g}")
    if against is not None:
        print(f"# against DRSettings({', '.join(args.against)}): its iterations, status and "
              "the ratio of the default's DR time to its time")
    print(f"{'X':>16} {'d':>5} {'seed':>4} {'iters':>6} {'cert. gap':>10} {'DR [s]':>9} "
          f"{'SVD(A) [s]':>10} {'SVD-eq':>8} {'SVD-eq*':>8} {'status':>11} {'D* width':>9}"
          + ("" if against is None else f" {'iters':>6} {'status':>11} {'ratio':>6}"))
    limits = threadpool_limits(args.blas_threads, user_api="blas") if args.blas_threads else None
    rows = []
    fastest: dict[tuple[int, int], float] = {}
    try:
        for d in args.sizes:
            for kind in args.kinds:
                for seed in args.seeds:
                    problem = benchmark_instance(kind, d, seed)
                    # Best of --repeats for both, interleaved (the SVD was always a best of
                    # 7; a single DR run against it overstated the ratio by the noise).
                    t_svd = t_dr = t_other = float("inf")
                    for _ in range(args.repeats):
                        t_svd = min(t_svd, svd_time(problem.A, clock=clock))
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", dl.ConvergenceWarning)
                            t0 = clock()
                            res = dl.solve_dual(problem, tol=args.tol)
                            t_dr = min(t_dr, clock() - t0)
                            if against is not None:
                                t0 = clock()
                                other = dl.solve_dual(problem, tol=args.tol, settings=against)
                                t_other = min(t_other, clock() - t0)
                    shape = problem.A.shape
                    fastest[shape] = min(fastest.get(shape, float("inf")), t_svd)
                    width = (res.dual_upper - res.value) / abs(res.value)
                    rows.append((kind, d, seed, res, t_dr, t_svd, shape, width))
                    # (SVD-eq* so far: the fastest SVD of this shape until now.)
                    print(f"{kind:>16} {d:>5} {seed:>4} {res.iterations:>6} "
                          f"{res.relative_gap:>10.1e} {t_dr:>9.4f} {t_svd:>10.5f} "
                          f"{t_dr / t_svd:>8.1f} {t_dr / fastest[shape]:>8.1f} "
                          f"{res.status:>11} {width:>9.1e}"
                          + ("" if against is None else f" {other.iterations:>6} "
                             f"{other.status:>11} {t_dr / t_other:>6.2f}"), flush=True)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    print("# SVD-eq* above used the fastest SVD of the shape up to that row; with the run's "
          "fastest:")
    for d in args.sizes:
        chosen = [row for row in rows if row[1] == d and row[0] != "identity"
                  and row[3].status != "duality_gap"]
        if not chosen:
            continue
        own = np.array([row[4] / row[5] for row in chosen])
        pooled = np.array([row[4] / fastest[row[6]] for row in chosen])
        print(f"# d = {d}: {len(chosen)} Gaussian instances without a duality gap; SVD-eq "
              f"median {np.median(own):.1f}, largest {own.max():.1f}; SVD-eq* median "
              f"{np.median(pooled):.1f}, largest {pooled.max():.1f} (reference "
              f"{1e3 * min(fastest[row[6]] for row in chosen):.2f} ms)")
    return 0


def _settings(parser: argparse.ArgumentParser, pairs: list[str]) -> dl.DRSettings:
    """``DRSettings`` with the ``FIELD=VALUE`` overrides (values read as Python literals)."""
    fields = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            parser.error(f"--against takes FIELD=VALUE, got {pair!r}")
        try:
            fields[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parser.error(f"--against {name}: {text!r} is not a Python literal")
    try:
        return dl.DRSettings(**fields)
    except (TypeError, ValueError) as err:
        parser.error(f"--against: {err}")
    raise AssertionError  # (parser.error exits)


if __name__ == "__main__":
    raise SystemExit(main())
