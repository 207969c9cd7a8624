"""Cost curve (issue 15, target 3): each stage as a multiple of one thin SVD of X, d = 250..4096.

    python benchmarks/cost_curve.py                          # d = 250, 500, 1000, 2000, 4096
    python benchmarks/cost_curve.py --sizes 250 500 1000     # the smaller ones only
    python benchmarks/cost_curve.py --cpu-time               # process CPU time, not wall clock
    python benchmarks/cost_curve.py --no-copy                # DeepLinearProblem(copy=False)

Instance (the wide family of ``benchmarks/wide.py``): X Gaussian (d, 2d), ``Y = W* X + 0.1 E``
with rank(W*) = 32, d0 = dH = d, H = 3, k = 32, gamma*H = 0.3 sqrt(d), tol 1e-10 for the dual
and the recovery. For each d the script times, in one process and one run, a thin SVD of X
(the reference, the one cost every method pays), then the three stages a user runs:
``DeepLinearProblem`` (the reduction of X), ``solve_dual`` and ``recover``. It prints each
stage's time as a multiple of the reference, the end-to-end multiple, the certified gaps, and
the peak memory of the stages as a multiple of the size of X and Y together: the process's
peak resident set (Linux ``VmHWM``, reset before
each size) less what it held before X and Y were made, so X and Y themselves count once.
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings

import numpy as np
import scipy.linalg
from common import add_blas_option, blas_limits, machine_line

import duallinear as dl


def instance(d: int, seed: int, rank: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    left, right = rng.standard_normal((d, rank)), rng.standard_normal((rank, d))
    W_star = (left / np.linalg.norm(left, 2)) @ (right / np.linalg.norm(right, 2))
    X = rng.standard_normal((d, 2 * d))
    return X, W_star @ X + 0.1 * rng.standard_normal((d, 2 * d))


def resident(field: str = "VmRSS") -> int:
    """Resident bytes of this process (``VmRSS``) or its peak (``VmHWM``); 0 off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> None:
    """Restart the peak resident set at the current one (Linux >= 4.0; else a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def timed(clock, func, *args, **kwargs):
    """``(result, seconds)`` of one call."""
    t0 = clock()
    out = func(*args, **kwargs)
    return out, clock() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4096])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--cpu-time", action="store_true",
                        help="process CPU time instead of wall clock")
    parser.add_argument("--no-copy", action="store_true",
                        help="DeepLinearProblem(..., copy=False): keep views of X and Y "
                             "instead of copies (saves their size)")
    add_blas_option(parser)
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(machine_line("cost_curve") + f", BLAS threads {args.blas_threads or 'default'}, "
          f"{'CPU time' if args.cpu_time else 'wall clock'}")
    print(f"# X Gaussian (d, 2d), Y = W* X + 0.1 E, rank(W*) = 32, H = 3, k = 32, "
          f"gamma*H = 0.3 sqrt(d), tol {args.tol:g}; stage times in thin SVDs of X"
          + ("; copy=False" if args.no_copy else ""))
    print(f"{'d':>5} {'SVD(X) [s]':>10} {'reduce':>7} {'dual':>7} {'recover':>7} {'total':>7} "
          f"{'iters':>5} {'dual gap':>9} {'rec. gap':>9} {'status':>10} {'peak/XY':>7}")
    with blas_limits(args.blas_threads):
        for d in args.sizes:
            gc.collect()
            reset_peak()
            before = resident()
            X, Y = instance(d, args.seed)
            t0 = clock()
            scipy.linalg.svd(X, full_matrices=False, check_finite=False)
            ref = clock() - t0
            gc.collect()
            reset_peak()  # the reference SVD's workspace is not the library's
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dl.ConvergenceWarning)
                warnings.simplefilter("ignore", dl.RecoveryWarning)
                problem, t_red = timed(clock, dl.DeepLinearProblem, X, Y, (32, 32),
                                       0.3 * np.sqrt(d) / 3, copy=not args.no_copy)
                dual, t_dual = timed(clock, dl.solve_dual, problem, tol=args.tol)
                rec, t_rec = timed(clock, dl.recover, problem, dual, tol=args.tol)
            peak = (resident("VmHWM") - before) / (X.nbytes + Y.nbytes)
            total = t_red + t_dual + t_rec
            print(f"{d:>5} {ref:>10.3f} {t_red / ref:>7.2f} {t_dual / ref:>7.2f} "
                  f"{t_rec / ref:>7.2f} {total / ref:>7.2f} {dual.iterations:>5} "
                  f"{dual.relative_gap:>9.1e} {rec.relative_gap:>9.1e} {dual.status:>10} "
                  f"{peak:>7.2f}", flush=True)
            del X, Y, problem, dual, rec
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
