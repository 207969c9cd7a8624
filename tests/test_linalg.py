"""The shared SVD and its fallback when LAPACK's divide-and-conquer driver (gesdd) fails.

gesdd sometimes reports non-convergence on perfectly finite matrices. We simulate that by
patching the library's single call site of the SVD drivers, ``_linalg.svd_driver``, to raise
``LinAlgError`` for the named drivers (as scipy does for a real failure), and check that every
SVD in the library falls back to a working driver. Nothing of scipy's is patched, so the
tests do not depend on scipy's internals.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import (
    GENERAL_CASES,
    dual_of,
    rel_diff,
)
from duallinear import _linalg

pytestmark = pytest.mark.usefixtures("single_thread_blas")


class _FailingDrivers:
    """Patch of ``_linalg.svd_driver`` that makes the named drivers fail to converge."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, drivers: tuple[str, ...]) -> None:
        self.drivers = drivers
        self.calls = dict.fromkeys(drivers, 0)
        real = _linalg.svd_driver

        def patched(Z, driver, *args, **kwargs):
            if driver in self.drivers:
                self.calls[driver] += 1
                raise np.linalg.LinAlgError(f"SVD did not converge ({driver}, simulated)")
            return real(Z, driver, *args, **kwargs)

        monkeypatch.setattr(_linalg, "svd_driver", patched)


@pytest.fixture
def gesdd_fails(monkeypatch):
    return _FailingDrivers(monkeypatch, ("gesdd",))


@pytest.fixture
def all_svd_drivers_fail(monkeypatch):
    return _FailingDrivers(monkeypatch, ("gesdd", "gesvd"))


def _check_svd(Z: np.ndarray, U: np.ndarray, s: np.ndarray, Vt: np.ndarray,
               tol: float = 1e-12) -> None:
    m, n = Z.shape
    p = min(m, n)
    assert U.shape == (m, p) and s.shape == (p,) and Vt.shape == (p, n)
    assert np.all(s >= 0) and np.all(np.diff(s) <= 0)
    scale = max(float(np.abs(Z).max()), 1e-300)
    np.testing.assert_allclose((U * s) @ Vt, Z, atol=tol * scale * max(m, n))
    np.testing.assert_allclose(U.T @ U, np.eye(p), atol=tol * 100)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(p), atol=tol * 100)
    np.testing.assert_allclose(s, np.linalg.svd(Z, compute_uv=False), atol=tol * scale * 10)


def _matrices() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    return [
        rng.standard_normal((7, 4)),
        rng.standard_normal((3, 8)),
        rng.standard_normal((5, 5)),
        rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5)),  # rank 2
        Q[:, :3] @ Q[:, :3].T,                                       # repeated values
        np.zeros((3, 4)),
        np.array([[-2.5]]),
        1e8 * rng.standard_normal((4, 3)),
    ]


MATRIX_IDS = ["tall", "wide", "square", "rank2", "repeated", "zero", "1x1", "large"]


@pytest.mark.parametrize("Z", _matrices(), ids=MATRIX_IDS)
def test_svd_is_an_svd(Z) -> None:
    _check_svd(Z, *_linalg.svd(Z))
    np.testing.assert_allclose(_linalg.svdvals(Z), np.linalg.svd(Z, compute_uv=False),
                               atol=1e-12 * max(1.0, np.abs(Z).max()))


@pytest.mark.parametrize("Z", _matrices(), ids=MATRIX_IDS)
def test_svd_falls_back_when_gesdd_fails(Z, gesdd_fails) -> None:
    with pytest.raises(np.linalg.LinAlgError):  # the patch really breaks gesdd
        _linalg.svd_driver(Z, "gesdd")
    U, s, Vt = _linalg.svd(Z)
    _check_svd(Z, U, s, Vt)
    np.testing.assert_allclose(_linalg.svdvals(Z), s, atol=1e-12 * max(1.0, np.abs(Z).max()))
    assert gesdd_fails.calls["gesdd"] >= 3


