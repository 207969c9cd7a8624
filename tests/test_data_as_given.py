"""Certificates for the data as given: the cases an adversarial harness found, each named.

Ill-conditioned X and the statistics path (items 1-2) are checked against the
extended-precision oracle in ``tests/test_verify.py``; this module holds the named cases of
provenance, extreme scales, the primal's non-finite values, ``tol = 0`` and input validation.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import duallinear as dl

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 8)), rng.standard_normal((3, 8))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        warnings.simplefilter("ignore", dl.RecoveryWarning)
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------ provenance
def test_dual_of_the_same_data_at_another_gamma_is_rejected() -> None:
    # Was accepted: recover() said certified at relative gap -0.22, duality_gap returned -3.5.
    X, Y = _data()
    p1, p2 = dl.DeepLinearProblem(X, Y, (2,), 0.1), dl.DeepLinearProblem(X, Y, (2,), 0.5)
    dual = dl.solve_dual(p1)
    weights = dl.recover_weights(p1, dual)
    with pytest.raises(ValueError, match="another problem"):
        dl.recover(p2, dual)
    with pytest.raises(ValueError, match="another problem"):
        dl.duality_gap(p2, weights, dual)
    with pytest.raises(ValueError, match="another problem"):
        dl.recover(p1.with_gamma(0.5), dual)
    # Explicit evaluation of the point stays available, and is a valid bound for p2 too.
    assert dl.dual_value(p2, dual.Lambda) <= dl.objective(p2, weights)


def test_dual_of_other_data_with_the_same_shapes_is_rejected() -> None:
    X, Y = _data(0)
    X2, Y2 = _data(1)
    dual = dl.solve_dual(dl.DeepLinearProblem(X, Y, (2,), 0.1))
    with pytest.raises(ValueError, match="another problem"):
        dl.recover(dl.DeepLinearProblem(X2, Y2, (2,), 0.1), dual)


def test_the_same_problem_built_twice_shares_its_fingerprint() -> None:
    X, Y = _data()
    p1, p2 = dl.DeepLinearProblem(X, Y, (2,), 0.1), dl.DeepLinearProblem(X.copy(), Y, [2], 0.1)
    assert p1.fingerprint == p2.fingerprint
    assert dl.recover(p2, dl.solve_dual(p1)).certified


# --------------------------------------------------------------------- extreme scales
@pytest.mark.parametrize(("x_scale", "y_scale", "gamma"), [
    (1.0, 1.0, 1e155),     # OverflowError (rho^2) in the zero-network test
    (1.0, 1.0, 1e200),
    (1e-160, 1.0, 0.1),    # OverflowError: normalised rho = 1e159
    (1.0, 1.0, 1e308),     # "upper must not be NaN": rho = inf, inf * 0 in the nuclear norm
    (1.0, 1e150, 1e-163),  # normalised rho subnormal: the DR scaling c / rho overflowed
    (1e-300, 1e-100, 1e154),
    (1e300, 1.0, 1e-290),
])
def test_extreme_scales_give_an_answer_not_an_internal_error(x_scale, y_scale, gamma) -> None:
    X, Y = _data()
    problem = dl.DeepLinearProblem(X * x_scale, Y * y_scale, (2,), gamma)
    dual = _quiet(dl.solve_dual, problem)
    rec = _quiet(dl.recover, problem, dual)
    assert np.isfinite(dual.value) and np.isfinite(rec.value)
    assert dual.value <= rec.value * (1 + 1e-12) + 1e-300
    assert dual.converged and rec.certified, (dual.message, rec.message)


def test_scaling_identity_holds_across_the_float_range() -> None:
    # (cx X, cy Y, gamma cx cy) has the optimum cy^2 P*(X, Y, gamma) (the weights absorb
    # the rest); checked wherever every number stays a normal float64.
    X, Y = _data()
    for gamma in (0.0, 0.1, 3.0):
        ref = dl.solve_dual(dl.DeepLinearProblem(X, Y, (2,), gamma)).value
        for ex, ey in itertools.product((-300, -100, 0, 100, 300), (-140, -50, 0, 50, 150)):
            cx, cy = 10.0**ex, 10.0**ey
            g = gamma * cx * cy
            if gamma and not 1e-290 < g < 1e290:
                continue
            problem = dl.DeepLinearProblem(X * cx, Y * cy, (2,), g)
            value = _quiet(dl.solve_dual, problem).value
            assert value / cy / cy == pytest.approx(ref, rel=1e-12), (gamma, ex, ey)


@pytest.mark.parametrize(("y_scale", "match"), [(1e200, "too large"), (1e-162, "too small")])
def test_unrepresentable_objectives_are_a_value_error_naming_y(y_scale, match) -> None:
    # Y and gamma scaled by 1e-162 gave a ZeroDivisionError; 1/2 ||Y||^2 beyond float64 or
    # among subnormal numbers cannot be certified: a clear error naming Y instead.
    X, Y = _data()
    with pytest.raises(ValueError, match=f"Y is {match}"):
        dl.DeepLinearProblem(X, Y * y_scale, (2,), 0.1 * y_scale)


def test_an_end_to_end_map_beyond_float64_is_a_value_error() -> None:
    # X of 1e-300 with Y of 1e100 at gamma = 0: the optimal M has entries of 1e400.
    X, Y = _data()
    problem = dl.DeepLinearProblem(X * 1e-300, Y * 1e100, (2,), 0.0)
    dual = dl.solve_dual(problem)
    with pytest.raises(ValueError, match="end-to-end map"):
        dl.recover(problem, dual)


# ----------------------------------------------------------------------------- primal
@pytest.mark.parametrize("case", ["gamma 1e200", "init 1e100"])
def test_primal_non_finite_value_is_not_converged(case: str) -> None:
    # Was value=inf, converged=True and no warning.
    X, Y = _data()
    gamma = 1e200 if case == "gamma 1e200" else 0.1
    problem = dl.DeepLinearProblem(X, Y, (2,), gamma)
    init = None if gamma == 1e200 else [np.full((2, 4), 1e100), np.full((3, 2), 1e100)]
    with pytest.warns(dl.ConvergenceWarning):
        res = dl.solve_primal(problem, restarts=1 if init else 2, seed=0, init=init)
    assert res.converged is False
    if not np.isfinite(res.value):
        assert "not finite" in res.message
    assert not any(res.restart_converged[~np.isfinite(res.values)])


@pytest.mark.parametrize("fn", [dl.objective, dl.gradient])
def test_objective_and_gradient_overflow_is_a_value_error(fn) -> None:
    # Was NaN (inf - inf) for weights of 1e200.
    X, Y = _data()
    problem = dl.DeepLinearProblem(X, Y, (2,), 0.1)
    with pytest.raises(ValueError, match="weights"):
        fn(problem, [np.full((2, 4), 1e200), np.full((3, 2), 1e200)])


# ----------------------------------------------------------------------------- tol = 0
def test_tol_zero_is_never_converged_even_when_the_zero_network_is_optimal() -> None:
    X, Y = _data()
    problem = dl.DeepLinearProblem(X, Y, (2,), 100.0)
    with pytest.warns(dl.ConvergenceWarning):
        dual = dl.solve_dual(problem, tol=0.0)
    assert dual.converged is False and dual.status == "zero_network"
    assert dual.value == pytest.approx(problem.zero_value, rel=1e-14)
    assert dl.solve_dual(problem).converged


# ------------------------------------------------------------------------- validation
def test_masked_arrays_are_rejected_not_unmasked() -> None:
    X, Y = _data()
    masked = np.ma.masked_array(X, mask=X > 1)
    with pytest.raises(TypeError, match="X is a masked array"):
        dl.DeepLinearProblem(masked, Y, (2,), 0.1)
    with pytest.raises(TypeError, match="masked"):
        dl.distributed.statistics_from_chunks([(masked, Y)])


@pytest.mark.parametrize(("hidden", "error"), [
    (np.array(2), TypeError),          # was "'int' object is not iterable"
    (np.array([[2, 2]]), TypeError),
    ((2**70,), ValueError),            # was accepted, failing later inside numpy
])
def test_hidden_widths_are_validated(hidden, error) -> None:
    X, Y = _data()
    with pytest.raises(error, match="hidden"):
        dl.DeepLinearProblem(X, Y, hidden, 0.1)


def test_certifying_weights_reuses_the_dual_points_rounding_terms_only_for_that_point() -> None:
    """solve_dual keeps the rounding terms at its Gamma so that recover/duality_gap need no
    second SVD of A - Gamma; a copy of the result with another Gamma must not inherit them,
    and the reused terms give the gap a fresh computation gives."""
    import dataclasses

    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 5)) @ np.diag(np.logspace(0, -7, 5)) @ rng.standard_normal((5, 30))
    problem = dl.DeepLinearProblem(X, rng.standard_normal((4, 30)), (3, 3), 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        dual = dl.solve_dual(problem)
    assert dual._rounding_detail is not None
    weights = dl.recover_weights(problem, dual)
    fresh = dataclasses.replace(dual)
    assert fresh._rounding_detail is None
    reused, recomputed = dl.duality_gap(problem, weights, dual), dl.duality_gap(problem, weights,
                                                                                 fresh)
    assert abs(reused - recomputed) <= 1e-12 * problem.zero_value
    moved = dataclasses.replace(dual, Gamma=0.5 * dual.Gamma, Lambda=0.5 * dual.Lambda)
    assert moved._rounding_detail is None
