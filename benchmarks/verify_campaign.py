"""Long campaign of the ill-conditioned family of ``tests/test_verify.py`` (issue 10).

    python benchmarks/verify_campaign.py samples 6000 samples.json   # X, Y as arrays
    python benchmarks/verify_campaign.py chunks 4000 chunks.json     # the same, as chunks
    python benchmarks/verify_campaign.py start 800 start.json        # targets with a gap at k
    python benchmarks/verify_campaign.py gram 3000 gram.json         # the X X^T reduction

Each draw builds a problem of the family (cond(X) 1e6..1e14, gamma from 0 to the zero-network
threshold, shapes up to 12 x 40, H up to 5), solves the dual, recovers weights and checks both
against the extended-precision oracle ``duallinear.verify`` on the original X and Y, with the
checks of the test (``check_against_the_oracle``): ``value`` below the exact objective of the
returned weights whatever the status, the reported gap covering the exact one, and, when both
``solve_dual`` and ``recover`` say certified, the exact relative gap within recover's tol.
The ``start`` path draws the gap-at-k family of the same test (targets of rank k plus noise,
cond(X) up to 1e10) and solves with the refinement from the truncation of A on every size
(``START_EVERYWHERE``), the route that certifies with a bound on the candidate's norm.
The ``gram`` path draws the family of ``tests/test_gram_reduction.py`` (cond(X) 1..1e3,
``d0 <= n``, Gaussian or (nearly) exact linear targets) and reduces it through ``X X^T`` on
every size (``GRAM_MIN_DIM`` lowered to 1).
Draws come from a seeded generator (12345 samples, 54321 chunks, 4242 start, 777 gram), so a
run is
reproducible; the JSON file (rewritten every 100 draws) holds the tally of outcomes, the first
20 failures with their parameters, the worst exact gap among certified draws and the time.
Run both paths at once on two cores (one BLAS thread each: ``OPENBLAS_NUM_THREADS=1``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import duallinear as dl  # noqa: E402
import test_verify  # noqa: E402
from duallinear import problem as problem_module  # noqa: E402
from test_gram_reduction import gram_data  # noqa: E402
from test_verify import (  # noqa: E402
    START_EVERYWHERE,
    check_against_the_oracle,
    gap_at_k_data,
    ill_conditioned_data,
)


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in ("samples", "chunks", "start", "gram"):
        print(__doc__)
        return 2
    path, draws, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    last: dict = {"gap": 0.0, "dual": None}
    verify, solve_dual = dl.verify, dl.solve_dual

    def spy(*args, **kwargs):
        checked = verify(*args, **kwargs)
        last["gap"] = checked.relative_gap
        return checked

    def spy_dual(*args, **kwargs):
        last["dual"] = solve_dual(*args, **kwargs)
        return last["dual"]

    # To read the exact gap the check saw, and the dual it solved.
    test_verify.dl.verify, test_verify.dl.solve_dual = spy, spy_dual
    rng = np.random.default_rng({"samples": 12345, "chunks": 54321, "start": 4242,
                                 "gram": 777}[path])
    if path == "gram":
        problem_module.GRAM_MIN_DIM = 1
    tally: dict[str, int] = {}
    failures: list = []
    worst, t0 = 0.0, time.time()
    for i in range(draws):
        if path == "start":
            params = (int(rng.integers(0, 2**31 - 1)), float(rng.uniform(0, 10)),
                      float(rng.uniform(-6, -1)), float(rng.uniform(-8, -0.05)))
            X, Y, hidden, gamma = gap_at_k_data(*params)
        elif path == "gram":
            params = (int(rng.integers(0, 2**31 - 1)), float(rng.uniform(0, 3)),
                      int(rng.integers(0, 3)), float(rng.uniform(-10, -0.05)))
            X, Y, hidden, gamma = gram_data(*params)
        else:
            params = (int(rng.integers(0, 2**31 - 1)), float(rng.uniform(6, 14)),
                      float(rng.uniform(-16, 0)),
                      bool(rng.integers(0, 6) == 0 and rng.integers(0, 2)),
                      int(rng.integers(0, 3)))
            X, Y, hidden, gamma = ill_conditioned_data(*params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if path == "start":
                    problem = dl.DeepLinearProblem(X, Y, hidden, gamma)
                    outcome = check_against_the_oracle(problem, X, Y, START_EVERYWHERE)
                    started = last["dual"].diagnostics.refine_start
                    outcome = f"{outcome} ({'start' if started else 'dr'})"
                elif path in ("samples", "gram"):
                    problem = dl.DeepLinearProblem(X, Y, hidden, gamma)
                else:
                    pieces = int(rng.integers(1, 5))
                    cuts = [c for c in np.array_split(np.arange(X.shape[1]), pieces) if c.size]
                    problem = dl.distributed.problem_from_chunks(
                        [(X[:, c], Y[:, c]) for c in cuts], hidden, gamma)
                if path == "gram":
                    route = "gram" if problem.residual_error > 0.0 else "svd"
                    outcome = f"{check_against_the_oracle(problem, X, Y)} ({route})"
                elif path != "start":
                    outcome = check_against_the_oracle(problem, X, Y)
        except AssertionError as error:
            outcome = "FALSE"
            failures.append((params, str(error)[:300]))
        except Exception as error:  # noqa: BLE001 - every other failure is counted too
            outcome = "ERROR " + type(error).__name__
            failures.append((params, repr(error)[:300]))
        tally[outcome] = tally.get(outcome, 0) + 1
        if outcome.startswith("certified"):
            worst = max(worst, last["gap"])
        if (i + 1) % 100 == 0 or i + 1 == draws:
            with open(out, "w") as handle:
                json.dump({"draws": i + 1, "tally": tally, "failures": failures[:20],
                           "worst_certified_exact_gap": worst,
                           "seconds": time.time() - t0}, handle, indent=1)
            print(f"{i + 1} draws, {tally}, worst certified exact gap {worst:.2e}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
