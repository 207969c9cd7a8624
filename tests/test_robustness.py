"""Robustness: scale extremes, input dtypes and layouts, and the non-convergence paths.

* Scale invariance (MATH.md section 6, "Scaling"): with ``X -> cx X``, ``Y -> cy Y`` and
  ``gamma -> cx cy gamma`` the optimum is ``cy^2 P*``; DR must reach the same relative accuracy
  for ``cx, cy`` from 1e-8 to 1e8, and the CVXPY path must stay correct with Y scaled by 1e4
  (where a conic solver fed the raw data returns a wrong value).
* Inputs: float32, integer, Fortran-ordered, strided and read-only arrays are accepted by every
  public function that takes arrays, give the float64 answer, and are never modified.
* Non-convergence: tiny ``max_iter`` or ``tol=0`` give ``converged=False`` with a message, the
  values are still valid bounds, and exactly one ConvergenceWarning is raised per call.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from duallinear import prox
from fuzzing import PROFILE, Draw, small_draws

SCALES = (1e-8, 1e-4, 1.0, 1e4, 1e8)


def _gaussian_problem_data(seed: int = 0, d0: int = 5, dH: int = 4, n: int = 8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d0, n)), rng.standard_normal((dH, n))


def _solve(problem: dl.DeepLinearProblem, **kwargs) -> dl.DualResult:
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.ConvergenceWarning)
        return dl.solve_dual(problem, **kwargs)


# ------------------------------------------------------------------------ scale invariance
@pytest.fixture(scope="module")
def base_gaussian():
    X, Y = _gaussian_problem_data()
    problem = dl.DeepLinearProblem(X, Y, (3, 2), 0.3)
    return X, Y, problem, _solve(problem)


@pytest.mark.parametrize("cx", SCALES)
@pytest.mark.parametrize("cy", SCALES)
def test_dr_scale_invariance_gaussian(base_gaussian, cx: float, cy: float) -> None:
    X, Y, base, base_dual = base_gaussian
    problem = dl.DeepLinearProblem(cx * X, cy * Y, base.hidden, base.gamma * cx * cy)
    dual = _solve(problem)
    assert dual.converged
    assert dual.relative_gap <= 1e-10
    # Optimum scales exactly as cy^2; both bounds agree with the unscaled problem.
    assert dual.value / cy**2 == pytest.approx(base_dual.value, rel=1e-9)
    assert dual.upper_bound / cy**2 == pytest.approx(base_dual.upper_bound, rel=1e-9)
    rec = dl.recover(problem, dual)
    assert rec.certified and rec.relative_gap <= 1e-7
    # The recovered product is the unscaled one times cy/cx.
    M = np.linalg.multi_dot(rec.weights[::-1])
    M0 = np.linalg.multi_dot(dl.recover(base, base_dual).weights[::-1])
    assert np.allclose(M * (cx / cy), M0, rtol=1e-6, atol=1e-6 * np.abs(M0).max())


@pytest.mark.parametrize("c", SCALES)
def test_dr_scale_invariance_whitened_matches_closed_form(c: float) -> None:
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((6, 6))
    problem = dl.DeepLinearProblem(c * np.eye(6), c * Y, (4, 3), 0.2 * c * c)
    dual = _solve(problem)
    value, _ = dl.closed_form(problem)
    assert dual.converged
    assert dual.value == pytest.approx(value, rel=1e-10)
    assert value / c**2 == pytest.approx(dl.closed_form(problem.with_gamma(0.2 * c * c))[0]
                                         / c**2, rel=1e-12)
    base_value, _ = dl.closed_form(dl.DeepLinearProblem(np.eye(6), Y, (4, 3), 0.2))
    assert value / c**2 == pytest.approx(base_value, rel=1e-10)


def test_dr_scale_invariance_rank_deficient_extremes() -> None:
    # Rank-deficient X at the two ends of the range, gamma in the interesting middle.
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 9))
    Y = rng.standard_normal((3, 9))
    values = []
    for c in (1e-8, 1.0, 1e8):
        problem = dl.DeepLinearProblem(c * X, c * Y, (2, 2, 2), 0.1 * c * c)
        dual = _solve(problem)
        assert dual.converged and dual.relative_gap <= 1e-10
        values.append(dual.value / c**2)
    assert values == pytest.approx([values[1]] * 3, rel=1e-9)


@settings(max_examples=40 if PROFILE == "ci" else 1000)
@given(small_draws(), st.integers(-8, 8), st.integers(-8, 8))
def test_dr_relative_accuracy_is_scale_free(draw: Draw, ex: int, ey: int) -> None:
    # DR runs in normalised units, so scaling the data changes its iterates only by rounding:
    # the value scales as cy^2 and the relative accuracy reached is the same, converged or not.
    X, Y, gamma = draw.build()
    cx, cy = 10.0**ex, 10.0**ey
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        base = dl.solve_dual(dl.DeepLinearProblem(X, Y, draw.hidden, gamma))
        scaled = dl.solve_dual(dl.DeepLinearProblem(cx * X, cy * Y, draw.hidden,
                                                    gamma * cx * cy))
    zero = 0.5 * float(np.sum(Y * Y))
    assert abs(scaled.value / cy**2 - base.value) <= 1e-8 * max(abs(base.value), 1e-12 * zero)
    assert abs(scaled.upper_bound / cy**2 - base.upper_bound) <= 1e-8 * max(
        abs(base.upper_bound), 1e-12 * zero)
    floor = 1e-11
    assert abs(np.log10(max(scaled.relative_gap, floor)) -
               np.log10(max(base.relative_gap, floor))) <= 1.0


def test_magnitudes_beyond_float_range_are_rejected_or_handled() -> None:
    # ||Y||^2 overflows float64 here although every entry is finite: the library must either
    # work in scaled units (optimum 1e400 P* is not representable, so it cannot) or say so
    # with a ValueError naming Y, not overflow inside (RuntimeWarning / OverflowError).
    X, Y = _gaussian_problem_data(seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="Y"):
            problem = dl.DeepLinearProblem(X, 1e200 * Y, (2,), 1e199)
            dl.solve_dual(problem)


@pytest.mark.parametrize("depth", [2, 3])
def test_cvxpy_path_correct_with_y_scaled_by_1e4(depth: int) -> None:
    # MATH.md section 10: SCS fed this problem in raw units returned 2.2x the optimum. The
    # library's CVXPY path normalises the data first and must agree with the closed form.
    rng = np.random.default_rng(3)
    d = 8
    Y = rng.standard_normal((d, d))
    hidden = (5,) * (depth - 1)
    base = dl.DeepLinearProblem(np.eye(d), Y, hidden, 0.3)
    scaled = dl.DeepLinearProblem(np.eye(d), 1e4 * Y, hidden, 0.3 * 1e4)
    exact, _ = dl.closed_form(scaled)
    assert exact == pytest.approx(1e8 * dl.closed_form(base)[0], rel=1e-12)
    cvx = _solve(scaled, method="cvxpy", tol=1e-9)
    assert cvx.converged, cvx.message
    assert cvx.value <= exact * (1 + 1e-12)  # a lower bound whatever the solver did
    assert cvx.value == pytest.approx(exact, rel=1e-5)
    dr = _solve(scaled)
    assert dr.value == pytest.approx(exact, rel=1e-10)


def test_cvxpy_path_correct_on_general_x_scaled() -> None:
    X, Y = _gaussian_problem_data(seed=4)
    problem = dl.DeepLinearProblem(X, 1e4 * Y, (2,), 0.3 * 1e4)
    dr = _solve(problem)
    cvx = _solve(problem, method="cvxpy", tol=1e-9)
    assert cvx.converged, cvx.message
    assert cvx.value <= dr.upper_bound * (1 + 1e-12)
    assert cvx.value == pytest.approx(dr.value, rel=1e-5)


# ----------------------------------------------------------------- dtypes and layouts
def _variants(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values as float32 / int / Fortran / strided / read-only arrays."""
    out = {}
    out["float32"] = a.astype(np.float32)
    out["int"] = np.rint(a * 3).astype(np.int64)
    out["fortran"] = np.asfortranarray(a)
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3)) if a.ndim == 2 else np.zeros(a.size * 2)
    if a.ndim == 2:
        big[::2, ::3] = a
        out["strided"] = big[::2, ::3]
    else:
        big[::2] = a
        out["strided"] = big[::2]
    ro = a.copy()
    ro.setflags(write=False)
    out["readonly"] = ro
    return out