@pytest.mark.parametrize("Z", _matrices(), ids=MATRIX_IDS)
def test_svd_last_resort_when_every_driver_fails(Z, all_svd_drivers_fail) -> None:
    U, s, Vt = _linalg.svd(Z)
    # The Gram-matrix route squares the condition number: accurate relative to ||Z|| only.
    _check_svd(Z, U, s, Vt, tol=1e-10)
    assert all_svd_drivers_fail.calls["gesvd"] >= 1
    np.testing.assert_allclose(_linalg.svdvals(Z), s, atol=1e-10 * max(1.0, np.abs(Z).max()))


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 7), n=st.integers(1, 7), rank=st.integers(0, 7),
       seed=st.integers(0, 10**6))
def test_last_resort_property(m, n, rank, seed) -> None:
    rng = np.random.default_rng(seed)
    r = min(rank, m, n)
    Z = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    with pytest.MonkeyPatch.context() as mp:
        _FailingDrivers(mp, ("gesdd", "gesvd"))
        U, s, Vt = _linalg.svd(Z)
    if r == 0:
        np.testing.assert_array_equal(s, 0.0)
    _check_svd(Z, U, s, Vt, tol=1e-10)


def test_non_finite_input_raises_a_linalg_error(all_svd_drivers_fail) -> None:
    with pytest.raises(np.linalg.LinAlgError, match="NaN or Inf"):
        _linalg.svd(np.array([[1.0, np.nan], [0.0, 1.0]]))
    assert issubclass(_linalg.SVDFailure, np.linalg.LinAlgError)


def test_nan_input_is_a_linalg_error_without_patching() -> None:
    # scipy's gesdd rejects NaN with a ValueError (1.17 and 1.18 alike); the library's call
    # site turns that into the LinAlgError it documents, and svd/svdvals into SVDFailure.
    Z = np.array([[1.0, np.nan], [0.0, 1.0]])
    with pytest.raises(np.linalg.LinAlgError, match="NaN or Inf"):
        _linalg.svd_driver(Z, "gesdd")
    with pytest.raises(_linalg.SVDFailure, match="NaN or Inf"):
        _linalg.svd(Z)
    with pytest.raises(_linalg.SVDFailure, match="NaN or Inf"):
        _linalg.svdvals(Z)


def test_svd_driver_is_scipys_svd() -> None:
    # The call site adds nothing to the numerics: bit for bit scipy's thin SVD.
    Z = np.random.default_rng(9).standard_normal((7, 5))
    for driver in ("gesdd", "gesvd"):
        ours = _linalg.svd_driver(Z, driver)
        theirs = scipy.linalg.svd(Z, full_matrices=False, lapack_driver=driver)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_linalg.svd_driver(Z, "gesdd", compute_uv=False),
                                  scipy.linalg.svdvals(Z))


def test_library_survives_gesdd_failures(gesdd_fails) -> None:
    """The whole pipeline on a general-X problem with gesdd broken everywhere: the problem's
    SVD of X, DR's SVDs at every iteration, recovery and the depth-3 regulariser gradient."""
    case = GENERAL_CASES[4]  # rank-deficient X, H = 3
    expected = dual_of(case, "dr").value  # computed with working LAPACK (cached or now)
    calls_before = gesdd_fails.calls["gesdd"]
    X, Y, gamma = case.data()
    problem = dl.DeepLinearProblem(X, Y, case.hidden, gamma)
    res = dl.solve_dual(problem)
    assert res.converged, res.message
    assert rel_diff(res.value, expected) <= 1e-8
    weights = dl.recover_weights(problem, res)
    assert rel_diff(dl.objective(problem, weights), expected) <= 1e-8
    primal = dl.solve_primal(problem, restarts=1, seed=0)
    assert rel_diff(primal.value, expected) <= 1e-8
    assert gesdd_fails.calls["gesdd"] > calls_before + 100  # the fallback was really exercised


def test_whitened_dual_survives_gesdd_failures(gesdd_fails) -> None:
    rng = np.random.default_rng(5)
    problem = dl.DeepLinearProblem(np.eye(6), rng.standard_normal((6, 6)), [3, 3], 0.3)
    res = dl.solve_dual(problem)
    assert rel_diff(res.value, dl.closed_form(problem).value) <= 1e-8
    assert gesdd_fails.calls["gesdd"] >= 1


