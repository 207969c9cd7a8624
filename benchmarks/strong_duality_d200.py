"""Evidence of a non-zero duality gap on square Gaussian X at d = 200 (see docs/math.md).

    python benchmarks/strong_duality_d200.py --seed 2            # DR, recovery, 4 restarts
    python benchmarks/strong_duality_d200.py --seed 2 --cvxpy    # plus SCS (about 4 minutes)

Instance as in benchmarks/svd_equivalents.py ("gaussian-square"): X and Y are 200 x 200
Gaussian, H = 3, k = 40, gamma*H = 0.3 sqrt(200). Prints the dual optimum (DR's two-sided
interval ``[value, dual_upper]`` and the rank of the relaxed minimiser, and SCS if asked), the
best primal value of the L-BFGS restarts, the polished recovered weights, and the singular
values of A - Gamma* around position k. The instance is far too large for
``duallinear.prove_gap``: the primal side is evidence, not a proof.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import benchmark_instance
from threadpoolctl import threadpool_limits

import duallinear as dl


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--d", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--cvxpy", action="store_true", help="also solve the SDP with SCS")
    args = parser.parse_args()
    warnings.simplefilter("ignore", dl.ConvergenceWarning)
    warnings.simplefilter("ignore", dl.RecoveryWarning)
    with threadpool_limits(1, user_api="blas"):
        problem = benchmark_instance("gaussian-square", args.d, args.seed)
        print(f"# {problem}, seed {args.seed}")
        t0 = time.perf_counter()
        dual = dl.solve_dual(problem)
        print(f"dual (DR)            {dual.value:.10f}   {time.perf_counter() - t0:.1f} s, "
              f"{dual.iterations} iterations, status {dual.status}")
        print(f"  D* <= dual_upper   {dual.dual_upper:.10f}   (relative width "
              f"{(dual.dual_upper - dual.value) / dual.value:.1e}; relaxed minimiser of rank "
              f"{dual.diagnostics.relaxed_rank}, k = {problem.k})")
        sv = np.linalg.svd(problem.A - dual.Gamma, compute_uv=False)
        k = problem.k
        print(f"sigma_{k - 2}..sigma_{k + 2} of A - Gamma*: "
              + " ".join(f"{x:.8f}" for x in sv[k - 3:k + 2]))
        if args.cvxpy:
            t0 = time.perf_counter()
            ref = dl.solve_dual(problem, method="cvxpy", tol=1e-9)
            print(f"dual (SCS)           {ref.value:.10f}   {time.perf_counter() - t0:.1f} s, "
                  f"status {ref.status}; |SCS - DR| / DR = "
                  f"{abs(ref.value - dual.value) / dual.value:.1e}")
        t0 = time.perf_counter()
        primal = dl.solve_primal(problem, restarts=args.restarts, seed=0)
        print(f"primal restarts      {primal.value:.10f}   {time.perf_counter() - t0:.1f} s; "
              f"all restarts: {' '.join(f'{v:.10f}' for v in primal.values)}")
        rec = dl.recover(problem, dual)
        print(f"recovered + polish   {rec.value:.10f}   ({rec.message})")
        best = min(primal.value, rec.value)
        print(f"best primal - dual_upper, relative: {(best - dual.dual_upper) / best:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
