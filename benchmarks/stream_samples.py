"""Ten million samples without holding X: statistics streamed chunk by chunk, then the dual.

The data are generated chunk by chunk from a seeded generator (chunk ``i`` from
``default_rng([seed, i])``) and never exist as a whole: ``X`` is ``(d, n)`` Gaussian and
``Y = W* X + E`` with ``W*`` of rank ``d/10`` (singular values 1..10) and noise of standard
deviation 0.1. The sufficient statistics ``X X^T``, ``Y X^T``, ``||Y||^2`` are accumulated

* ``--scheduler threads`` (default): as Dask arrays built from delayed chunks, computed by
  ``duallinear.distributed.statistics`` on Dask's threaded scheduler;
* ``--scheduler distributed``: the same on a local ``dask.distributed`` cluster of two
  single-threaded worker processes (their memory is not in this process's peak);
* ``--scheduler chunks``: from a plain Python generator by ``statistics_from_chunks``.

Then ``solve_dual`` (Douglas-Rachford) and ``recover`` on the problem built from the
statistics, with ``hidden = (d/5, d/5)`` (H = 3) and ``gamma * H = 0.5 n`` (the penalty
grows with the number of samples, as the loss does). Prints times, the dual value, the
certified gap and the peak resident memory of the process (``ru_maxrss``).

Examples
--------
    python benchmarks/stream_samples.py                  # n = 10^7, d = 100
    python benchmarks/stream_samples.py --n 200000 --check   # quick, compares to in memory
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings

import numpy as np
from common import add_blas_option, blas_limits, machine_line

import duallinear as dl
from duallinear.distributed import statistics, statistics_from_chunks


def true_map(d: int, seed: int) -> np.ndarray:
    """``W*`` of shape (d, d), rank ``max(1, d // 10)``, singular values evenly in [1, 10]."""
    rank = max(1, d // 10)
    rng = np.random.default_rng([seed, 2**32 - 1])
    P, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    Q, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    return (P * np.linspace(10.0, 1.0, rank)) @ Q.T


def make_chunk(i: int, size: int, d: int, W: np.ndarray, seed: int) -> np.ndarray:
    """Rows ``0..d-1``: X block ``i``; rows ``d..2d-1``: the matching Y block."""
    rng = np.random.default_rng([seed, i])
    out = np.empty((2 * d, size))
    out[:d] = rng.standard_normal((d, size))
    out[d:] = W @ out[:d]
    out[d:] += 0.1 * rng.standard_normal((d, size))
    return out


def chunk_sizes(n: int, chunk: int) -> list[int]:
    return [min(chunk, n - start) for start in range(0, n, chunk)]


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def stream_statistics(args: argparse.Namespace, W: np.ndarray):
    sizes = chunk_sizes(args.n, args.chunk)
    d, seed = args.d, args.seed
    if args.scheduler == "chunks":
        def pairs():
            for i, m in enumerate(sizes):
                block = make_chunk(i, m, d, W, seed)
                yield block[:d], block[d:]
        return statistics_from_chunks(pairs())

    import dask
    import dask.array as da

    blocks = [da.from_delayed(dask.delayed(make_chunk)(i, m, d, W, seed), shape=(2 * d, m),
                              dtype=np.float64) for i, m in enumerate(sizes)]
    XY = da.concatenate(blocks, axis=1)
    X, Y = XY[:d], XY[d:]
    if args.scheduler == "threads":
        return statistics(X, Y, scheduler="threads", num_workers=args.workers)
    from dask.distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        return statistics(X, Y)
    finally:
        client.close()
        cluster.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7, help="samples (default 1e7)")
    parser.add_argument("--d", type=int, default=100, help="d0 = dH (default 100)")
    parser.add_argument("--chunk", type=int, default=50_000, help="samples per chunk")
    parser.add_argument("--scheduler", choices=("threads", "distributed", "chunks"),
                        default="threads")
    parser.add_argument("--workers", type=int, default=2, help="Dask threads or processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="also build the problem in memory and compare (small n only)")
    add_blas_option(parser)
    args = parser.parse_args(argv)
    args.n = int(args.n)
    with blas_limits(args.blas_threads):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    d, n = args.d, args.n
    H, k = 3, max(1, d // 5)
    gamma = 0.5 * n / H
    print(machine_line("stream_samples") + f", BLAS threads {args.blas_threads or 'default'}")
    print(f"# n = {n:.3g} samples, d0 = dH = {d}, chunks of {args.chunk} samples "
          f"({len(chunk_sizes(n, args.chunk))} chunks), scheduler {args.scheduler!r}; "
          f"H = {H}, hidden = ({k}, {k}), gamma*H = 0.5 n")
    print(f"# X alone would take {d * n * 8 / 1e9:.3g} GB in memory (Y as much again); "
          f"one chunk of X and Y takes {2 * d * args.chunk * 8 / 2**20:.0f} MB")
    W = true_map(d, args.seed)
    rss0 = peak_rss_mb()

    t0 = time.perf_counter()
    stats = stream_statistics(args, W)
    t_stats = time.perf_counter() - t0
    rss_stats = peak_rss_mb()

    t0 = time.perf_counter()
    problem = stats.problem(hidden=(k, k), gamma=gamma)
    dual = dl.solve_dual(problem)
    t_dual = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = dl.recover(problem, dual)
    t_rec = time.perf_counter() - t0

    M = rec.weights[-1]
    for Wi in rec.weights[-2::-1]:
        M = M @ Wi
    print(f"{'step':<34} {'time [s]':>9}")
    print(f"{'statistics (one pass over data)':<34} {t_stats:9.2f}")
    print(f"{'solve_dual (DR)':<34} {t_dual:9.2f}   iterations {dual.iterations}, "
          f"converged {dual.converged}")
    print(f"{'recover (weights + certificate)':<34} {t_rec:9.2f}")
    print(f"samples streamed            {stats.n}")
    print(f"dual value (lower bound)    {dual.value:.12e}")
    print(f"primal value of weights     {rec.value:.12e}")
    print(f"certified relative gap      {rec.relative_gap:.2e}  (certified: {rec.certified})")
    print(f"||W_H..W_1 - W*|| / ||W*||  {np.linalg.norm(M - W) / np.linalg.norm(W):.3e}")
    print(f"peak memory (ru_maxrss)     {peak_rss_mb():.0f} MB  (before streaming "
          f"{rss0:.0f} MB, after statistics {rss_stats:.0f} MB)")
    if args.check:
        data = np.hstack([make_chunk(i, m, d, W, args.seed)
                          for i, m in enumerate(chunk_sizes(n, args.chunk))])
        direct = dl.DeepLinearProblem(data[:d], data[d:], hidden=(k, k), gamma=gamma)
        ref = dl.solve_dual(direct)
        print(f"in-memory dual value        {ref.value:.12e}  relative difference "
              f"{abs(ref.value - dual.value) / abs(ref.value):.1e}")


if __name__ == "__main__":
    main()