# ------------------------------------------------------------------ leading triplets
def _low_rank_plus_noise(m: int, n: int, rank: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    return signal + noise * rng.standard_normal((m, n))


def test_leading_triplets_match_a_full_svd() -> None:
    B = _low_rank_plus_noise(150, 120, 6, 0.1, seed=0)
    lead = _linalg.LeadingSVD()
    U, s, Vt, c = lead(B, lambda sv: 6, start=6)
    assert c == 6
    Uf, sf, Vtf = np.linalg.svd(B)
    np.testing.assert_allclose(s[:c], sf[:c], rtol=1e-12)
    # Same leading subspaces (singular vectors up to sign).
    np.testing.assert_allclose(np.abs(np.sum(U[:, :c] * Uf[:, :c], axis=0)), 1.0, atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(Vt[:c] * Vtf[:c], axis=1)), 1.0, atol=1e-10)
    assert np.linalg.norm(B @ Vt[:c].T - U[:, :c] * s[:c]) <= 1e-11 * sf[0]


def test_leading_block_grows_to_what_is_needed() -> None:
    B = _low_rank_plus_noise(200, 200, 15, 0.01, seed=1)
    threshold = 0.5 * np.linalg.svd(B, compute_uv=False)[14]
    lead = _linalg.LeadingSVD(oversample=4)
    U, s, Vt, c = lead(B, lambda sv: int(np.count_nonzero(sv > threshold)))
    assert c == 15
    assert s.size >= c + 4


def test_leading_gives_up_when_too_much_is_needed() -> None:
    B = np.random.default_rng(2).standard_normal((80, 80))
    lead = _linalg.LeadingSVD(max_fraction=0.25)
    assert lead(B, lambda sv: 30) is None
    assert lead.fallbacks == 1


def test_leading_gives_up_without_a_spectral_gap() -> None:
    # A flat spectrum: the needed triplets cannot settle within max_steps.
    B = np.random.default_rng(3).standard_normal((300, 300))
    lead = _linalg.LeadingSVD(max_steps=5, max_fraction=0.5)
    assert lead(B, lambda sv: 10) is None


def test_leading_backs_off_after_repeated_failures() -> None:
    # No gap to exploit: after three failures in a row the next 10 calls are skipped, and
    # after a fourth the next 20.
    B = np.random.default_rng(7).standard_normal((200, 200))
    lead = _linalg.LeadingSVD(max_steps=3, max_fraction=0.5)
    results = [lead(B, lambda sv: 10) for _ in range(40)]
    assert all(r is None for r in results)
    assert lead.steps == 5 * 3  # calls 1, 2, 3, 14 and 35 did products
    assert lead.fallbacks == 40


def test_leading_gives_up_when_too_few_spare_vectors() -> None:
    # Needing 23 of a 25-vector limit leaves under `oversample` spare ones: refuse at once.
    B = _low_rank_plus_noise(100, 100, 23, 0.01, seed=8)
    lead = _linalg.LeadingSVD(max_fraction=0.25, oversample=8)
    assert lead(B, lambda sv: 23, start=1) is None
    assert lead.steps <= 2


def test_leading_warm_start_takes_fewer_products() -> None:
    B = _low_rank_plus_noise(200, 160, 8, 0.3, seed=4)
    lead = _linalg.LeadingSVD()
    lead(B, lambda sv: 8, start=8)
    cold = lead.steps
    B2 = B + 1e-8 * np.random.default_rng(5).standard_normal(B.shape)
    U, s, Vt, c = lead(B2, lambda sv: 8)
    assert lead.steps - cold < cold
    np.testing.assert_allclose(s[:c], np.linalg.svd(B2, compute_uv=False)[:c], rtol=1e-12)


