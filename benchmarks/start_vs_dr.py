"""The start from the truncation of A against DR without it, at the sizes where it is on.

    python benchmarks/start_vs_dr.py            # 24 random instances, seed 99
    python benchmarks/start_vs_dr.py --count 8 --seed 1 --max-iter 5000

Each instance: d0 = dH = d in {500, 560, 640}, n = 1.2d..2d, Gaussian X (a third of them with
singular values log-spaced over 1..4 decades), ``Y = W* X + noise`` with rank(W*) in
{5, 10, 20, 30}, bottleneck k equal to that rank (half the draws), half of it, or 5 more, noise
1e-3..0.3 of the signal's RMS, H = 2..4, gamma 1e-4..0.5 of the zero-network threshold. The
dual is solved with the default settings (the start is tried when A has a gap at k) and with
``refine_start_min_dim`` out of reach (DR alone), both with ``max_iter`` 500 (some draws,
e.g. H = 2 with a tiny gamma, take thousands of iterations on either route), and each is
recovered. Printed per
instance: whether the start was tried, status and iterations, time, whether recover
certified, and the relative difference of the two dual values. A row fails (``ok=False``,
exit 1) when a dual value exceeds the other route's recovered objective, or when both
converged and their values differ by more than 2e-10.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import commit
from threadpoolctl import threadpool_limits

import duallinear as dl


def instance(rng: np.random.Generator) -> dl.DeepLinearProblem:
    d = int(rng.choice([500, 560, 640]))
    n = int(d * rng.uniform(1.2, 2.0))
    rank = int(rng.choice([5, 10, 20, 30]))
    k = int(rng.choice([rank, rank, max(1, rank // 2), rank + 5]))
    noise = 10 ** rng.uniform(-3, -0.5)
    X = rng.standard_normal((d, n)) * 10 ** rng.uniform(-2, 2)
    if rng.random() < 0.3:
        U, _, Vt = np.linalg.svd(X, full_matrices=False)
        X = (U * np.logspace(0, -rng.uniform(1, 4), d)) @ Vt
    F = (rng.standard_normal((d, rank)) @ rng.standard_normal((rank, d)) / d) @ X
    Y = F + noise * np.linalg.norm(F) / np.sqrt(F.size) * rng.standard_normal(F.shape)
    H = int(rng.integers(2, 5))
    gamma = float(np.linalg.norm(Y @ X.T, 2)) / H * 10 ** rng.uniform(-4, -0.3)
    return dl.DeepLinearProblem(X, Y, (k,) * (H - 1), gamma)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--max-iter", type=int, default=500)
    args = parser.parse_args()
    print(f"# start_vs_dr at {commit()}, seed {args.seed}, one BLAS thread, wall clock")
    rng = np.random.default_rng(args.seed)
    failures = 0
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(args.count):
            problem = instance(rng)
            # The problem's cached scale and fingerprint, paid by whichever solve came first.
            problem.scales, problem.fingerprint  # noqa: B018
            runs = []
            for settings in (dl.DRSettings(), dl.DRSettings(refine_start_min_dim=10**9)):
                t0 = time.perf_counter()
                dual = dl.solve_dual(problem, settings=settings, max_iter=args.max_iter)
                runs.append((dual, dl.recover(problem, dual), time.perf_counter() - t0))
            (a, ra, ta), (b, rb, tb) = runs
            slack = 1 + 1e-12
            ok = a.value <= rb.value * slack and b.value <= ra.value * slack
            if a.converged and b.converged:
                ok &= abs(a.value - b.value) <= 2e-10 * max(abs(a.value), abs(b.value))
            failures += not ok
            print(f"{i:3d} d={problem.d0} n={problem.n} k={problem.k} H={problem.depth} "
                  f"start={a.diagnostics.refine_start!s:5} {a.status}/{a.iterations} "
                  f"{ta:.2f}s rec {ra.certified} | DR alone {b.status}/{b.iterations} "
                  f"{tb:.2f}s rec {rb.certified} | "
                  f"values differ {abs(a.value - b.value) / abs(b.value):.1e} ok={ok}",
                  flush=True)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