KINDS = ("float32", "int", "fortran", "strided", "readonly")


def _as64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _assert_same(result, expected, rtol: float = 1e-12) -> None:
    if isinstance(result, (list, tuple)):
        assert len(result) == len(expected)
        for r, e in zip(result, expected, strict=True):
            _assert_same(r, e, rtol)
        return
    if isinstance(result, np.ndarray):
        assert result.dtype == np.float64
        np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol * max(
            1.0, float(np.max(np.abs(expected), initial=0.0))))
    else:
        assert result == pytest.approx(expected, rel=rtol, abs=rtol)


def _check_call(fn, arrays: dict[str, np.ndarray], kind: str, rtol: float = 1e-12):
    """Call ``fn(**variant arrays)``; compare with the float64 call; inputs unchanged."""
    variants = {name: _variants(a)[kind] for name, a in arrays.items()}
    copies = {name: v.copy() for name, v in variants.items()}
    flags = {name: v.flags.writeable for name, v in variants.items()}
    result = fn(**variants)
    expected = fn(**{name: _as64(v) for name, v in variants.items()})
    _assert_same(result, expected, rtol)
    for name, v in variants.items():
        np.testing.assert_array_equal(v, copies[name], err_msg=f"{name} modified in place")
        assert v.dtype == copies[name].dtype
        assert v.flags.writeable == flags[name]
    return result


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 7))
    Y = rng.standard_normal((3, 7))
    return X, Y


