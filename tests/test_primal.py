"""The primal problem (4): objective, exact gradient and multi-restart local search.

Oracles: the formula evaluated straight from X, Y and the weights with numpy (never the
library's reduced data), central finite differences, and the dual / closed form for optima.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import (
    GENERAL_CASES,
    IDENTITY_CASES,
    Case,
    direct_objective,
    expect_warning,
    problem_of,
    problems,
    random_weights,
    rel_diff,
    zero_weights,
)

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SETTINGS = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------- objective and gradient
@SETTINGS
@given(data=problems(), scale=st.sampled_from([0.0, 0.1, 1.0, 3.0]))
def test_objective_matches_the_direct_formula(data, scale) -> None:
    problem, X, Y, rng = data
    weights = random_weights(problem, rng, scale)
    expected = direct_objective(X, Y, weights, problem.gamma)
    got = dl.objective(problem, weights)
    assert isinstance(got, float)
    assert rel_diff(got, expected) <= 1e-10, (got, expected)


def _flat(ws: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([w.ravel() for w in ws])


@SETTINGS
@given(data=problems(), scale=st.sampled_from([0.3, 1.0, 2.0]))
def test_gradient_matches_central_finite_differences(data, scale) -> None:
    problem, X, Y, rng = data
    weights = random_weights(problem, rng, scale)
    grads = dl.gradient(problem, weights)
    assert [g.shape for g in grads] == [w.shape for w in weights]
    for _ in range(3):
        D = [rng.standard_normal(w.shape) for w in weights]
        h = 1e-5

        def at(step: float, D=D) -> float:
            return dl.objective(problem, [w + step * d for w, d in zip(weights, D, strict=True)])

        fd = (at(h) - at(-h)) / (2 * h)
        exact = float(np.dot(_flat(grads), _flat(D)))
        norm = float(np.linalg.norm(_flat(grads)) * np.linalg.norm(_flat(D)))
        assert abs(fd - exact) <= 1e-6 * (norm + abs(dl.objective(problem, weights))), (fd, exact)


@pytest.mark.parametrize("H", [2, 3, 4, 5])
def test_gradient_entrywise_on_a_small_problem(H: int) -> None:
    rng = np.random.default_rng(H)
    X = rng.standard_normal((3, 5))
    Y = rng.standard_normal((2, 5))
    problem = dl.DeepLinearProblem(X, Y, [2] * (H - 1), 0.7)
    weights = random_weights(problem, rng)
    grads = dl.gradient(problem, weights)
    h = 1e-6
    for i, W in enumerate(weights):
        fd = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            E = np.zeros_like(W)
            E[idx] = h
            plus = [w + E if j == i else w for j, w in enumerate(weights)]
            minus = [w - E if j == i else w for j, w in enumerate(weights)]
            fd[idx] = (direct_objective(X, Y, plus, 0.7)
                       - direct_objective(X, Y, minus, 0.7)) / (2 * h)
        np.testing.assert_allclose(grads[i], fd, rtol=1e-6, atol=1e-7)


def test_gradient_of_regulariser_at_rank_deficient_weights() -> None:
    """``||W||_{S_H}^H`` is differentiable at singular W (H >= 2): zero singular values
    contribute nothing; the gradient is H U diag(s^(H-1)) V^T."""
    X = np.eye(3)
    problem = dl.DeepLinearProblem(X, np.zeros((3, 3)), [3, 3], 1.0)  # H = 3, data term 0
    W1 = np.diag([2.0, 0.0, 0.0])
    grads = dl.gradient(problem, [W1, np.zeros((3, 3)), np.zeros((3, 3))])
    np.testing.assert_allclose(grads[0], np.diag([12.0, 0.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(grads[1], 0.0, atol=0)


@pytest.mark.parametrize("H", [2, 3, 4])
def test_origin_is_a_critical_point(H: int) -> None:
    problem = problem_of(GENERAL_CASES[H - 2])
    zeros = zero_weights(problem)
    assert dl.objective(problem, zeros) == pytest.approx(problem.zero_value, rel=1e-14)
    for g in dl.gradient(problem, zeros):
        np.testing.assert_array_equal(g, 0.0)


def test_integer_weights_are_accepted() -> None:
    problem = dl.DeepLinearProblem(np.eye(2), np.ones((2, 2)), [2], 0.5)
    ints = [np.eye(2, dtype=int), np.eye(2, dtype=np.int32)]
    assert dl.objective(problem, ints) == dl.objective(problem, [np.eye(2), np.eye(2)])


# ------------------------------------------------------------------- solve_primal
@pytest.mark.parametrize("case", [IDENTITY_CASES[1], GENERAL_CASES[5]], ids=lambda c: c.id)
def test_result_fields(case: Case) -> None:
    problem = problem_of(case)
    res = dl.solve_primal(problem, restarts=3, seed=1)
    assert res.method == "lbfgs" and res.seed == 1
    assert res.values.shape == (3,) and res.restart_converged.shape == (3,)
    assert res.best_restart == int(np.argmin(res.values))
    assert [W.shape for W in res.weights] == problem.weight_shapes
    assert res.value == pytest.approx(dl.objective(problem, res.weights), rel=1e-14)
    assert res.value == pytest.approx(res.values.min(), rel=1e-10)
    assert res.converged and res.iterations >= 1 and res.time >= 0
    assert "3" in res.message


def test_same_seed_same_result() -> None:
    problem = problem_of(GENERAL_CASES[7])
    a = dl.solve_primal(problem, restarts=3, seed=42)
    b = dl.solve_primal(problem, restarts=3, seed=42)
    np.testing.assert_array_equal(a.values, b.values)
    for Wa, Wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
    c = dl.solve_primal(problem, restarts=3, seed=43)
    assert not all(np.array_equal(Wa, Wc) for Wa, Wc in zip(a.weights, c.weights, strict=True))


def test_parallel_restarts_give_the_same_result() -> None:
    problem = problem_of(GENERAL_CASES[1])
    serial = dl.solve_primal(problem, restarts=2, seed=5)
    parallel = dl.solve_primal(problem, restarts=2, seed=5, n_jobs=2)
    np.testing.assert_allclose(parallel.values, serial.values, rtol=1e-12)


def test_gd_reaches_the_closed_form() -> None:
    rng = np.random.default_rng(8)
    problem = dl.DeepLinearProblem(np.eye(5), rng.standard_normal((5, 5)), [2], 0.3)
    res = dl.solve_primal(problem, method="gd", restarts=2, seed=0, tol=1e-8)
    assert res.method == "gd"
    assert res.converged, res.message
    assert rel_diff(res.value, dl.closed_form(problem).value) <= 1e-8


def test_init_polishes_given_weights() -> None:
    case = GENERAL_CASES[4]
    problem = problem_of(case)
    rng = np.random.default_rng(0)
    start = random_weights(problem, rng, 0.5)
    res = dl.solve_primal(problem, restarts=1, init=start)
    assert res.value < dl.objective(problem, start)
    # From an optimum, the polish stays there.
    best = dl.solve_primal(problem, restarts=2, seed=0)
    again = dl.solve_primal(problem, restarts=1, init=best.weights)
    assert again.value <= best.value * (1 + 1e-12)


def test_max_iter_one_warns_and_reports_not_converged() -> None:
    case = GENERAL_CASES[4]
    problem = problem_of(case)
    optimum = dl.solve_dual(problem).value
    with expect_warning(dl.ConvergenceWarning, match="did not converge"):
        res = dl.solve_primal(problem, restarts=2, seed=0, max_iter=1)
    assert res.converged is False
    assert not res.restart_converged.any()
    assert res.value >= optimum * (1 - 1e-12)  # an upper bound, however early it stopped


def test_gd_with_a_diverging_step_reports_it() -> None:
    """A learning rate far too large makes plain GD blow up: that must come back as
    converged=False with a warning, not as a numpy overflow inside the library."""
    rng = np.random.default_rng(9)
    problem = dl.DeepLinearProblem(np.eye(4), rng.standard_normal((4, 4)), [2, 2], 0.1)
    with expect_warning(dl.ConvergenceWarning):
        res = dl.solve_primal(problem, method="gd", restarts=1, seed=0, lr=1e6, max_iter=50)
    assert res.converged is False
    assert "diverged" in res.message


def test_converged_run_is_silent() -> None:
    problem = problem_of(IDENTITY_CASES[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = dl.solve_primal(problem, restarts=2, seed=0)
    assert res.converged


# ---------------------------------------------------------------------- bad input
def test_objective_rejects_bad_weights() -> None:
    problem = dl.DeepLinearProblem(np.eye(3), np.ones((2, 3)), [4, 5], 0.1)
    good = zero_weights(problem)  # shapes (4,3), (5,4), (2,5)
    with pytest.raises(ValueError, match=r"weights must hold H = 3 matrices, got 2"):
        dl.objective(problem, good[:2])
    with pytest.raises(ValueError, match=r"weights\[1\] \(W_2\) must have shape"):
        dl.objective(problem, [good[0], np.zeros((4, 5)), good[2]])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        dl.objective(problem, [good[0].T, good[1], good[2]])
    with pytest.raises(TypeError, match="weights must be a list"):
        dl.objective(problem, np.zeros((3, 4, 5)))
    with pytest.raises(TypeError, match="weights must be a list"):
        dl.objective(problem, None)
    bad = [w.copy() for w in good]
    bad[2][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"weights\[2\].*finite"):
        dl.objective(problem, bad)
    with pytest.raises(TypeError, match=r"weights\[0\].*real"):
        dl.objective(problem, [good[0] + 0j, good[1], good[2]])
    with pytest.raises(ValueError, match=r"weights\[1\].*2-D"):
        dl.objective(problem, [good[0], np.zeros(20), good[2]])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        dl.gradient(problem, [good[0], np.zeros((5, 5)), good[2]])
    with pytest.raises(TypeError, match="problem"):
        dl.objective("problem", good)


def test_solve_primal_rejects_bad_arguments() -> None:
    problem = dl.DeepLinearProblem(np.eye(3), np.ones((2, 3)), [2], 0.1)
    with pytest.raises(ValueError, match="restarts"):
        dl.solve_primal(problem, restarts=0)
    with pytest.raises(ValueError, match="method"):
        dl.solve_primal(problem, method="adam")
    with pytest.raises(ValueError, match="seed"):
        dl.solve_primal(problem, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        dl.solve_primal(problem, seed=1.5)
    with pytest.raises(ValueError, match="lr"):
        dl.solve_primal(problem, method="gd", lr=0.0)
    with pytest.raises(ValueError, match="n_jobs"):
        dl.solve_primal(problem, n_jobs=0)
    with pytest.raises(ValueError, match="tol"):
        dl.solve_primal(problem, tol=-1e-3)
    with pytest.raises(ValueError, match="init"):
        dl.solve_primal(problem, init=[np.zeros((3, 2)), np.zeros((2, 2))])
    with pytest.raises(TypeError, match="problem"):
        dl.solve_primal(None)