def test_leading_settles_needed_triplets_before_a_cluster() -> None:
    # Regression (benchmarks/cost_curve.py, d = 2000): 32 leading values well apart from a
    # flat bulk. The needed triplets settle in about 10 products; the next one, inside the
    # bulk, never does, and the stagnation test used to watch it too and gave up (a full
    # SVD then cost 7 s where the triplets took 2).
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((400, 400)))[0]
    V = np.linalg.qr(rng.standard_normal((400, 400)))[0]
    s = np.concatenate([np.linspace(1.0, 0.7, 32),
                        0.15 * (1 + 1e-3 * rng.standard_normal(368))])
    B = (U * s) @ V.T
    lead = _linalg.LeadingSVD(max_fraction=0.25)
    out = lead(B, lambda sv: 32, start=32)
    assert out is not None and out[3] == 32
    np.testing.assert_allclose(out[1][:32], np.sort(s)[::-1][:32], rtol=1e-12)


def test_spectral_scale_small_exact_large_close_from_below() -> None:
    B = _low_rank_plus_noise(60, 50, 3, 0.1, seed=9)
    # (Exact: LAPACK's largest value; numpy's own LAPACK may differ in the last bit.)
    assert _linalg.spectral_scale(B) == _linalg.svdvals(B)[0]
    assert _linalg.spectral_scale(B) == pytest.approx(np.linalg.norm(B, 2), rel=1e-14)
    n = _linalg.SPECTRAL_SCALE_MIN_DIM
    # A clustered top (where settling to 1e-13 failed): still within a few percent.
    rng = np.random.default_rng(10)
    U = np.linalg.qr(rng.standard_normal((n, 40)))[0]
    V = np.linalg.qr(rng.standard_normal((n, 40)))[0]
    big = (U * np.linspace(1.0, 0.9, 40)) @ V.T + 1e-3 * rng.standard_normal((n, n))
    exact = np.linalg.svd(big, compute_uv=False)[0]
    value = _linalg.spectral_scale(big)
    assert exact * 0.95 <= value <= exact * (1 + 1e-14)
    assert value == _linalg.spectral_scale(big)  # seeded


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4), st.integers(0, 5),
       st.integers(0, 2**31 - 1), st.sampled_from([1e-200, 1.0, 1e200]))
def test_ritz_norm_is_a_lower_estimate_with_an_orthonormal_block(m, n, b, steps, seed,
                                                                 scale) -> None:
    # Never above sigma_1 (up to rounding), at any scale; the block comes back orthonormal
    # and of the shape given; with the block spanning everything it is sigma_1.
    rng = np.random.default_rng(seed)
    Z = scale * rng.standard_normal((m, n))
    value, V = _linalg.ritz_norm(Z, rng.standard_normal((n, min(b, n))), steps)
    top = float(np.linalg.norm(Z, 2))
    assert value <= top * (1 + 1e-12)
    assert V.shape == (n, min(b, n))
    np.testing.assert_allclose(V.T @ V, np.eye(min(b, n)), atol=1e-12)
    full, _ = _linalg.ritz_norm(Z, rng.standard_normal((n, n)), 0)
    assert full == pytest.approx(top, rel=1e-12)


def test_leading_values_only_and_zero_matrix() -> None:
    B = _low_rank_plus_noise(120, 100, 3, 0.05, seed=6)
    top = _linalg.LeadingSVD(rtol=1e-10, values_only=True)(B, lambda sv: 1)
    assert top is not None
    assert top[1][0] == pytest.approx(np.linalg.norm(B, 2), rel=1e-9)
    U, s, Vt, c = _linalg.LeadingSVD()(np.zeros((50, 40)), lambda sv: int(np.sum(sv > 0)))
    assert c == 0 and np.all(s == 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(20, 60), st.integers(20, 60), st.integers(1, 5),
       st.floats(0.0, 1.0), st.integers(0, 10**6))
def test_ritz_values_never_exceed_singular_values(m, n, rank, noise, seed) -> None:
    # Rayleigh-Ritz on a subspace interlaces: the j-th Ritz value is at most sigma_j.
    B = _low_rank_plus_noise(m, n, rank, noise, seed)
    # rtol = 1: return unconverged Ritz values after the first check.
    out = _linalg.LeadingSVD(rtol=1.0, max_fraction=1.0, oversample=2)(B, lambda sv: rank)
    assert out is not None
    sv = np.linalg.svd(B, compute_uv=False)
    assert np.all(out[1] <= sv[: out[1].size] * (1 + 1e-12) + 1e-12)


