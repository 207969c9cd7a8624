"""How tight the certified lower bounds for weight decay at H >= 3 are on general X.

Instances: Gaussian X (d x 2d), Gaussian Y, one chain of bottleneck k, weight decay
``gamma sum ||W||_F^2``. For each, ``duallinear.solve`` gives the upper bound (L-BFGS from the
best bound minimiser plus random restarts) and the combined lower bound; the script also
prints the families it combines, and the chord bound with the bound on ``sigma_1(M*)``
used in the first prototype (``||Y_hat||_F / s_min(X)``), as relative gaps to the upper bound
``(upper - bound) / upper``.

Example
-------
    python benchmarks/weight_decay_bounds.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import add_blas_option, blas_limits, machine_line

import duallinear as dl
from duallinear import branches


def chord_with(problem: dl.DeepLinearProblem, T: float) -> float:
    """The chord bound at a given T: the dual of the Schatten chain with rho' = rho T^(p-1)."""
    p = 2.0 / problem.depth
    rho = problem.rho * T ** (p - 1.0)
    chain = dl.DeepLinearProblem.from_statistics(
        (problem.U * problem.s**2) @ problem.U.T, (problem.A * problem.s) @ problem.U.T,
        problem.y_norm_sq, (problem.K,) * (problem.depth - 1), rho / problem.depth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        return dl.solve_dual(chain).value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.1, 0.5, 2.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=8)
    add_blas_option(parser)
    args = parser.parse_args(argv)
    print(machine_line("weight_decay_bounds"))
    print(f"d = {args.d}, k = {args.k}, Gaussian X (d x 2d); relative gap (upper - bound) / upper")
    print(f"{'H':>2} {'gamma':>6} {'seed':>4} {'upper':>12} {'chord(first T)':>14} "
          f"{'chord':>8} {'comparison':>10} {'combined':>9} {'seconds':>8}")
    worst = {}
    with blas_limits(args.blas_threads):
        for H in args.depths:
            for gamma in args.gammas:
                for seed in range(args.seeds):
                    rng = np.random.default_rng(seed)
                    X = rng.standard_normal((args.d, 2 * args.d))
                    Y = rng.standard_normal((args.d, 2 * args.d))
                    problem = dl.DeepLinearProblem(X, Y, (args.k,) * (H - 1), gamma,
                                                   penalty="frobenius")
                    t0 = time.perf_counter()
                    sol = dl.solve(problem, restarts=args.restarts, seed=seed)
                    seconds = time.perf_counter() - t0
                    bound = branches.weight_decay_lower_bound(problem, upper=sol.upper)
                    first_T = np.linalg.norm(problem.A) / problem.s[-1]
                    rel = {name: (sol.upper - v) / sol.upper for name, v in (
                        ("first", chord_with(problem, first_T)), ("chord", bound.chord),
                        ("comparison", bound.comparison), ("combined", sol.lower))}
                    for name, v in rel.items():
                        worst[name] = max(worst.get(name, 0.0), v)
                    print(f"{H:>2} {gamma:>6g} {seed:>4} {sol.upper:>12.6f} "
                          f"{rel['first']:>14.2e} {rel['chord']:>8.2e} "
                          f"{rel['comparison']:>10.2e} {rel['combined']:>9.2e} {seconds:>8.2f}")
    print("largest relative gap: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
