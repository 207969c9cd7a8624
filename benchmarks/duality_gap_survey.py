"""How often is the duality gap not zero? A survey at d = 50..120 (see docs/math.md).

    python benchmarks/duality_gap_survey.py              # 24 instances, DR only (about 30 s)
    python benchmarks/duality_gap_survey.py --verify     # plus SCS and primal restarts on
                                                         # every instance DR cannot certify

Instances: four kinds of X (rank-deficient, condition number 1e4, wide d0 > n, Gaussian) and
two kinds of Y (Gaussian; structured, Y = W* X + noise with rank(W*) = 5), three seeds each;
d drawn in [50, 120), n = 2d (d/2 for wide X), H = 3, k = d/5, and gamma*H drawn
log-uniformly between 1% and 100% of the zero-network threshold ||Y X^T||_op. For each
instance DR runs with the default tolerance 1e-10 and prints its status, the relative width
of its two-sided interval on D* (``(dual_upper - value) / value``) and the rank of the relaxed
minimiser behind ``dual_upper`` (above k: the relaxation is not tight there). With --verify,
an instance DR cannot certify is also solved by SCS (an independent dual solver, whose value
must lie below ``dual_upper``) and by L-BFGS restarts (the primal): when the best primal value
stays above the whole interval, the duality gap itself is not zero - evidence, not a proof:
these instances are far too large for ``duallinear.prove_gap`` (its search space, the
Grassmannian of null spaces of the rank-k product, has dimension k (d - k) >= 400 here).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import duallinear as dl


def _orthonormal(rng: np.random.Generator, m: int, p: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((m, p)))[0]


def _x(kind: str, d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "rank_deficient":
        r = min(d, n) // 2
        return rng.standard_normal((d, r)) @ rng.standard_normal((r, n))
    if kind == "ill_conditioned":
        p = min(d, n)
        return (_orthonormal(rng, d, p) * np.logspace(0, -4, p)) @ _orthonormal(rng, n, p).T
    return rng.standard_normal((d, n))  # "wide" (n < d) and "gaussian"


def instances() -> list[tuple[str, str, int, dl.DeepLinearProblem]]:
    out = []
    for x_kind in ("rank_deficient", "ill_conditioned", "wide", "gaussian"):
        for y_kind in ("gaussian", "structured"):
            for seed in range(3):
                rng = np.random.default_rng(100 + seed)
                d = int(rng.integers(50, 120))
                n = d // 2 if x_kind == "wide" else 2 * d
                X = _x(x_kind, d, n, rng)
                if y_kind == "gaussian":
                    Y = rng.standard_normal((d, n))
                else:
                    W = rng.standard_normal((d, 5)) @ rng.standard_normal((5, d)) / d
                    Y = W @ X + 0.1 * rng.standard_normal((d, n))
                k = max(1, d // 5)
                rho = float(10 ** rng.uniform(-2, 0)) * np.linalg.norm(Y @ X.T, 2)
                out.append((x_kind, y_kind, seed, dl.DeepLinearProblem(X, Y, (k, k), rho / 3)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", action="store_true",
                        help="SCS and 4 primal restarts on every instance DR cannot certify")
    args = parser.parse_args()
    warnings.simplefilter("ignore", dl.ConvergenceWarning)
    warnings.simplefilter("ignore", dl.RecoveryWarning)
    print(f"{'X':>15} {'Y':>10} {'seed':>4} {'d':>4} {'k':>3} {'iters':>6} {'status':>11} "
          f"{'cert. gap':>9} {'D* width':>9} {'rank':>4}")
    uncertified, cases = 0, instances()
    with threadpool_limits(1, user_api="blas"):
        for x_kind, y_kind, seed, problem in cases:
            dual = dl.solve_dual(problem)
            width = (dual.dual_upper - dual.value) / abs(dual.value)
            rank = dual.diagnostics.relaxed_rank
            print(f"{x_kind:>15} {y_kind:>10} {seed:>4} {problem.dH:>4} {problem.k:>3} "
                  f"{dual.iterations:>6} {dual.status:>11} {dual.relative_gap:>9.1e} "
                  f"{width:>9.1e} {rank if rank >= 0 else '':>4}", flush=True)
            if dual.converged:
                continue
            uncertified += 1
            if not args.verify:
                continue
            t0 = time.perf_counter()
            scs = dl.solve_dual(problem, method="cvxpy")
            t_scs = time.perf_counter() - t0
            primal = dl.solve_primal(problem, restarts=4, seed=0)
            rec = dl.recover(problem, dual)
            best = min(primal.value, rec.value)
            inside = "inside" if scs.value <= dual.dual_upper else "ABOVE"
            print(f"{'':>15} dual: DR [{dual.value:.10g}, {dual.dual_upper:.10g}], SCS "
                  f"{scs.value:.10g} ({scs.status}, {t_scs:.0f} s, {inside} DR's interval); "
                  f"primal: best of 4 restarts {primal.value:.10g}, recovered and polished "
                  f"{rec.value:.10g}; (best primal - dual_upper) / best primal = "
                  f"{(best - dual.dual_upper) / best:.1e}", flush=True)
    print(f"{uncertified} of {len(cases)} instances not certified to 1e-10 by DR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