# ------------------------------------------------- spectral change through the Gram matrix
def _svd_change(B: np.ndarray, amount) -> np.ndarray:
    U, s, Vt = np.linalg.svd(B, full_matrices=False)
    return (U * amount(s)) @ Vt


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0.05, 0.95), st.integers(0, 10**6))
def test_gram_change_matches_the_svd(m, n, frac, seed) -> None:
    B = np.random.default_rng(seed).standard_normal((m, n))
    s1 = np.linalg.norm(B, 2)
    radius = frac * s1  # the ball projection's change: only values above radius move
    amount = lambda s: np.maximum(s - radius, 0.0)  # noqa: E731
    change = _linalg.gram_spectral_change(B, amount)
    assert change is not None
    np.testing.assert_allclose(change, _svd_change(B, amount), atol=1e-12 * s1)


def test_gram_change_declines_small_moving_values() -> None:
    B = np.diag([1.0, 0.5, 1e-4])
    # Shrinking every value by 10% moves 1e-4, below GRAM_MIN_RATIO of the largest.
    assert _linalg.gram_spectral_change(B, lambda s: 0.1 * s) is None
    change = _linalg.gram_spectral_change(B, lambda s: np.where(s > 0.9, 0.1 * s, 0.0))
    np.testing.assert_allclose(change, np.diag([0.1, 0.0, 0.0]), atol=1e-15)
    assert np.all(_linalg.gram_spectral_change(B, lambda s: 0 * s) == 0)


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_frobenius_of_large_matrices_is_accurate_without_overflow(scale) -> None:
    # Blockwise (above FROBENIUS_BLOCK entries): within frobenius_sq_error of the exactly
    # rounded sum of squares, for contiguous and strided input, at extreme scales.
    import math

    from duallinear._linalg import FROBENIUS_BLOCK, frobenius, frobenius_sq_error

    rng = np.random.default_rng(7)
    Z = rng.standard_normal((300, 700)) * np.logspace(0, 3, 700)
    assert Z.size > FROBENIUS_BLOCK
    for M in (Z, Z[:, ::2], Z.T):
        exact = math.fsum(float(v) ** 2 for v in M.ravel())
        got = frobenius(M * scale) / scale
        assert abs(got**2 - exact) <= frobenius_sq_error(M.size) * exact
    assert frobenius(np.zeros((400, 400))) == 0.0
    assert np.isnan(frobenius(np.full((400, 400), np.nan)))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(2, 40), st.floats(0.05, 0.95), st.integers(0, 10**6))
def test_leading_by_gram_matches_the_svd(m, n, frac, seed) -> None:
    """The Gram route's k leading triplets: the values, and the truncation they span."""
    B = np.random.default_rng(seed).standard_normal((m, n))
    k = max(1, min(int(frac * min(m, n)), min(m, n) - 1))
    U, s, Vt = _linalg.svd(B)
    top = _linalg.leading_by_gram(B, k)
    assert top is not None
    Ug, sg, Vtg = top
    assert Ug.shape == (m, k) and sg.shape == (k,) and Vtg.shape == (k, n)
    assert np.allclose(sg, s[:k], rtol=1e-10, atol=0.0)
    if s[k - 1] > s[k] * (1.0 + 1e-6):  # (with a tie at k the truncation is not unique)
        N = (U[:, :k] * s[:k]) @ Vt[:k]
        assert np.linalg.norm((Ug * sg) @ Vtg - N) <= 1e-8 * s[0]


