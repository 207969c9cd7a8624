"""Fuzz the duality-gap path: 3 x 3 draws where the relaxation is sometimes not tight.

    python benchmarks/fuzz_gaps.py [--draws N] [--seed S]

Draws of the fuzzer's kinds (``tests/fuzzing.py``) restricted to d0 = dH = n = 3, H = 2, k = 2,
Gaussian or column-scaled X (column scales over six orders of magnitude), Gaussian Y and
``gamma`` log-uniform between 1e-3 and 0.1 of the zero-network threshold, each checked by the
fuzzer's full pipeline check (``check_pipeline``). A draw on which ``solve_dual`` stops with
status ``duality_gap`` passes only when ``prove_gap`` proves the gap (``verify_duality_gap``:
the search space is a Grassmannian of dimension 2 here). Prints the counts and any failing
draw; the exit status is 1 when a draw failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("DUALLINEAR_FUZZ_KEEP_GOING", "1")

from fuzzing import STATS, Draw, check_pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for _ in range(args.draws):
        x_kind = str(rng.choice(["gaussian", "scaled_columns"]))
        draw = Draw(3, 3, 3, (2,), x_kind, "gaussian", float(10 ** rng.uniform(-3, -1)),
                    int(rng.integers(0, 2**32 - 1)))
        check_pipeline(draw)
    print(f"{STATS['draws']} draws in {time.perf_counter() - t0:.0f} s: "
          f"{STATS['duality_gaps']} without a certificate, each verified as a non-zero gap "
          f"(proved by prove_gap when DR stopped 'duality_gap'), "
          f"{STATS['failures']} failures ({STATS['crashes']} crashes, "
          f"{STATS['silent_failures']} silent)")
    for line in STATS["failing_draws"][:20]:
        print(f"  FAILED {line}")
    return 1 if STATS["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
