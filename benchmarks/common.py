"""Helpers shared by the benchmark scripts: header lines, BLAS limits, instances, timing."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import scipy.linalg

import duallinear as dl


def source_version() -> str:
    """Short commit of the library sources, with ``+dirty`` when tracked files have edits."""
    src = os.path.dirname(os.path.abspath(dl.__file__))
    try:
        head = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no",
                                "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_line(name: str) -> str:
    """One header line: script, date, machine, cores, load, library version and commit."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"# {name}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{platform.machine()}, {os.cpu_count()} cores (load average {load}), "
            f"python {platform.python_version()}, numpy {np.__version__}, duallinear "
            f"{dl.__version__} at {source_version()}")


def add_blas_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blas-threads", type=int, default=1,
        help="BLAS/LAPACK threads (default 1; 0 leaves the library default). On this shared "
             "2-core machine multithreaded OpenBLAS turns a 50x50 SVD from 0.4 ms into "
             "0.1 s when the other core is busy, so timings default to one thread.")


def blas_limits(threads: int):
    """Context limiting the BLAS thread pools (a no-op for ``threads = 0``).

    Uses threadpoolctl when it is installed; otherwise says so and leaves the pools alone
    (set ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` before starting Python instead)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if threads > 0:
            print("# threadpoolctl is not installed: BLAS threads are NOT limited")
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads if threads > 0 else None)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def svd_time(A: np.ndarray, repeats: int = 7, clock=time.perf_counter) -> float:
    """Shortest of ``repeats`` thin SVDs of ``A`` (seconds of ``clock``)."""
    times = []
    for _ in range(repeats):
        t0 = clock()
        scipy.linalg.svd(A, full_matrices=False, check_finite=False)
        times.append(clock() - t0)
    return min(times)


def benchmark_instance(kind: str, d: int, seed: int) -> dl.DeepLinearProblem:
    rng = np.random.default_rng(seed)
    n = {"identity": d, "gaussian-square": d, "gaussian-2d": 2 * d}[kind]
    X = np.eye(d) if kind == "identity" else rng.standard_normal((d, n))
    Y = rng.standard_normal((d, n))
    H, k = 3, max(1, d // 5)
    return dl.DeepLinearProblem(X, Y, (k,) * (H - 1), 0.3 * np.sqrt(d) / H)