def test_leading_by_gram_declines_where_the_square_loses_accuracy() -> None:
    rng = np.random.default_rng(3)
    Q1 = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    values = np.geomspace(1.0, 1e-6, 20)
    B = (Q1[:, :20] * values) @ Q2
    assert _linalg.leading_by_gram(B, 5) is not None
    assert _linalg.leading_by_gram(B, 15) is None  # s_15 / s_1 ~ 1e-4 < GRAM_MIN_RATIO
    assert _linalg.leading_by_gram(B, 20) is None  # k not below min(m, n)
    assert _linalg.leading_by_gram(B, 0) is None
    assert _linalg.leading_by_gram(np.zeros((5, 4)), 2) is None
    assert _linalg.leading_by_gram(B * 1e300, 5) is None  # the square overflows


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1.0, 1e170, 1e300])
@pytest.mark.parametrize("shape", [(30, 12), (12, 30), (1, 5), (7, 1)])
def test_largest_by_gram_is_the_largest_singular_value(scale, shape) -> None:
    """Close to sigma_1 at every scale (falling back to the SVD where the square over- or
    underflows), and 0 for empty and zero matrices."""
    Z = np.random.default_rng(1).standard_normal(shape) * scale
    exact = float(_linalg.svdvals(Z)[0])
    assert _linalg.largest_by_gram(Z) == pytest.approx(exact, rel=1e-13)
    assert _linalg.largest_by_gram(np.zeros(shape)) == 0.0
    assert _linalg.largest_by_gram(np.zeros((0, 3))) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.floats(-14.0, -1.0),
       st.floats(-15.0, 0.0), st.booleans(), st.integers(0, 10**6))
def test_truncation_error_bounds_the_distance_to_the_exact_truncation(m, n, k, log_noise,
                                                                      log_split, tie,
                                                                      seed) -> None:
    # Property: for triplets perturbed from LAPACK's (as a subspace iteration leaves them),
    # the bound covers ||trunc_k(B) - U diag(sv) V^T||_F, the exact truncation of the float B
    # computed in 40-digit arithmetic; with values nearly tied at k as well.
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(seed)
    r = min(m, n)
    k = min(k, r)
    Q1 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    values = np.sort(rng.uniform(0.1, 1.0, r))[::-1]
    if tie and k < r:
        values[k] = values[k - 1] * (1.0 - 10.0**log_split)
        values = np.sort(values)[::-1]
    B = (Q1[:, :r] * values) @ Q2[:, :r].T
    U, sv, Vt = _linalg.svd(B)
    noise = 10.0**log_noise
    Uk = np.linalg.qr(U[:, :k] + noise * rng.standard_normal((m, k)))[0]
    Vk = np.linalg.qr(Vt[:k].T + noise * rng.standard_normal((n, k)))[0]
    Uk *= np.sign(np.sum(Uk * U[:, :k], axis=0))  # (QR may flip a pair of signs)
    Vk *= np.sign(np.sum(Vk * Vt[:k].T, axis=0))
    bound = _linalg.truncation_error(Uk, sv, Vk.T, B)
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    Bm = mp.matrix(B.tolist())
    Ue, Se, Ve = mp.svd_r(Bm)
    exact = Ue[:, :k] * mp.diag([Se[i] for i in range(k)]) * Ve[:k, :]
    approx = mp.matrix(((Uk * sv[:k]) @ Vk.T).tolist())
    diff = exact - approx
    actual = mp.sqrt(mp.fsum(diff[i, j] ** 2 for i in range(m) for j in range(n)))
    if k < r and Se[k - 1] == Se[k]:
        return  # (an exact tie: no unique truncation to compare with)
    assert actual <= mp.mpf(bound)
    # LAPACK's own triplets, with the a-priori allowance instead of computed residuals.
    lapack = mp.matrix(((U[:, :k] * sv[:k]) @ Vt[:k]).tolist())
    diff = exact - lapack
    actual = mp.sqrt(mp.fsum(diff[i, j] ** 2 for i in range(m) for j in range(n)))
    assert actual <= mp.mpf(_linalg.truncation_error(U[:, :k], sv, Vt[:k]))


