"""Primal restarts in parallel (``solve_primal(..., n_jobs=...)``), locally and on Dask.

Every restart draws its start from its own child of ``SeedSequence(seed)``, so the result must
not depend on how the restarts are scheduled: bit-for-bit the same per-restart values with one
process, two processes, threads of one process, or joblib's Dask backend on worker processes.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest

import duallinear as dl


def _problem(d: int = 6, H: int = 3, k: int = 2, gamma: float = 0.2, seed: int = 0,
             whitened: bool = True) -> dl.DeepLinearProblem:
    rng = np.random.default_rng(seed)
    X = np.eye(d) if whitened else rng.standard_normal((d, 2 * d))
    Y = rng.standard_normal((d, X.shape[1]))
    return dl.DeepLinearProblem(X, Y, hidden=(k,) * (H - 1), gamma=gamma)


def _solve(problem, **kwargs) -> dl.PrimalResult:
    with warnings.catch_warnings():
        # a restart stuck at a saddle may stop early; that is part of what is compared
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        return dl.solve_primal(problem, **kwargs)


def _assert_identical(a: dl.PrimalResult, b: dl.PrimalResult) -> None:
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.restart_converged, b.restart_converged)
    assert a.best_restart == b.best_restart
    assert a.value == b.value
    for Wa, Wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(Wa, Wb)


@pytest.mark.parametrize("method, whitened", [("lbfgs", True), ("lbfgs", False),
                                              ("gd", True)])
def test_two_jobs_same_as_one(method, whitened):
    problem = _problem(whitened=whitened)
    kwargs = dict(restarts=5, method=method, seed=11,
                  max_iter=300 if method == "gd" else None)
    serial = _solve(problem, n_jobs=1, **kwargs)
    parallel = _solve(problem, n_jobs=2, **kwargs)
    _assert_identical(serial, parallel)
    _assert_identical(_solve(problem, n_jobs=None, **kwargs), serial)


def test_restart_values_do_not_depend_on_their_number():
    # Restart j uses the j-th child seed: the first four of eight equal a run of four.
    problem = _problem(seed=1)
    few = _solve(problem, restarts=4, seed=3, n_jobs=2)
    many = _solve(problem, restarts=8, seed=3, n_jobs=1)
    np.testing.assert_array_equal(few.values, many.values[:4])


def test_different_seeds_give_different_starts():
    problem = _problem(d=8, k=3, seed=2)
    a = _solve(problem, restarts=3, seed=0, n_jobs=2, method="gd", max_iter=5)
    b = _solve(problem, restarts=3, seed=1, n_jobs=2, method="gd", max_iter=5)
    assert not np.array_equal(a.values, b.values)


def test_parallel_best_reaches_the_closed_form():
    problem = _problem(d=8, k=3, gamma=0.1, seed=4)
    exact = dl.closed_form(problem)[0]
    best = _solve(problem, restarts=6, seed=0, n_jobs=2)
    assert best.value == pytest.approx(exact, rel=1e-8)
    assert best.value >= exact * (1 - 1e-12)  # never below the global optimum


def test_init_is_kept_in_parallel():
    problem = _problem(seed=5)
    dual = dl.solve_dual(problem)
    weights = dl.recover_weights(problem, dual)
    res = _solve(problem, restarts=3, seed=0, n_jobs=2, init=weights)
    ref = _solve(problem, restarts=3, seed=0, n_jobs=1, init=weights)
    _assert_identical(res, ref)
    assert res.values[0] == pytest.approx(dual.value, rel=1e-8)


def test_all_cores():
    problem = _problem(seed=6)
    _assert_identical(_solve(problem, restarts=3, seed=2, n_jobs=-1),
                      _solve(problem, restarts=3, seed=2, n_jobs=1))


@pytest.mark.parametrize("n_jobs, error", [(0, ValueError), (-2, ValueError),
                                           (1.5, TypeError), ("2", TypeError)])
def test_bad_n_jobs(n_jobs, error):
    with pytest.raises(error, match="n_jobs"):
        dl.solve_primal(_problem(), restarts=2, n_jobs=n_jobs)


# -------------------------------------------------------------------------- dask
def test_dask_backend_same_as_serial():
    # Worker processes, as a Dask deployment has: each restart runs alone in its process.
    distributed = pytest.importorskip("dask.distributed")
    problem = _problem(d=7, k=3, seed=7, whitened=False)
    serial = _solve(problem, restarts=4, seed=5, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ports / event-loop notices from distributed
        client = distributed.Client(processes=True, n_workers=2, threads_per_worker=1,
                                    dashboard_address=None)
    try:
        with joblib.parallel_backend("dask"):
            on_dask = _solve(problem, restarts=4, seed=5, n_jobs=2)
        # the restarts really ran as tasks on the cluster, not in this process
        ran = client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.task_prefixes])
    finally:
        client.close()
    assert any("batch" in key.lower() for key in ran), ran
    _assert_identical(serial, on_dask)


def test_threads_agree_with_serial():
    # Restarts running at the same time in threads of one process (joblib's threading
    # backend, in-process Dask workers) share one process-wide BLAS limit. They used to differ
    # from the serial run in the last bit (3.6e-15 of 27.9): threadpoolctl 3.8 ignored the
    # worker threads' limit, so their BLAS ran on two threads (duallinear._threads).
    problem = _problem(d=7, k=3, seed=7, whitened=False)
    serial = _solve(problem, restarts=4, seed=5, n_jobs=1)
    with joblib.parallel_backend("threading"):
        threaded = _solve(problem, restarts=4, seed=5, n_jobs=2)
    _assert_identical(serial, threaded)
