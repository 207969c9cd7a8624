"""The conveniences of the public API: Generator seeds, progress callbacks, the end-to-end
map, short result reprs and arrays from other libraries (through ``__array__`` / DLPack)."""

from __future__ import annotations

import numpy as np
import pytest

import duallinear as dl

pytestmark = pytest.mark.usefixtures("single_thread_blas")

RNG = np.random.default_rng(3)
X, Y = RNG.standard_normal((6, 15)), RNG.standard_normal((4, 15))
PROBLEM = dl.DeepLinearProblem(X, Y, (3, 3), 0.2)


# ------------------------------------------------------------------------------ seeds
def test_generator_seed_is_reported_and_reproduces_the_starts() -> None:
    first = dl.solve_primal(PROBLEM, restarts=3, seed=np.random.default_rng(7))
    again = dl.solve_primal(PROBLEM, restarts=3, seed=np.random.default_rng(7))
    assert isinstance(first.seed, int)
    np.testing.assert_array_equal(first.values, again.values)
    # The reported seed is an ordinary int seed that draws the same starts.
    replay = dl.solve_primal(PROBLEM, restarts=3, seed=first.seed)
    np.testing.assert_array_equal(replay.values, first.values)
    for a, b in zip(replay.weights, first.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_generator_advances_between_calls() -> None:
    rng = np.random.default_rng(11)
    with pytest.warns(dl.ConvergenceWarning):  # three iterations: only the start matters
        a = dl.solve_primal(PROBLEM, restarts=1, seed=rng, max_iter=3, tol=0.0)
    with pytest.warns(dl.ConvergenceWarning):
        b = dl.solve_primal(PROBLEM, restarts=1, seed=rng, max_iter=3, tol=0.0)
    assert a.seed != b.seed and a.values[0] != b.values[0]


# -------------------------------------------------------------------------- callbacks
def test_primal_callback_sees_every_restart_in_order() -> None:
    seen = []
    res = dl.solve_primal(PROBLEM, restarts=4, seed=0,
                          callback=lambda j, value, ok: seen.append((j, value, ok)))
    assert [j for j, _, _ in seen] == [0, 1, 2, 3]
    np.testing.assert_allclose([v for _, v, _ in seen], res.values, rtol=1e-12)
    assert [ok for _, _, ok in seen] == list(res.restart_converged)


def test_primal_callback_with_parallel_restarts() -> None:
    seen = []
    res = dl.solve_primal(PROBLEM, restarts=3, seed=0, n_jobs=2,
                          callback=lambda j, value, ok: seen.append(j))
    assert seen == [0, 1, 2] and res.values.shape == (3,)


@pytest.mark.parametrize("whitened", [True, False])
def test_dual_callback_sees_each_checked_gap(whitened: bool) -> None:
    problem = (dl.DeepLinearProblem(np.eye(6), Y[:, :6], (2,), 0.3) if whitened
               else dl.DeepLinearProblem(X, Y, (2,), 0.3))
    seen = []
    res = dl.solve_dual(problem, primal_refine=False,
                        callback=lambda it, gap: seen.append((it, gap)))
    assert res.converged
    np.testing.assert_array_equal([g for _, g in seen], res.gaps)
    iterations = [it for it, _ in seen]
    assert iterations == sorted(iterations) and iterations[-1] == res.iterations


def test_dual_callback_not_called_without_iterations() -> None:
    seen = []
    dl.solve_dual(PROBLEM.with_gamma(0.0), callback=lambda *a: seen.append(a))
    assert seen == []


# ------------------------------------------------------------------------ end to end
def test_end_to_end_is_the_product_of_the_layers() -> None:
    res = dl.solve_primal(PROBLEM, restarts=1, seed=0)
    W1, W2, W3 = res.weights
    np.testing.assert_allclose(dl.end_to_end(res.weights), W3 @ W2 @ W1, rtol=1e-14)
    assert dl.end_to_end(res.weights).shape == (PROBLEM.dH, PROBLEM.d0)
    # The objective is the data fit of that map plus the penalty.
    M = dl.end_to_end(res.weights)
    fit = 0.5 * np.sum((M @ X - Y) ** 2)
    penalty = 0.2 * sum(np.sum(np.linalg.svd(W, compute_uv=False) ** 3)
                        for W in res.weights)
    assert dl.objective(PROBLEM, res.weights) == pytest.approx(fit + penalty, rel=1e-12)


# ------------------------------------------------------------------------------ reprs
def test_result_reprs_are_short_and_informative() -> None:
    rng = np.random.default_rng(0)
    problem = dl.DeepLinearProblem(rng.standard_normal((100, 300)),
                                   rng.standard_normal((60, 300)), (20, 20), 0.5)
    dual = dl.solve_dual(problem)
    rec = dl.recover(problem, dual)
    primal = dl.solve_primal(problem, restarts=2, seed=0)
    for result, words in [
        (dual, ["DualResult(method='dr'", "status='converged'", "value:", "relative_gap:",
                "iterations:", "time:", "Lambda: array (60, 100)", "Gamma: array (60, 100)",
                "DualDiagnostics("]),
        (rec, ["Recovery(certified=True", "gap:", "weights: 3 arrays (20, 100), (20, 20), "
               "(60, 20)"]),
        (primal, ["PrimalResult(method='lbfgs'", "value:", "values: array (2,)", "seed: 0"]),
    ]:
        text = repr(result)
        assert len(text) < 1000, (len(text), text)
        for word in words:
            assert word in text, (word, text)
        assert "[[" not in text and "e-01," not in text  # no array contents
    assert f"{dual.value:.12g}" in repr(dual) and f"{dual.relative_gap:.3e}" in repr(dual)
    # The arrays are still there, as attributes.
    assert dual.Lambda.shape == (60, 100) and len(rec.weights) == 3


def test_diagnostics_repr_lists_what_was_counted() -> None:
    assert repr(dl.DualDiagnostics()) == "DualDiagnostics()"
    d = dl.DualDiagnostics(refine_attempts=1, maps_svd=4)
    assert repr(d) == "DualDiagnostics(refine_attempts=1, maps_svd=4)"


def test_cvxpy_result_repr() -> None:
    text = repr(dl.solve_dual(PROBLEM, method="cvxpy"))
    assert text.startswith("DualResult(method='cvxpy', status='optimal'")
    assert "residuals: array (0,)" in text


# ---------------------------------------------------------------------------- interop
class _OnlyDLPack:
    """An array of another library as numpy sees it through DLPack alone (like a CPU tensor
    whose ``__array__`` is unavailable)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class _OnlyArray:
    """``__array__`` only (the protocol PyTorch CPU tensors and JAX arrays implement)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


class _OnDevice:
    """Memory numpy cannot read (a GPU array): both protocols refuse."""

    shape = (4, 15)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed")

    def __dlpack__(self, *args, **kwargs):
        raise BufferError("device memory")

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA


@pytest.mark.parametrize("wrap", [_OnlyDLPack, _OnlyArray])
def test_foreign_arrays_are_accepted_everywhere(wrap) -> None:
    res = dl.solve_primal(PROBLEM, restarts=1, seed=0)
    foreign = [wrap(W.astype(np.float32)) for W in res.weights]
    expected = dl.objective(PROBLEM, [W.astype(np.float32) for W in res.weights])
    assert dl.objective(PROBLEM, foreign) == expected
    np.testing.assert_array_equal(dl.end_to_end(foreign),
                                  dl.end_to_end([W.astype(np.float32) for W in res.weights]))
    problem = dl.DeepLinearProblem(wrap(X), wrap(Y), (3, 3), 0.2)
    np.testing.assert_array_equal(problem.A, PROBLEM.A)
    dual = dl.solve_dual(problem)
    assert dl.duality_gap(problem, foreign, dual) >= -1e-9


def test_arrays_numpy_cannot_read_give_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"Y: a _OnDevice could not be read.*\.cpu\(\)"):
        dl.DeepLinearProblem(X, _OnDevice(), (3, 3), 0.2)
