"""Each primal refinement attempt of solve_dual("dr"): its certified gap, evaluations and cost.

Issue 15, target 1 (general X near the floor). On Gaussian X at d = 200 one refinement
attempt costs about as much as ten SVDs of ``A`` and most of a run that certifies at
iteration 2 is that attempt; on the instances that certify only later, the early attempts
end in a rank-k local minimum of the factored primal above the optimum (their ``upper``),
not in a certificate that is merely loose. This script shows both, attempt by attempt:

    python benchmarks/refine_attempts.py                       # d = 200, the slow instances
    python benchmarks/refine_attempts.py --refine-at 2 3 4 5 6 10 --seeds 0 1 2 3 4

It wraps the solver's (private) refinement to time it; the run itself is unchanged.
"""

from __future__ import annotations

import argparse
import time
import warnings

from common import add_blas_option, benchmark_instance, blas_limits, machine_line, svd_time

import duallinear as dl
from duallinear._dr import product


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["gaussian-square", "gaussian-2d"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--refine-at", type=int, nargs="+", default=[2, 3, 4, 5, 6, 10])
    parser.add_argument("--tol", type=float, default=1e-10)
    add_blas_option(parser)
    args = parser.parse_args()
    clock = time.process_time
    settings = dl.DRSettings(refine_at=tuple(args.refine_at))
    original = product.refine
    attempts: list[tuple[float, int, float, float, float]] = []

    def timed(*a, **kw):
        t0 = clock()
        out = original(*a, **kw)
        elapsed = clock() - t0
        if out is not None:
            # (best is None where no candidate was worth a certificate: Held.hopeless.)
            nan = float("nan")
            best = out.best
            attempts.append((nan if best is None else best.gap, out.evaluations,
                             nan if best is None else best.lower,
                             nan if best is None else best.upper, elapsed))
        return out

    print(machine_line("refine_attempts") + ", CPU time")
    print(f"# Gaussian Y, H = 3, k = d/5, gamma*H = 0.3 sqrt(d), tol = {args.tol:g}, "
          f"refine_at = {tuple(args.refine_at)}")
    print(f"{'X':>16} {'seed':>4} {'attempt':>7} {'gap':>9} {'evals':>5} {'lower':>16} "
          f"{'upper':>16} {'SVD-eq':>7}")
    product.refine = timed
    try:
        with blas_limits(args.blas_threads):
            for kind in args.kinds:
                for seed in args.seeds:
                    problem = benchmark_instance(kind, args.size, seed)
                    t_svd = svd_time(problem.A, clock=clock)
                    attempts.clear()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", dl.ConvergenceWarning)
                        t0 = clock()
                        res = dl.solve_dual(problem, tol=args.tol, settings=settings)
                        total = clock() - t0
                    for i, (gap, evals, lower, upper, spent) in enumerate(attempts, 1):
                        print(f"{kind:>16} {seed:>4} {i:>7} {gap:>9.2e} {evals:>5} "
                              f"{lower:>16.10f} {upper:>16.10f} {spent / t_svd:>7.1f}")
                    print(f"{kind:>16} {seed:>4} {'total':>7} {res.relative_gap:>9.2e} "
                          f"{'':>5} {res.status:>16} {res.iterations:>13} it "
                          f"{total / t_svd:>7.1f}", flush=True)
    finally:
        product.refine = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
