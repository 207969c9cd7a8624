"""The reduction of in-memory samples through ``X X^T`` (problem._reduce_gram).

Taken by default from ``min(d0, n) >= GRAM_MIN_DIM`` (1000); here the threshold is lowered so
that small instances take it and can be checked in extended precision on the original data:
the rounding bound covers ``||X - U diag(s) V_hat^T||_F`` for the orthonormal ``V_hat`` the
reduced data belongs to, ``A`` is ``Y V_hat`` to rounding, the residual's error is within
its bound, and certificates hold exactly (the oracle of test_verify). Where the route would
lose accuracy (conditioning, rank, scale, d0 > n) the SVD is taken instead.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from unittest import mock

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from duallinear import problem as problem_module
from test_verify import EXAMPLES, _tally, check_against_the_oracle

pytestmark = pytest.mark.usefixtures("single_thread_blas")


@contextmanager
def gram_everywhere():
    with mock.patch.object(problem_module, "GRAM_MIN_DIM", 1):
        yield


def graded_x(rng: np.random.Generator, d0: int, n: int, log_cond: float) -> np.ndarray:
    Q1 = np.linalg.qr(rng.standard_normal((d0, d0)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((n, d0)))[0]
    return (Q1 * np.logspace(0.0, -log_cond, d0)) @ Q2.T * 10.0 ** rng.uniform(-3, 3)


def took_gram(problem: dl.DeepLinearProblem) -> bool:
    return problem.residual_error > 0.0


def test_gram_route_agrees_with_the_svd() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 90))
    Y = rng.standard_normal((7, 40)) @ X + 0.1 * rng.standard_normal((7, 90))
    svd = dl.DeepLinearProblem(X, Y, (3, 3), 0.3)
    with gram_everywhere():
        gram = dl.DeepLinearProblem(X, Y, (3, 3), 0.3)
    assert took_gram(gram) and not took_gram(svd)
    np.testing.assert_allclose(gram.s, svd.s, rtol=1e-13)
    signs = np.sign(np.sum(gram.U * svd.U, axis=0))
    np.testing.assert_allclose(gram.A * signs, svd.A, atol=1e-12 * np.linalg.norm(Y))
    assert gram.residual == pytest.approx(svd.residual, rel=1e-9)
    # Same order of rounding bound as the SVD (cond(X) is about 5 here).
    assert svd.rounding <= gram.rounding <= 2.0 * svd.rounding
    a, b = dl.solve_dual(svd), dl.solve_dual(gram)
    assert a.converged and b.converged
    # The float64 dual values agree to rounding; the certified ones differ by the margins
    # (the Gram route's includes the residual's error).
    assert b.float_value == pytest.approx(a.float_value, rel=1e-13)
    assert abs(b.value - a.value) <= a.rounding[0] + b.rounding[0] + 1e-13 * a.value
    assert gram.residual_error > 0.0 and b.rounding[0] >= gram.residual_error


@pytest.mark.parametrize("case", ["wide", "square"])
def test_gram_rounding_bound_covers_the_exact_distance(case) -> None:
    # In 40 digits: V = X^T U S^-1 exactly, V_hat its orthonormal polar factor; the reduced
    # data must be Y V_hat (to rounding) and X within problem.rounding of U S V_hat^T.
    rng = np.random.default_rng(11)
    d0, n = (6, 17) if case == "wide" else (7, 7)
    X = graded_x(rng, d0, n, 2.5)
    Y = rng.standard_normal((4, n))
    with gram_everywhere():
        problem = dl.DeepLinearProblem(X, Y, (2,), 0.1)
    assert took_gram(problem)
    mpmath.mp.dps = 40
    Xm, Ym = mpmath.matrix(X.tolist()), mpmath.matrix(Y.tolist())
    Um = mpmath.matrix(problem.U.tolist())
    S = [mpmath.mpf(float(v)) for v in problem.s]
    V = Xm.T * Um
    for j in range(d0):
        for i in range(n):
            V[i, j] /= S[j]
    w, Q = mpmath.eigsy(V.T * V)
    inv_sqrt = Q * mpmath.diag([1 / mpmath.sqrt(x) for x in w]) * Q.T
    V_hat = V * inv_sqrt
    # Orthonormal U' nearest U: the exact SVD of X_hat is U' S V_hat^T; the reduced problem
    # uses U only through U S (and U' - U is bounded in the rounding too).
    wu, Qu = mpmath.eigsy(Um.T * Um)
    U_orth = Um * (Qu * mpmath.diag([1 / mpmath.sqrt(x) for x in wu]) * Qu.T)
    X_hat = U_orth * mpmath.diag(S) * V_hat.T
    distance = mpmath.norm(Xm - X_hat, 2)  # Frobenius for a matrix
    assert float(distance) <= problem.rounding, (float(distance), problem.rounding)
    A_exact = Ym * V_hat
    err = mpmath.norm(mpmath.matrix(problem.A.tolist()) - A_exact, 2)
    assert float(err) <= 64 * np.finfo(float).eps * np.linalg.norm(Y) * np.sqrt(n)
    res_sq = mpmath.norm(Ym, 2) ** 2 - mpmath.norm(A_exact, 2) ** 2
    assert abs(0.5 * float(res_sq) - 0.5 * problem.residual_sq) <= problem.residual_error


def test_gram_route_steps_aside_where_it_would_lose_accuracy() -> None:
    rng = np.random.default_rng(5)
    with gram_everywhere(), warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConditioningWarning)
        ill = graded_x(rng, 8, 20, 7.0)  # d0 eps cond^2 = 1.8e-1 > GRAM_MAX_DEFECT
        assert not took_gram(dl.DeepLinearProblem(ill, rng.standard_normal((3, 20)), (2,), 0.1))
        tall = rng.standard_normal((20, 8))  # d0 > n: X X^T is singular
        assert not took_gram(dl.DeepLinearProblem(tall, rng.standard_normal((3, 8)), (2,), 0.1))
        deficient = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 20))
        assert not took_gram(dl.DeepLinearProblem(deficient, rng.standard_normal((3, 20)), (2,),
                                                  0.1))
        huge = rng.standard_normal((8, 20)) * 1e200  # X X^T would overflow
        problem = dl.DeepLinearProblem(huge, rng.standard_normal((3, 20)), (2,), 1e199)
        assert not took_gram(problem) and problem.rank == 8
        fine = graded_x(rng, 8, 20, 2.0)
        assert took_gram(dl.DeepLinearProblem(fine, rng.standard_normal((3, 20)), (2,), 0.1))


def test_gram_route_is_off_below_its_size() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 80))
    assert not took_gram(dl.DeepLinearProblem(X, rng.standard_normal((4, 80)), (2,), 0.1))


def gram_data(seed: int, log_cond: float, y_kind: int, log_gamma: float):
    rng = np.random.default_rng(seed)
    d0, dH = int(rng.integers(1, 11)), int(rng.integers(1, 11))
    n = int(rng.integers(d0, 41))
    H = int(rng.integers(2, 5))
    hidden = tuple(int(w) for w in rng.integers(1, 7, H - 1))
    X = graded_x(rng, d0, n, log_cond)
    if y_kind == 0:
        Y = rng.standard_normal((dH, n))
    else:  # an exact (or nearly exact) linear function of X: the residual cancels
        Y = rng.standard_normal((dH, d0)) @ X
        if y_kind == 1:
            Y = Y + 1e-6 * np.linalg.norm(Y) / np.sqrt(Y.size) * rng.standard_normal(Y.shape)
    gamma = float(np.linalg.norm(Y @ X.T, 2)) / H * 10.0**log_gamma
    return X, Y, hidden, gamma


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 3.0), st.integers(0, 2),
       st.floats(-10.0, -0.05))
def test_certificates_through_the_gram_route_hold_exactly(seed, log_cond, y_kind,
                                                          log_gamma) -> None:
    X, Y, hidden, gamma = gram_data(seed, log_cond, y_kind, log_gamma)
    with gram_everywhere(), warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConditioningWarning)
        problem = dl.DeepLinearProblem(X, Y, hidden, gamma)
    _tally("gram", check_against_the_oracle(problem, X, Y))
