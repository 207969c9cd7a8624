"""Shared test configuration: hypothesis profiles and the one-BLAS-thread fixture.

Two profiles are registered and one is loaded, chosen by the environment variable
``DUALLINEAR_HYPOTHESIS_PROFILE``:

* ``ci`` (default): hypothesis's usual example count, no deadline (solver times vary with the
  machine load, and tests never assert timings), derandomised and without an example
  database, so that every run draws the same examples and a CI failure reproduces locally.
* ``long``: thousands of examples, randomised, for an on-demand fuzzing campaign
  (``benchmarks/fuzz_report.py``). Failures print a reproduction blob.

Tests with their own ``@settings`` keep their own values; only unspecified settings come
from the profile.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

PROFILE_ENV = "DUALLINEAR_HYPOTHESIS_PROFILE"

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

_profile = os.environ.get(PROFILE_ENV, "ci")
if _profile not in ("ci", "long"):
    raise ValueError(f"{PROFILE_ENV} must be 'ci' or 'long', got {_profile!r}")
settings.load_profile(_profile)


@pytest.fixture(scope="module")
def single_thread_blas():
    """One BLAS thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``).

    The problems in these tests are tiny; on a loaded two-core machine a multi-threaded
    BLAS spins its threads inside every call of scipy's L-BFGS-B and makes it 50-100 times
    slower. Results do not depend on this; only the running time does.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
