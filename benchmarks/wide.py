"""Wide layers (issue 5, target 3): d0 = dH = 2000, n = 4000, structured targets.

    python benchmarks/wide.py                      # d = 2000, tol 1e-8, leading triplets
    python benchmarks/wide.py --compare            # ... and the same solve with full SVDs
    python benchmarks/wide.py --d 500 --n 1000     # a smaller instance of the same family
    python benchmarks/wide.py --d 600 --n 1200 --unstructured --compare   # Y pure noise

Instance: Gaussian X (d, n); Y = W* X + E with W* of rank 20 (product of two Gaussian factors
scaled to unit spectral norm per factor) and E Gaussian with standard deviation 0.1; H = 3,
k = 20, gamma*H = 0.3 sqrt(d). Prints the time to build the problem (one SVD of X), the time of
one full SVD of A, and DR's iterations, time and certified relative gap (with how many proximal
maps used leading triplets instead of full SVDs), then the recovery.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from common import commit
from threadpoolctl import threadpool_limits

import duallinear as dl


def _dual(problem: dl.DeepLinearProblem, args: argparse.Namespace, partial: bool | None,
          t_svd: float, label: str) -> dl.DualResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        t0 = time.perf_counter()
        dual = dl.solve_dual(problem, tol=args.tol, max_iter=args.max_iter, partial_svd=partial)
        t_dr = time.perf_counter() - t0
    d = dual.diagnostics
    maps = (f"{d.maps_leading} of {d.maps_leading + d.maps_gram + d.maps_svd} proximal maps "
            f"from leading triplets" if d.partial_svd else "full SVDs")
    print(f"solve_dual (DR, {label:>7}) {t_dr:9.2f} s   ({t_dr / t_svd:.0f} SVD-equivalents), "
          f"{dual.iterations} iterations, certified gap {dual.relative_gap:.1e}, "
          f"converged {dual.converged}; {maps}", flush=True)
    return dual, t_dr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=2000)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--rank", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-8,
                        help="DR tolerance on the certified relative gap (target: 1e-8)")
    parser.add_argument("--compare", action="store_true",
                        help="also solve with full SVDs (partial_svd=False)")
    parser.add_argument("--unstructured", action="store_true",
                        help="Y is pure Gaussian noise (no W*): nothing for leading triplets")
    parser.add_argument("--blas-threads", type=int, default=0,
                        help="BLAS threads (0: library default)")
    args = parser.parse_args()
    if args.blas_threads:
        threadpool_limits(args.blas_threads, user_api="blas")
    rng = np.random.default_rng(args.seed)
    d, n = args.d, args.n
    left = rng.standard_normal((d, args.rank))
    right = rng.standard_normal((args.rank, d))
    W_star = (left / np.linalg.norm(left, 2)) @ (right / np.linalg.norm(right, 2))
    X = rng.standard_normal((d, n))
    Y = (rng.standard_normal((d, n)) if args.unstructured
         else W_star @ X + 0.1 * rng.standard_normal((d, n)))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# wide: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
          f"(load {load}), duallinear at {commit()}; d0 = dH = {d}, n = {n}, "
          + ("Y Gaussian noise (unstructured), " if args.unstructured
             else f"rank(W*) = {args.rank}, noise 0.1, ") + "H = 3, "
          f"k = 20, gamma*H = 0.3 sqrt(d), tol {args.tol:g}, "
          f"BLAS threads {args.blas_threads or 'default'}")
    t_start = t0 = time.perf_counter()
    problem = dl.DeepLinearProblem(X, Y, (20, 20), 0.3 * np.sqrt(d) / 3)
    print(f"problem (SVD of X)      {time.perf_counter() - t0:9.2f} s", flush=True)
    t_problem = time.perf_counter() - t_start
    t0 = time.perf_counter()
    np.linalg.svd(problem.A, full_matrices=False)
    t_svd = time.perf_counter() - t0
    print(f"one full SVD of A       {t_svd:9.2f} s", flush=True)
    dual, t_dr = _dual(problem, args, None, t_svd, "default")
    if args.compare:
        full, t_full = _dual(problem, args, False, t_svd, "full")
        print(f"full SVDs / default     {t_full / t_dr:9.1f} x   dual values differ by "
              f"{abs(full.value - dual.value) / abs(dual.value):.1e} (relative)")
    t0 = time.perf_counter()
    rec = dl.recover(problem, dual, tol=args.tol)
    t_rec = time.perf_counter() - t0
    print(f"recover                 {t_rec:9.2f} s   certified gap {rec.relative_gap:.1e}, "
          f"certified {rec.certified}")
    print(f"end to end (problem + DR + recover, without the reference SVD) "
          f"{t_problem + t_dr + t_rec:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
