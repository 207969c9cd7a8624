"""Property-based fuzzing of the whole pipeline: problem -> solve_dual -> recover.

A hypothesis strategy draws complete problems of every awkward kind (MATH.md sections 4-7):
sizes 1..12, depth 2..4, hidden widths below and above ``min(d0, dH)``, X identity,
scaled-orthonormal, Gaussian, rank-deficient, wider than it is long, with columns scaled over
six orders of magnitude or duplicated, Y Gaussian, zero, low-rank or with repeated singular
values, and gamma from 0 to 1e12 times the value from which the zero network is optimal.

For every draw the properties checked are:

* Douglas-Rachford reports ``converged=True``, and the weights rebuilt by
  :func:`duallinear.recover` are certified to a relative gap <= 1e-7; or DR reports
  "duality_gap" (or "stalled") and the draw is a verified non-zero duality gap
  (:func:`verify_duality_gap`: the CVXPY SDP finds DR's dual value, inside DR's two-sided
  interval; on small search spaces :func:`duallinear.prove_gap` proves the gap, elsewhere
  primal restarts do not beat the recovered weights and the gap is above 1e-5);
* :func:`duallinear.duality_gap` agrees with the recovery's own gap;
* weak duality: the dual value of random (made feasible) dual points never exceeds the
  primal objective of random weights, nor of the recovered weights;
* whitened X: the closed form (MATH.md section 6) agrees with both bounds.

On smaller, well-conditioned draws two independent paths are checked against DR: the CVXPY
SDP (same optimum) and multi-restart primal local search (never below the dual bound).

The number of examples comes from the hypothesis profile (``tests/conftest.py``).
Set ``DUALLINEAR_FUZZ_REPORT=<path>`` to write per-draw statistics (draws, failures, worst
relative gap, worst time) as JSON when the module finishes; ``benchmarks/fuzz_report.py``
reads it.
"""

from __future__ import annotations

import json
import os
import warnings

import pytest
from hypothesis import given, settings

import duallinear as dl
from fuzzing import (
    PROFILE,
    ROUND,
    SETTINGS,
    STATS,
    X_KINDS,
    Y_KINDS,
    Draw,
    check_pipeline,
    draws,
    problem_and_dual,
    small_draws,
)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_report():
    yield
    path = os.environ.get("DUALLINEAR_FUZZ_REPORT")
    if path:
        stats = dict(STATS, profile=PROFILE, failing_draws=STATS["failing_draws"][:20])
        with open(path, "w") as fh:
            json.dump(stats, fh, indent=2, default=str)


@SETTINGS
@given(draws())
def test_pipeline_certifies_every_draw(draw: Draw) -> None:
    check_pipeline(draw)


@pytest.mark.parametrize("x_kind", X_KINDS)
@pytest.mark.parametrize("y_kind", Y_KINDS)
def test_every_kind_pair_once(x_kind: str, y_kind: str) -> None:
    # Every combination of kinds, deterministically, whatever the profile draws.
    d0, n = (5, 5) if x_kind == "identity" else (7, 4) if x_kind == "wide" else (5, 9)
    check_pipeline(Draw(d0, 4, n, (3, 2), x_kind, y_kind, 0.1, 12345))


@settings(SETTINGS, max_examples=20 if PROFILE == "ci" else 300)
@given(small_draws())
def test_cvxpy_path_agrees_with_dr(draw: Draw) -> None:
    # Two independent solvers of the same convex dual.
    problem, dual = problem_and_dual(draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        cvx = dl.solve_dual(problem, method="cvxpy", tol=1e-9)
    scale = max(problem.zero_value, 1e-300)
    assert cvx.value <= dual.upper_bound + ROUND * scale  # weak duality across paths
    if cvx.converged:
        assert abs(cvx.value - dual.value) <= 1e-5 * max(abs(dual.value), 1e-12 * scale)
    else:
        # SCS may fall short when the optimum is tiny against 1/2||Y||^2; then the path must
        # say so, with a certificate that shows it.
        assert cvx.relative_gap > 1e-6 or cvx.status != "optimal", cvx.message
        assert "certified relative gap" in cvx.message


@settings(SETTINGS, max_examples=30 if PROFILE == "ci" else 500)
@given(small_draws())
def test_primal_restarts_never_beat_the_dual_bound(draw: Draw) -> None:
    # Local search is an independent upper bound: it can only land at or above the optimum
    # (weak duality), and the certified recovery must be at least as good as it.
    problem, dual = problem_and_dual(draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        primal = dl.solve_primal(problem, restarts=2, seed=draw.seed % 1000, max_iter=500)
        rec = dl.recover(problem, dual)
    scale = max(problem.zero_value, 1e-300)
    assert primal.value >= dual.value - ROUND * max(scale, abs(primal.value))
    assert rec.value <= primal.value + 1e-7 * max(abs(primal.value), 1e-12 * scale)


def test_no_failures_recorded() -> None:
    # Runs after the properties above (file order); only meaningful in keep-going mode, where
    # the property tests record failing draws instead of raising.
    assert STATS["failures"] == 0, "\n".join(STATS["failing_draws"][:20])
