"""DeepLinearRegressor: scikit-learn's conventions on top of the column-convention core."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import check_estimator

import duallinear as dl
from duallinear import DeepLinearRegressor

pytestmark = pytest.mark.usefixtures("single_thread_blas")


def _rows(n: int = 200, d0: int = 20, dH: int = 20, seed: int = 0):
    # Rows as samples, d0 == dH: the shape the column convention used to misread silently.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d0)) + 3.0
    B = rng.standard_normal((d0, 4)) @ rng.standard_normal((4, dH))
    Y = X @ B + np.linspace(-2, 2, dH) + 0.3 * rng.standard_normal((n, dH))
    return X, Y


# (scikit-learn skips its pandas and array-API checks when those are not set up.)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("params", [dict(hidden=(2,), gamma=0.1),
                                    dict(hidden=(3, 2), gamma=0.5, fit_intercept=False)])
def test_passes_scikit_learns_check_estimator(params) -> None:
    check_estimator(DeepLinearRegressor(**params))


def test_rows_as_samples_with_intercept_match_the_column_api() -> None:
    X, Y = _rows()
    model = DeepLinearRegressor(hidden=(5, 5), gamma=2.0).fit(X, Y)
    assert model.n_features_in_ == 20 and model.coef_.shape == (20, 20)
    assert [W.shape for W in model.weights_] == [(5, 20), (5, 5), (20, 5)]
    # The same problem written by hand in the column convention (samples in columns,
    # centred data: the intercept is then optimal for every M).
    xm, ym = X.mean(axis=0), Y.mean(axis=0)
    problem = dl.DeepLinearProblem((X - xm).T, (Y - ym).T, (5, 5), 2.0)
    assert (problem.d0, problem.dH, problem.n) == (20, 20, 200)
    dual = dl.solve_dual(problem)
    M = dl.end_to_end(dl.recover_weights(problem, dual))
    np.testing.assert_allclose(model.coef_, M, rtol=1e-7, atol=1e-9 * np.abs(M).max())
    np.testing.assert_allclose(model.intercept_, ym - M @ xm, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(model.predict(X), (M @ (X - xm).T).T + ym, rtol=1e-7,
                               atol=1e-7)
    # The certificate, read from the estimator and recomputed through the column API.
    cert = model.certificate_
    assert cert.certified and cert.relative_gap <= 1e-10
    assert cert.lower_bound == pytest.approx(dual.value, rel=1e-10)
    assert cert.value == pytest.approx(dl.objective(model.problem_, model.weights_), rel=1e-14)
    gap = dl.duality_gap(model.problem_, model.weights_, cert.dual)
    assert gap == pytest.approx(cert.gap, abs=1e-9 * cert.value)
    # Optimal intercept: the residuals have mean zero.
    np.testing.assert_allclose((Y - model.predict(X)).mean(axis=0), 0.0, atol=1e-9)
    assert "Certificate(certified=True)" in repr(cert)


def test_gamma_zero_with_a_wide_network_is_least_squares() -> None:
    # Independent oracle: no penalty and no rank bound is ordinary least squares.
    X, Y = _rows(n=60, d0=6, dH=3, seed=1)
    model = DeepLinearRegressor(hidden=(6,), gamma=0.0).fit(X, Y)
    ols = LinearRegression().fit(X, Y)
    np.testing.assert_allclose(model.coef_, ols.coef_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, ols.intercept_, rtol=1e-9, atol=1e-9)
    assert model.score(X, Y) == pytest.approx(ols.score(X, Y), rel=1e-12)


def test_one_dimensional_targets() -> None:
    X, Y = _rows(n=50, d0=4, dH=1, seed=2)
    y = Y[:, 0]
    model = DeepLinearRegressor(hidden=(1,), gamma=0.3).fit(X, y)
    assert model.coef_.shape == (4,) and isinstance(model.intercept_, float)
    assert model.predict(X).shape == (50,)
    column = DeepLinearRegressor(hidden=(1,), gamma=0.3).fit(X, Y)
    np.testing.assert_allclose(model.coef_, column.coef_[0], rtol=1e-12)
    np.testing.assert_allclose(model.predict(X), column.predict(X)[:, 0], rtol=1e-12)


def test_without_intercept_the_map_goes_through_the_origin() -> None:
    X, Y = _rows(n=40, d0=5, dH=3, seed=3)
    model = DeepLinearRegressor(hidden=(2,), gamma=0.1, fit_intercept=False).fit(X, Y)
    assert np.all(model.intercept_ == 0.0)
    problem = dl.DeepLinearProblem(X.T, Y.T, (2,), 0.1)
    assert model.certificate_.lower_bound == pytest.approx(dl.solve_dual(problem).value,
                                                           rel=1e-10)


def test_works_inside_model_selection() -> None:
    X, Y = _rows(n=90, d0=6, dH=4, seed=4)
    search = GridSearchCV(DeepLinearRegressor(hidden=(2,), gamma=1.0),
                          {"gamma": [0.01, 1.0, 100.0]}, cv=3).fit(X, Y)
    assert search.best_params_["gamma"] in (0.01, 1.0)  # 100 shrinks M to nearly zero
    assert search.best_estimator_.certificate_.certified


@pytest.mark.parametrize(("params", "pattern"), [
    (dict(penalty="frobenius"), "penalty"),
    (dict(method="admm"), "method"),
    (dict(fit_intercept="yes"), "fit_intercept"),
])
def test_bad_parameters_are_named_at_fit(params, pattern) -> None:
    X, Y = _rows(n=10, d0=3, dH=2)
    with pytest.raises((ValueError, TypeError), match=pattern):
        DeepLinearRegressor(hidden=(2,), gamma=0.1, **params).fit(X, Y)


def test_missing_scikit_learn_names_the_extra(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "duallinear.estimator")
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    with pytest.raises(ImportError, match=r'pip install "duallinear\[sklearn\]"'):
        dl.DeepLinearRegressor  # noqa: B018 - the attribute access is the import
