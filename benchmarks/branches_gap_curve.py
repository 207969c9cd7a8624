"""A whole gap-vs-B curve at d = 100: ``duallinear.branches.gap_curve`` for B = 1 .. rank.

Target: under 30 s on 2 cores for the curve from ``B = 1`` to ``rank M_cvx`` (one branch of
width ``k = 1`` per unit of rank, so every point before the last needs one dual solve of
the chain of bottleneck ``B``). Instances: Gaussian X (d x 2d) and X = I, Gaussian Y,
H = 3, ``gamma * H`` a fraction ``--frac`` of ``||Y X^T||_op`` (the zero network's
threshold). Each curve is timed twice: one point after the other, and with the points spread
over ``--jobs`` worker processes (``gap_curve(n_jobs=...)``, default 2: both cores). Prints,
per instance, the rank, both wall-clock times and the CPU time of the serial run (what it
costs on an otherwise idle core: on a shared machine the wall time also counts other jobs),
how many points were certified to
``tol``, the widest relative interval on ``P*(B)`` among the others, and the relative duality
gap at ``B = 1`` and at half the rank.

Example
-------
    python benchmarks/branches_gap_curve.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import add_blas_option, blas_limits, machine_line

import duallinear as dl
from duallinear import branches


def instance(d: int, x_kind: str, frac: float, seed: int) -> dl.DeepLinearProblem:
    rng = np.random.default_rng(seed)
    X = np.eye(d) if x_kind == "identity" else rng.standard_normal((d, 2 * d))
    Y = rng.standard_normal((d, X.shape[1]))
    gamma = frac * float(np.linalg.norm(Y @ X.T, 2)) / 3
    return dl.DeepLinearProblem(X, Y, (1, 1), gamma)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--fracs", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--x-kinds", nargs="+", default=["gaussian", "identity"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--jobs", type=int, default=2)
    add_blas_option(parser)
    args = parser.parse_args(argv)
    print(machine_line("branches_gap_curve"))
    print(f"{'X':>9} {'frac':>5} {'rank':>5} {'points':>6} {'serial s':>8} {'cpu s':>6} "
          f"{f'{args.jobs} jobs s':>9} "
          f"{'certified':>9} {'widest':>8} {'rel.gap B=1':>11} {'rel.gap B=rank/2':>16} "
          f"{'target':>7}")
    with blas_limits(args.blas_threads):
        for x_kind in args.x_kinds:
            for frac in args.fracs:
                problem = instance(args.d, x_kind, frac, args.seed)
                t0, c0 = time.perf_counter(), time.process_time()
                curve = branches.gap_curve(problem, tol=args.tol)
                serial, cpu = time.perf_counter() - t0, time.process_time() - c0
                t0 = time.perf_counter()
                again = branches.gap_curve(problem, tol=args.tol, n_jobs=args.jobs)
                seconds = time.perf_counter() - t0
                # the same solves in other processes: the same bounds up to BLAS rounding
                assert np.allclose(again.lower, curve.lower, rtol=1e-9)
                n = curve.branches.size
                widest = float(np.max((curve.upper - curve.lower) / curve.upper))
                print(f"{x_kind:>9} {frac:>5g} {curve.dual.rank:>5} {n:>6} {serial:>8.2f} "
                      f"{cpu:>6.2f} {seconds:>9.2f} "
                      f"{int(np.sum(curve.exact)):>4}/{n:<4} {widest:>8.1e} "
                      f"{curve.relative_gap[0]:>11.3e} "
                      f"{curve.relative_gap[n // 2]:>16.3e} "
                      f"{'met' if min(serial, seconds) < 30 else 'MISSED':>7}")


if __name__ == "__main__":
    main()