@pytest.mark.parametrize("kind", KINDS)
def test_problem_accepts_layouts(data, kind: str) -> None:
    X, Y = data

    def build(X, Y):
        p = dl.DeepLinearProblem(X, Y, (2, 3), 0.1)
        assert p.X.dtype == np.float64 and p.Y.dtype == np.float64
        assert not p.X.flags.writeable and not p.A.flags.writeable
        return [p.X, p.Y, p.A, p.s, p.residual_sq]

    _check_call(build, {"X": X, "Y": Y}, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_problem_does_not_alias_caller_arrays(data, kind: str) -> None:
    X, Y = data
    Xv = _variants(X)[kind]
    if not Xv.flags.writeable:
        return  # nothing the caller could change
    p = dl.DeepLinearProblem(Xv, Y, (2,), 0.1)
    before = p.X.copy()
    Xv[...] = 0
    np.testing.assert_array_equal(p.X, before)


@pytest.mark.parametrize("kind", KINDS)
def test_from_statistics_accepts_layouts(data, kind: str) -> None:
    X, Y = data

    def build(XXt, YXt):
        p = dl.DeepLinearProblem.from_statistics(XXt, YXt, 1e3, (2,), 0.1)
        return [p.s, p.A, p.residual_sq]

    XXt = X @ X.T
    # The integer variant rounds 3 * XXt; keep it symmetric positive definite.
    XXt = XXt + 10 * np.eye(4)
    _check_call(build, {"XXt": XXt, "YXt": Y @ X.T}, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_objective_gradient_primal_init_accept_layouts(data, kind: str) -> None:
    X, Y = data
    problem = dl.DeepLinearProblem(X, Y, (2, 3), 0.1)
    rng = np.random.default_rng(6)
    shapes = problem.weight_shapes
    arrays = {f"W{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}

    def as_list(kw):
        return [kw[f"W{i}"] for i in range(len(shapes))]

    _check_call(lambda **kw: dl.objective(problem, as_list(kw)), arrays, kind)
    _check_call(lambda **kw: dl.gradient(problem, as_list(kw)), arrays, kind)
    _check_call(lambda **kw: problem.check_weights(as_list(kw)), arrays, kind)

    def polish(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dl.ConvergenceWarning)
            res = dl.solve_primal(problem, restarts=1, init=as_list(kw), max_iter=5, seed=0)
        return res.weights

    _check_call(polish, arrays, kind, rtol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_dual_value_accepts_layouts(data, kind: str) -> None:
    X, Y = data
    problem = dl.DeepLinearProblem(X, Y, (2,), 0.1)
    Lam = np.random.default_rng(7).standard_normal((3, 4))
    _check_call(lambda Lambda: dl.dual_value(problem, Lambda), {"Lambda": Lam}, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_balanced_factors_accepts_layouts(kind: str) -> None:
    M = np.random.default_rng(8).standard_normal((3, 4))  # rank 3 <= k = 3
    _check_call(lambda M: dl.balanced_factors(M, (4, 3, 3)), {"M": M}, kind, rtol=1e-10)


MATRIX_PROX = {
    "project_spectral_ball": lambda Z: prox.project_spectral_ball(Z, 1.5),
    "prox_nuclear": lambda Z: prox.prox_nuclear(Z, 0.7),
    "prox_truncated_frobenius_sq": lambda Z: prox.prox_truncated_frobenius_sq(Z, 2, 0.5),
    "prox_schatten_power": lambda Z: prox.prox_schatten_power(Z, 3, 0.5),
    "spectral_apply": lambda Z: prox.spectral_apply(Z, np.sqrt),
}
VECTOR_PROX = {
    "sv_project_ball": lambda s: prox.sv_project_ball(s, 1.5),
    "sv_prox_nuclear": lambda s: prox.sv_prox_nuclear(s, 0.7),
    "sv_prox_truncated_frobenius_sq": lambda s: prox.sv_prox_truncated_frobenius_sq(s, 2, 0.5),
    "sv_prox_schatten_power": lambda s: prox.sv_prox_schatten_power(s, 3, 0.5),
    "truncated_frobenius_sq": lambda s: prox.truncated_frobenius_sq(s, 2),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(MATRIX_PROX))
def test_matrix_prox_accepts_layouts(name: str, kind: str) -> None:
    Z = np.random.default_rng(9).standard_normal((4, 3)) * 2
    _check_call(MATRIX_PROX[name], {"Z": Z}, kind, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(VECTOR_PROX))
def test_vector_prox_accepts_layouts(name: str, kind: str) -> None:
    s = np.abs(np.random.default_rng(10).standard_normal(6)) * 2
    _check_call(VECTOR_PROX[name], {"s": s}, kind, rtol=1e-10)


def test_every_array_taking_public_name_is_covered() -> None:
    # A new public prox operator must be added to the layout tests above.
    assert set(MATRIX_PROX) | set(VECTOR_PROX) == set(prox.__all__)


# ------------------------------------------------------------------- non-convergence
@pytest.fixture(scope="module")
def hard_problem():
    # General (non-whitened) X and a bottleneck: DR needs many iterations here.
    X, Y = _gaussian_problem_data(seed=11, d0=6, dH=5, n=9)
    problem = dl.DeepLinearProblem(X, Y, (2, 3), 0.2)
    reference = _solve(problem)
    assert reference.converged
    return problem, reference


def _one_warning(call, category=dl.ConvergenceWarning):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    hits = [w for w in caught if issubclass(w.category, category)]
    assert len(hits) == 1, [str(w.message) for w in caught]
    return result, str(hits[0].message)


@pytest.mark.parametrize("kwargs", [{"max_iter": 1}, {"max_iter": 3, "primal_refine": False},
                                    {"tol": 0.0, "max_iter": 8, "primal_refine": False}],
                         ids=["max_iter=1", "max_iter=3-plain", "tol=0"])
def test_dr_non_convergence_is_reported_and_bounds_stay_valid(hard_problem, kwargs) -> None:
    # (tol=0 alone may legitimately converge once both bounds agree to the last bit; see
    # test_dr_tol_zero_converges_only_on_an_exact_certificate. The primal refinement, first
    # tried at iteration 2, certifies this problem to a gap of exactly zero, so the runs past
    # iteration 1 are plain DR.)
    problem, reference = hard_problem
    dual, text = _one_warning(lambda: dl.solve_dual(problem, **kwargs))
    assert dual.converged is False
    assert dual.status in ("max_iter", "stalled")
    assert dual.message and dual.message in text
    assert np.isfinite(dual.value) and np.isfinite(dual.upper_bound)
    scale = problem.zero_value
    # The reference brackets the optimum within 1e-10: value must stay below its upper end,
    # upper_bound above its lower end.
    assert dual.value <= reference.upper_bound + 1e-12 * scale
    assert dual.upper_bound >= reference.value - 1e-12 * scale
    # Lambda is feasible and value is the dual objective at it.
    assert np.linalg.norm(dual.Lambda, 2) <= problem.rho * (1 + 1e-12)
    assert dl.dual_value(problem, dual.Lambda) == pytest.approx(dual.value, rel=1e-10,
                                                                abs=1e-12 * scale)
    assert dual.relative_gap > 0


def test_dr_tol_zero_converges_only_on_an_exact_certificate(hard_problem) -> None:
    # tol=0 asks for a certified gap of exactly zero: converged=True is only allowed when the
    # two bounds coincide in floating point; otherwise one warning and converged=False.
    problem, reference = hard_problem
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dual = dl.solve_dual(problem, tol=0.0, max_iter=400)
    n_warn = sum(issubclass(w.category, dl.ConvergenceWarning) for w in caught)
    assert n_warn == (0 if dual.converged else 1)
    if dual.converged:
        assert dual.relative_gap <= 0.0
    assert dual.value <= reference.upper_bound + 1e-12 * problem.zero_value


@pytest.mark.parametrize("max_iter", [1, 2])
def test_dr_whitened_short_runs_stay_valid(max_iter: int) -> None:
    # On whitened X, DR can be exact after one step; whatever it reports must be consistent.
    Y = np.random.default_rng(12).standard_normal((5, 5))
    problem = dl.DeepLinearProblem(np.eye(5), Y, (2,), 0.1)
    exact, _ = dl.closed_form(problem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dual = dl.solve_dual(problem, max_iter=max_iter)
    n_warn = sum(issubclass(w.category, dl.ConvergenceWarning) for w in caught)
    assert n_warn == (0 if dual.converged else 1)
    assert dual.message
    assert dual.value <= exact + 1e-14 * problem.zero_value
    assert dual.upper_bound >= exact - 1e-14 * problem.zero_value
    if dual.converged:
        assert dual.value == pytest.approx(exact, rel=1e-10)


def test_cvxpy_non_convergence_is_reported(hard_problem) -> None:
    problem, reference = hard_problem
    dual, text = _one_warning(lambda: dl.solve_dual(
        problem, method="cvxpy", solver_options={"max_iters": 5}))
    assert dual.converged is False
    assert dual.status != "optimal"
    assert dual.message and "status" in dual.message
    assert dual.value <= reference.upper_bound + 1e-12 * problem.zero_value
    assert np.linalg.norm(dual.Lambda, 2) <= problem.rho * (1 + 1e-12)


def test_primal_non_convergence_is_reported(hard_problem) -> None:
    problem, reference = hard_problem
    res, _ = _one_warning(lambda: dl.solve_primal(problem, restarts=3, max_iter=2, seed=0))
    assert res.converged is False and res.message
    assert res.value == pytest.approx(dl.objective(problem, res.weights), rel=1e-12)
    assert res.value >= reference.value - 1e-12 * problem.zero_value


def test_recover_from_unconverged_dual_warns_once(hard_problem) -> None:
    problem, reference = hard_problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        dual = dl.solve_dual(problem, max_iter=1)
    rec, _ = _one_warning(lambda: dl.recover(problem, dual, polish=False), dl.RecoveryWarning)
    assert rec.certified is False
    assert rec.value == pytest.approx(dl.objective(problem, rec.weights), rel=1e-12)
    # objective minus the float64 dual value, plus the (tiny) rounding allowance
    assert rec.value - dual.float_value <= rec.gap <= rec.value - dual.value + 1e-12
    assert rec.value >= reference.value - 1e-12 * problem.zero_value
