"""Sufficient statistics from Dask arrays and from chunks (duallinear.distributed).

Oracles: the in-memory products ``X X^T``, ``Y X^T``, ``||Y||^2`` and the dual optimum of the
problem built from the samples themselves; the closed form for whitened X.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from duallinear.distributed import (
    Statistics,
    problem_from_chunks,
    problem_from_dask,
    statistics,
    statistics_from_chunks,
)

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")


def _data(d0: int, dH: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d0, n))
    W = rng.standard_normal((dH, d0)) / np.sqrt(d0)
    return X, W @ X + 0.3 * rng.standard_normal((dH, n))


def _chunks(X: np.ndarray, Y: np.ndarray, size: int):
    for start in range(0, X.shape[1], size):
        yield X[:, start:start + size], Y[:, start:start + size]


def _assert_stats_equal(stats: Statistics, X: np.ndarray, Y: np.ndarray) -> None:
    XXt, YXt, YY = stats
    np.testing.assert_allclose(XXt, X @ X.T, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(YXt, Y @ X.T, rtol=1e-12, atol=1e-10)
    assert YY == pytest.approx(float(np.sum(Y * Y)), rel=1e-12)
    assert stats.n == X.shape[1]
    assert np.array_equal(XXt, XXt.T)


def _dual(problem: dl.DeepLinearProblem) -> dl.DualResult:
    return dl.solve_dual(problem, tol=1e-11, max_iter=20000)


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        # distributed may warn about ports and the event loop; irrelevant here
        warnings.simplefilter("ignore")
        c = distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                               dashboard_address=None)
    yield c
    c.close()


# ------------------------------------------------------------------ in-memory path
def test_numpy_statistics_are_the_products():
    X, Y = _data(4, 3, 50)
    stats = statistics(X, Y)
    _assert_stats_equal(stats, X, Y)
    assert stats.XXt is stats[0] and stats.YXt is stats[1] and stats.YY == stats[2]
    assert "n=50" in repr(stats)


def test_integer_data_accepted_as_float():
    X = np.arange(12).reshape(3, 4)
    Y = np.ones((2, 4), dtype=np.int32)
    XXt, YXt, YY = statistics(X, Y)
    assert XXt.dtype == np.float64
    np.testing.assert_array_equal(XXt, (X @ X.T).astype(float))
    assert YY == 8.0


# ------------------------------------------------------------------------ dask path
@pytest.mark.parametrize("chunks", [(5, 37), (2, 100), (5, 400)])
def test_dask_statistics_match_numpy_threaded(chunks):
    X, Y = _data(5, 3, 400, seed=1)
    stats = statistics(da.from_array(X, chunks=chunks), da.from_array(Y, chunks=(3, 64)),
                       scheduler="threads")
    _assert_stats_equal(stats, X, Y)


def test_dask_integer_and_float32_summed_in_float64():
    rng = np.random.default_rng(8)
    Xi = rng.integers(-1000, 1000, size=(3, 500)).astype(np.int32)  # X X^T overflows int32
    Y32 = rng.standard_normal((2, 500)).astype(np.float32)
    XXt, YXt, YY = statistics(da.from_array(Xi, chunks=(3, 100)),
                              da.from_array(Y32, chunks=(2, 100)), scheduler="sync")
    X, Y = Xi.astype(np.float64), Y32.astype(np.float64)
    assert XXt.dtype == YXt.dtype == np.float64
    np.testing.assert_array_equal(XXt, X @ X.T)  # integers: exact in float64
    np.testing.assert_allclose(YXt, Y @ X.T, rtol=1e-12)
    assert YY == pytest.approx(float(np.sum(Y * Y)), rel=1e-12)


def test_dask_mixed_with_numpy_target():
    X, Y = _data(4, 2, 300, seed=2)
    stats = statistics(da.from_array(X, chunks=(4, 70)), Y, scheduler="sync")
    _assert_stats_equal(stats, X, Y)


def test_dask_on_local_cluster_matches_in_memory_dual(client):
    X, Y = _data(6, 4, 2000, seed=3)
    Xd, Yd = da.from_array(X, chunks=(6, 250)), da.from_array(Y, chunks=(4, 250))
    stats = statistics(Xd, Yd)  # runs on the active Client
    _assert_stats_equal(stats, X, Y)
    ran = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert ran, "the statistics were not computed on the cluster"

    streamed = problem_from_dask(Xd, Yd, hidden=(2, 3), gamma=0.5)
    direct = dl.DeepLinearProblem(X, Y, hidden=(2, 3), gamma=0.5)
    assert streamed.X is None and streamed.n == 2000
    assert streamed.y_norm_sq == pytest.approx(direct.y_norm_sq, rel=1e-12)
    assert streamed.residual_sq == pytest.approx(direct.residual_sq, rel=1e-8)
    d_streamed, d_direct = _dual(streamed), _dual(direct)
    assert d_streamed.converged and d_direct.converged
    assert d_streamed.value == pytest.approx(d_direct.value, rel=1e-9)
    # the streamed dual certifies weights on the in-memory problem too
    rec = dl.recover(streamed, d_streamed)
    assert dl.objective(direct, rec.weights) - d_direct.value <= 1e-8 * d_direct.value


def test_dask_whitened_matches_closed_form():
    # X = sqrt(c) * [I I I ...]: X X^T = c m I, whitened; the closed form is an exact oracle.
    d, m = 5, 40
    X = np.tile(np.eye(d), m) * 0.5
    Y = np.random.default_rng(4).standard_normal((3, d * m))
    p_stream = problem_from_dask(da.from_array(X, chunks=(d, 35)),
                                 da.from_array(Y, chunks=(3, 35)),
                                 hidden=(2,), gamma=0.7, scheduler="threads")
    p_direct = dl.DeepLinearProblem(X, Y, hidden=(2,), gamma=0.7)
    assert p_stream.is_whitened
    exact = dl.closed_form(p_direct)[0]
    assert dl.closed_form(p_stream)[0] == pytest.approx(exact, rel=1e-10)
    assert _dual(p_stream).value == pytest.approx(exact, rel=1e-9)


def test_dask_data_streamed_from_a_generator_is_computed_once(client):
    # Build X and Y from delayed chunk generators and count how often each chunk is made:
    # the three statistics share one compute, so every chunk is produced exactly once.
    import dask

    calls = []

    def make(i):
        calls.append(i)
        rng = np.random.default_rng(i)
        Xi = rng.standard_normal((3, 50))
        return np.vstack([Xi, Xi[:2] + 0.1 * rng.standard_normal((2, 50))])

    blocks = [dask.delayed(make)(i) for i in range(8)]
    both = da.concatenate(
        [da.from_delayed(b, shape=(5, 50), dtype=float) for b in blocks], axis=1)
    X, Y = both[:3], both[3:]
    stats = statistics(X, Y, scheduler="sync")
    assert sorted(calls) == list(range(8))
    full = np.hstack([make(i) for i in range(8)])
    _assert_stats_equal(stats, full[:3], full[3:])


# ----------------------------------------------------------------------- chunk path
@pytest.mark.parametrize("size", [1, 7, 100, 1000])
def test_chunks_match_in_memory(size):
    X, Y = _data(4, 3, 250, seed=5)
    _assert_stats_equal(statistics_from_chunks(_chunks(X, Y, size)), X, Y)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.lists(st.integers(1, 20), min_size=1,
                                                      max_size=6), st.integers(0, 2**32 - 1))
def test_chunk_accumulation_property(d0, dH, sizes, seed):
    rng = np.random.default_rng(seed)
    parts = [(rng.standard_normal((d0, m)), rng.standard_normal((dH, m))) for m in sizes]
    X = np.hstack([p[0] for p in parts])
    Y = np.hstack([p[1] for p in parts])
    _assert_stats_equal(statistics_from_chunks(iter(parts)), X, Y)


def test_problem_from_chunks_dual_matches_in_memory():
    X, Y = _data(5, 4, 600, seed=6)
    streamed = problem_from_chunks(_chunks(X, Y, 64), hidden=(2, 2), gamma=0.3)
    direct = dl.DeepLinearProblem(X, Y, hidden=(2, 2), gamma=0.3)
    assert streamed.n == 600
    assert _dual(streamed).value == pytest.approx(_dual(direct).value, rel=1e-9)


def test_rank_deficient_X_through_chunks():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 300))  # rank 2
    Y = rng.standard_normal((3, 300))
    streamed = problem_from_chunks(_chunks(X, Y, 50), hidden=(1,), gamma=0.2)
    direct = dl.DeepLinearProblem(X, Y, hidden=(1,), gamma=0.2)
    assert streamed.rank == direct.rank == 2
    assert _dual(streamed).value == pytest.approx(_dual(direct).value, rel=1e-8)


# ----------------------------------------------------------------------- bad input
def test_mismatched_sample_counts():
    with pytest.raises(ValueError, match="same number of samples"):
        statistics(np.ones((2, 5)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="same number of samples"):
        statistics(da.ones((2, 5)), da.ones((1, 4)))
    with pytest.raises(ValueError, match=r"chunks\[1\].*same number of samples"):
        statistics_from_chunks([(np.ones((2, 3)), np.ones((1, 3))),
                                (np.ones((2, 3)), np.ones((1, 2)))])


@pytest.mark.parametrize("bad, name", [(np.ones(5), "X"), (np.ones((1, 2, 5)), "X")])
def test_not_two_dimensional(bad, name):
    with pytest.raises(ValueError, match=f"{name} must be 2-D"):
        statistics(bad, np.ones((1, 5)))
    with pytest.raises(ValueError, match=f"{name} must be 2-D"):
        statistics(da.from_array(bad), da.ones((1, 5)))
    with pytest.raises(ValueError, match=r"chunks\[0\]\[0\] \(X_chunk\) must be 2-D"):
        statistics_from_chunks([(bad, np.ones((1, 5)))])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite(value):
    X, Y = _data(3, 2, 40)
    Xb, Yb = X.copy(), Y.copy()
    Xb[1, 17] = value
    Yb[0, 33] = value
    with pytest.raises(ValueError, match="X must contain only finite"):
        statistics(Xb, Y)
    with pytest.raises(ValueError, match="X must contain only finite"):
        statistics(da.from_array(Xb, chunks=(3, 10)), da.from_array(Y, chunks=(2, 10)),
                   scheduler="sync")
    with pytest.raises(ValueError, match="Y must contain only finite"):
        statistics(da.from_array(X, chunks=(3, 10)), da.from_array(Yb, chunks=(2, 10)),
                   scheduler="sync")
    with pytest.raises(ValueError, match=r"chunks\[1\]\[1\] \(Y_chunk\) must contain only"):
        statistics_from_chunks(_chunks(X, Yb, 20))


def test_complex_and_non_numeric():
    with pytest.raises(TypeError, match="X must be real"):
        statistics(da.ones((2, 3), dtype=complex), da.ones((1, 3)))
    with pytest.raises(TypeError, match="Y must be real"):
        statistics(np.ones((2, 3)), np.ones((1, 3), dtype=complex))
    with pytest.raises(TypeError, match="Y must have a real numeric dtype"):
        statistics(da.ones((2, 3)), da.from_array(np.array([["a", "b", "c"]])))


def test_empty_and_unknown_shapes():
    with pytest.raises(ValueError, match="X must not be empty"):
        statistics(da.ones((2, 0)), da.ones((1, 0)))
    with pytest.raises(ValueError, match="chunks must hold at least one"):
        statistics_from_chunks(iter([]))
    x = da.ones((2, 10), chunks=(2, 5))
    x = x[:, x[0] > 0]  # unknown number of columns
    with pytest.raises(ValueError, match="X must have known dimensions"):
        statistics(x, x)


def test_inconsistent_chunk_widths():
    with pytest.raises(ValueError, match=r"chunks\[1\] has 3 input .* d0 = 2"):
        statistics_from_chunks([(np.ones((2, 3)), np.ones((1, 3))),
                                (np.ones((3, 3)), np.ones((1, 3)))])


def test_chunks_argument_types():
    with pytest.raises(TypeError, match="chunks must be an iterable"):
        statistics_from_chunks(np.ones((2, 2)))
    with pytest.raises(TypeError, match="chunks must be an iterable"):
        statistics_from_chunks(3)
    with pytest.raises(TypeError, match=r"chunks\[0\] must be a pair"):
        statistics_from_chunks([np.ones((2, 2))])
    with pytest.raises(TypeError, match=r"chunks\[0\] must be a pair"):
        statistics_from_chunks([(np.ones((2, 2)),)])


def test_compute_options_only_for_dask():
    with pytest.raises(TypeError, match="apply only to Dask arrays"):
        statistics(np.ones((2, 3)), np.ones((1, 3)), scheduler="threads")


def test_model_checked_before_streaming():
    calls = []

    def gen():
        calls.append(1)
        yield np.ones((2, 3)), np.ones((1, 3))

    with pytest.raises(ValueError, match="gamma must be >= 0"):
        problem_from_chunks(gen(), hidden=(1,), gamma=-1.0)
    with pytest.raises(TypeError, match=r"hidden\[0\] must be a positive integer"):
        problem_from_dask(da.ones((2, 3)), da.ones((1, 3)), hidden=(1.5,), gamma=1.0)
    assert calls == []


def test_missing_dask_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "dask" or name.startswith("dask."):
            raise ImportError("no dask here")
        return real_import(name, *args, **kwargs)

    x = da.ones((2, 3))
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"duallinear\[dask\]"):
        statistics(x, x)
