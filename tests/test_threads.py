"""The library's process-wide BLAS limit (duallinear._threads): set while in use, shared by
nested and concurrent users, and the caller's setting restored afterwards."""

from __future__ import annotations

import threading
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import duallinear as dl
import duallinear.dual as dual_module
from duallinear._threads import SINGLE_THREAD_MAX_DIM, one_blas_thread


def _blas_threads() -> set[int]:
    # (Libraries built without threading, like the OpenBLAS inside SCS, always report 1.)
    return {lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas" and lib.get("threading_layer") != "disabled"}


def test_limit_is_set_inside_and_the_callers_setting_restored() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        with one_blas_thread():
            assert _blas_threads() == {1}
            with one_blas_thread():  # nested: the inner exit must not restore
                assert _blas_threads() == {1}
            assert _blas_threads() == {1}
        assert _blas_threads() == {2}
        with one_blas_thread(active=False):
            assert _blas_threads() == {2}


def test_concurrent_users_share_one_limit() -> None:
    # The first user in sets the limit, the last one out restores it, whatever the order.
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[set[int]] = []

    def first() -> None:
        with one_blas_thread():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with one_blas_thread():
            second_in.set()
            first_out.wait(5)
            seen.append(_blas_threads())  # the first user has left: still limited

    with threadpool_limits(limits=2, user_api="blas"):
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen == [{1}]
        assert _blas_threads() == {2}


def test_solve_dual_and_recover_run_small_problems_on_one_thread() -> None:
    rng = np.random.default_rng(0)
    problem = dl.DeepLinearProblem(rng.standard_normal((8, 16)), rng.standard_normal((8, 16)),
                                   (3,), 0.3)
    assert min(problem.A.shape) < SINGLE_THREAD_MAX_DIM
    inside: list[set[int]] = []
    real_dr = dual_module.solve_dr

    def spy(*args, **kwargs):
        inside.append(_blas_threads())
        return real_dr(*args, **kwargs)

    with threadpool_limits(limits=2, user_api="blas"):
        with mock.patch.object(dual_module, "solve_dr", spy):
            dual = dl.solve_dual(problem)
        assert inside == [{1}]
        assert _blas_threads() == {2}
        rec = dl.recover(problem, dual)
        assert rec.certified
        assert _blas_threads() == {2}


def test_blas_limit_false_keeps_the_callers_threads() -> None:
    rng = np.random.default_rng(1)
    problem = dl.DeepLinearProblem(rng.standard_normal((8, 16)), rng.standard_normal((8, 16)),
                                   (3,), 0.3)
    seen: dict[bool, list[set[int]]] = {True: [], False: []}
    with threadpool_limits(limits=2, user_api="blas"):
        for limit in (True, False):
            dual = dl.solve_dual(
                problem, blas_limit=limit, primal_refine=False,
                callback=lambda it, gap, limit=limit: seen[limit].append(_blas_threads()))
            assert dual.converged
        assert _blas_threads() == {2}
    assert seen[True] and all(t == {1} for t in seen[True])
    assert seen[False] and all(t == {2} for t in seen[False])


def test_primal_limit_argument_and_environment_variable(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    problem = dl.DeepLinearProblem(rng.standard_normal((4, 8)), rng.standard_normal((3, 8)),
                                   (2,), 0.1)
    inside: list[set[int]] = []
    import duallinear.primal as primal_module

    real = primal_module._lbfgs

    def spy(*args, **kwargs):
        inside.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(primal_module, "_lbfgs", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        dl.solve_primal(problem, restarts=1, seed=0)
        dl.solve_primal(problem, restarts=1, seed=0, blas_limit=False)
        monkeypatch.setenv("DUALLINEAR_BLAS_LIMIT", "0")
        dl.solve_primal(problem, restarts=1, seed=0)
    assert inside == [{1}, {2}, {2}]
