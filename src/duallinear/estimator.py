"""A scikit-learn estimator: fit a regularised deep linear network to certified optimality.

:class:`DeepLinearRegressor` follows scikit-learn's conventions (rows are samples, ``fit`` /
``predict`` / ``score``, fitted attributes ending in ``_``); behind it the data is transposed
into the library's columns-as-samples convention, centred when an intercept is fitted, and
solved through the dual (:func:`~duallinear.solve_dual`, :func:`~duallinear.recover`). Needs
scikit-learn (``pip install "duallinear[sklearn]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._optional import require
from .dual import DUAL_METHODS, solve_dual
from .primal import end_to_end
from .problem import DeepLinearProblem
from .recovery import recover
from .results import DualResult, summary

# scikit-learn is optional: importing this module without it names the extra to install.
_base = require("sklearn.base", "DeepLinearRegressor")
_validation = require("sklearn.utils.validation", "DeepLinearRegressor")

__all__ = ["DeepLinearRegressor", "Certificate", "PENALTIES"]

#: Penalties the estimator accepts: ``"schatten"`` is ``gamma sum_i ||W_i||_{S_H}^H``.
PENALTIES = ("schatten",)


@dataclass(frozen=True, eq=False, repr=False)
class Certificate:
    """How far a fitted network is from the global optimum of its training problem.

    Attributes
    ----------
    value : float
        Training objective of the fitted weights, ``1/2 ||M X_c - Y_c||_F^2 + gamma sum_i
        ||W_i||_{S_H}^H`` on the centred data (the intercept is optimal for any ``M``).
    lower_bound : float
        The dual value: no network of these widths does better than this.
    gap : float
        ``value - lower_bound``: a bound on how much better any network could do.
    relative_gap : float
        ``gap / max(|value|, 1e-8 * 1/2 ||Y_c||^2)``.
    certified : bool
        ``relative_gap <= tol`` of the estimator.
    message : str
        What the dual solver and the recovery did.
    dual : DualResult
        The dual solution the certificate rests on (the problem is the estimator's
        ``problem_``).
    """

    value: float
    lower_bound: float
    gap: float
    relative_gap: float
    certified: bool
    message: str
    dual: DualResult

    def __repr__(self) -> str:
        return summary(self, ("certified",))


class DeepLinearRegressor(_base.MultiOutputMixin, _base.RegressorMixin, _base.BaseEstimator):
    """Deep linear network regression solved to certified global optimality.

    Fits ``y ~ W_H .. W_1 x + b`` by minimising, over the layers ``W_i`` and the intercept
    ``b``,

    ``1/2 sum_samples ||W_H .. W_1 x + b - y||^2 + gamma sum_i ||W_i||_{S_H}^H``,

    through the convex dual of the problem: the fitted weights come with a certificate, a
    bound on how far their objective is from the global optimum. Rows of ``X`` and ``y`` are
    samples (scikit-learn's convention; the rest of the library puts samples in columns).

    Parameters
    ----------
    hidden : sequence of int
        Hidden widths ``(d_1, .., d_{H-1})``: ``H = len(hidden) + 1`` layers. The narrowest,
        ``k = min(hidden)``, bounds the rank of the end-to-end map.
    gamma : float >= 0
        Weight of the Schatten-H penalty (on the end-to-end map ``M`` it equals
        ``gamma H ||M||_*``, a nuclear-norm penalty).
    fit_intercept : bool, default True
        Fit the unpenalised intercept ``b`` (by centring ``X`` and ``y``: exact, the
        intercept is optimal in closed form for every ``M``).
    penalty : {"schatten"}, default "schatten"
        ``gamma sum_i ||W_i||_{S_H}^H`` with ``H`` the depth.
    tol : float, default 1e-10
        Relative certified gap the dual solver and the recovery aim for.
    max_iter : int, default 5000
        Iteration cap of the dual solver.
    method : {"dr", "cvxpy"}, default "dr"
        Douglas-Rachford, or the CVXPY reference path (needs ``duallinear[cvxpy]``).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        The end-to-end map ``M = W_H .. W_1`` (1-D when ``y`` was 1-D).
    intercept_ : float or ndarray of shape (n_targets,)
        The intercept ``b`` (0 when ``fit_intercept=False``).
    weights_ : list of ndarray
        ``[W_1, .., W_H]``, ``W_i`` of shape ``(d_i, d_{i-1})``, ``d_0 = n_features``,
        ``d_H = n_targets``; balanced factors of ``M``.
    certificate_ : Certificate
        The certified gap of the fit and the dual solution behind it.
    problem_ : DeepLinearProblem
        The training problem in the library's convention (centred data, samples in columns).
    n_iter_ : int
        Iterations of the dual solver (0 when it needed none: ``gamma = 0``, or the zero
        network optimal).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from duallinear import DeepLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 20))                       # 200 samples, 20 features
    >>> Y = X @ rng.standard_normal((20, 5)) + 1.0 + 0.1 * rng.standard_normal((200, 5))
    >>> model = DeepLinearRegressor(hidden=(3, 3), gamma=0.5).fit(X, Y)
    >>> model.coef_.shape, model.predict(X).shape, len(model.weights_)
    ((5, 20), (200, 5), 3)
    >>> model.certificate_.certified, bool(model.certificate_.relative_gap <= 1e-10)
    (True, True)
    """

    def __init__(self, hidden: Sequence[int], gamma: float, *, fit_intercept: bool = True,
                 penalty: str = "schatten", tol: float = 1e-10, max_iter: int = 5000,
                 method: str = "dr") -> None:
        self.hidden = hidden
        self.gamma = gamma
        self.fit_intercept = fit_intercept
        self.penalty = penalty
        self.tol = tol
        self.max_iter = max_iter
        self.method = method

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags

    def _check_params(self) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise TypeError(f"fit_intercept must be a bool, got "
                            f"{type(self.fit_intercept).__name__}")
        if self.method not in DUAL_METHODS:
            raise ValueError(f"method must be one of {DUAL_METHODS}, got {self.method!r}")

    def fit(self, X, y) -> DeepLinearRegressor:
        """Fit the network to ``X`` (n_samples, n_features) and ``y`` (n_samples,) or
        (n_samples, n_targets); returns ``self``."""
        self._check_params()
        X, y = _validation.validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=np.float64)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        if self.fit_intercept:
            x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
        else:
            x_mean, y_mean = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
        problem = DeepLinearProblem((X - x_mean).T, (Y - y_mean).T, self.hidden, self.gamma)
        dual = solve_dual(problem, method=self.method, tol=self.tol, max_iter=self.max_iter)
        rec = recover(problem, dual, tol=self.tol)
        M = end_to_end(rec.weights)
        intercept = y_mean - M @ x_mean
        self.problem_ = problem
        self.n_iter_ = dual.iterations
        self.weights_ = rec.weights
        self.coef_ = M[0] if y.ndim == 1 else M
        self.intercept_ = float(intercept[0]) if y.ndim == 1 else intercept
        self.certificate_ = Certificate(
            value=rec.value, lower_bound=dual.value, gap=rec.gap,
            relative_gap=rec.relative_gap, certified=rec.certified,
            message=f"dual: {dual.message}; weights: {rec.message}", dual=dual)
        return self

    def predict(self, X) -> np.ndarray:
        """``X @ coef_.T + intercept_``: shape (n_samples,) or (n_samples, n_targets)."""
        _validation.check_is_fitted(self)
        X = _validation.validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_
