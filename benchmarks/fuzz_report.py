"""Run the long fuzzing campaign of tests/test_fuzz.py and print its counts.

Usage::

    python benchmarks/fuzz_report.py [--examples N] [--json PATH]

Runs ``pytest tests/test_fuzz.py`` under the ``long`` hypothesis profile (thousands of drawn
problems) in keep-going mode, so that a failing draw is recorded and the campaign continues,
then prints: the number of draws, the number of failures (crash, non-convergence, certified
relative gap above 1e-7, broken weak duality or closed-form disagreement), the worst certified
relative gap and the worst time per draw, with the draws that produced them. The exit status
is pytest's (non-zero when any draw failed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=None,
                        help="examples per property (default: the long profile's count)")
    parser.add_argument("--json", default=None, help="keep the raw statistics at this path")
    args = parser.parse_args(argv)

    path = args.json or os.path.join(tempfile.mkdtemp(prefix="duallinear-fuzz-"), "fuzz.json")
    env = dict(os.environ, DUALLINEAR_HYPOTHESIS_PROFILE="long", DUALLINEAR_FUZZ_REPORT=path,
               DUALLINEAR_FUZZ_KEEP_GOING="1")
    if args.examples is not None:
        env["DUALLINEAR_FUZZ_EXAMPLES"] = str(args.examples)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "test_fuzz.py")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if not os.path.exists(path):
        sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        print("no statistics were written (pytest did not reach the fuzz module)")
        return proc.returncode or 1
    with open(path) as fh:
        stats = json.load(fh)

    print(f"profile:              {stats['profile']}")
    print(f"draws:                {stats['draws']}")
    print(f"failures:             {stats['failures']}")
    print(f"  crashes (exceptions):          {stats.get('crashes', 'n/a')}")
    print(f"  silent (claimed success):      {stats.get('silent_failures', 'n/a')}")
    print(f"worst relative gap:   {stats['worst_relative_gap']:.3e}")
    print(f"  at {stats['worst_gap_draw']}")
    print(f"worst time per draw:  {stats['worst_time']:.3f} s")
    print(f"  at {stats['worst_time_draw']}")
    print(f"draws repaired by polishing: {stats['repaired']}")
    print(f"verified duality gaps (DR stalled; SCS and primal restarts confirm): "
          f"{stats.get('duality_gaps', 'n/a')}")
    print(f"most DR iterations:   {stats['dr_iterations_max']}")
    print(f"wall time:            {elapsed:.1f} s")
    if stats["failing_draws"]:
        print("first failing draws:")
        for line in stats["failing_draws"]:
            print("  " + line)
    failed_tests = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    if failed_tests:
        print("failed tests:")
        for line in failed_tests:
            print("  " + line[:300])
    summary = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line]
    print("pytest: " + (summary[-1] if summary else f"exit status {proc.returncode}"))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