def test_truncation_error_of_lapacks_triplets_is_at_rounding_level() -> None:
    # At a spectral gap LAPACK's own triplets are within rounding / gap of the truncation:
    # with the residuals computed (the bound carries their worst-case rounding, about
    # n^1.5 u ||B||) and with the a-priori bound for LAPACK's (its SVD backward error, no
    # products), which must cover the computed residuals.
    rng = np.random.default_rng(3)
    B = rng.standard_normal((40, 30))
    U, sv, Vt = _linalg.svd(B)
    k = 6
    computed = _linalg.truncation_error(U[:, :k], sv, Vt[:k], B)
    assert computed <= 1e-12 * sv[0] * sv[0] / (sv[k - 1] - sv[k])
    prior = _linalg.truncation_error(U[:, :k], sv, Vt[:k])
    assert prior <= 1e-12 * sv[0] * sv[0] / (sv[k - 1] - sv[k])
    R = B @ Vt[:k].T - U[:, :k] * sv[:k]
    T = B.T @ U[:, :k] - Vt[:k].T * sv[:k]
    assert max(np.linalg.norm(R), np.linalg.norm(T)) <= _linalg.svd_backward_error(
        B.shape, np.linalg.norm(B))
    # ... and k at a dimension of B: the truncation is B itself.
    assert _linalg.truncation_error(U, sv, Vt, B) <= 1e-12 * sv[0]


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 7), st.integers(3, 7), st.integers(0, 3), st.integers(1, 3),
       st.floats(-14.0, -2.0), st.floats(-15.0, -6.0), st.booleans(), st.integers(0, 10**6))
def test_truncation_error_in_a_tied_block_bounds_the_distance_to_a_block_truncation(
        m, n, lo, extra, log_noise, log_split, computed, seed) -> None:
    # Property: with values tied across k (positions lo..hi), the bound covers the distance
    # from U diag(sv) V^T to the truncation P B its derivation builds (P: the exact leading
    # lo left vectors plus the block's projection of the other columns of U), computed in
    # 40-digit arithmetic from the float B; for computed residuals and for LAPACK's bound.
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(seed)
    r = min(m, n)
    lo = min(lo, r - 2)
    hi = min(lo + extra, r - 1)
    k = int(rng.integers(lo + 1, hi + 1))  # lo <= k - 1 < hi
    values = np.sort(rng.uniform(0.1, 1.0, r))[::-1]
    values[lo:hi + 1] = values[lo] * (1.0 - 10.0**log_split * rng.uniform(0, 1, hi - lo + 1))
    values[:lo] += 0.5  # a clear gap above the block
    values[hi + 1:] *= 0.5  # ... and below it
    values = np.sort(values)[::-1]
    Q1 = np.linalg.qr(rng.standard_normal((m, m)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    B = (Q1[:, :r] * values) @ Q2[:, :r].T
    U, sv, Vt = _linalg.svd(B)
    Uk, Vk = U[:, :k], Vt[:k].T  # LAPACK's own (the a-priori bound is for these)
    if computed:
        noise = 10.0**log_noise
        Uk = np.linalg.qr(Uk + noise * rng.standard_normal((m, k)))[0]
        Vk = np.linalg.qr(Vk + noise * rng.standard_normal((n, k)))[0]
        Uk *= np.sign(np.sum(Uk * U[:, :k], axis=0))
        Vk *= np.sign(np.sum(Vk * Vt[:k].T, axis=0))
    bound = _linalg.truncation_error(Uk, sv, Vk.T, B if computed else None, (lo, hi))
    mp = mpmath.mp.clone() if hasattr(mpmath.mp, "clone") else mpmath.mp
    mp.dps = 40
    Bm = mp.matrix(B.tolist())
    Ue = mp.svd_r(Bm)[0]
    top = Ue[:, :lo] if lo else None
    block = Ue[:, lo:hi + 1]
    U2 = mp.matrix(Uk[:, lo:].tolist())
    Y = block * (block.T * U2)
    QY = mp.qr(Y)[0][:, :k - lo]
    P = QY * QY.T
    if top is not None:
        P += top * top.T
    diff = P * Bm - mp.matrix(((Uk * sv[:k]) @ Vk.T).tolist())
    actual = mp.sqrt(mp.fsum(diff[i, j] ** 2 for i in range(m) for j in range(n)))
    assert actual <= mp.mpf(bound)
