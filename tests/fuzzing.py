"""Shared fuzzing machinery: the draws, the pipeline check and its statistics.

Used by ``test_fuzz.py`` (the property campaign), ``test_regressions.py`` (named cases the
campaign found) and ``test_robustness.py``; see ``test_fuzz.py`` for what is checked.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import duallinear as dl

#: Certified relative gap every draw must reach.
GAP_TOL = 1e-7
#: Relative slack (of 1/2||Y||^2) for weak duality and closed-form comparisons: rounding only.
ROUND = 1e-12
#: The certified gap is relative to max(|P|, GAP_FLOOR * 1/2||Y||^2), so that an optimum of
#: (nearly) zero does not turn rounding into a large relative gap (the library's definition).
GAP_FLOOR = dl.certificates.GAP_FLOOR
#: Rounding allowance, as a fraction of 1/2||Y||^2, for evaluating the objective directly.
EVAL_ROUND = 64 * np.finfo(np.float64).eps

X_KINDS = ("identity", "orthonormal", "gaussian", "rank_deficient", "wide",
           "scaled_columns", "duplicated")
Y_KINDS = ("gaussian", "zeros", "repeated_sv", "low_rank", "zero_rows")
PROFILE = os.environ.get("DUALLINEAR_HYPOTHESIS_PROFILE", "ci")
#: Examples per property in the "ci" profile (the long profile uses its own count).
CI_EXAMPLES = 150
#: With this variable set (benchmarks/fuzz_report.py does), a failing draw is recorded and the
#: campaign goes on; ``test_no_failures_recorded`` then fails with the list of failing draws.
KEEP_GOING = os.environ.get("DUALLINEAR_FUZZ_KEEP_GOING", "") not in ("", "0")


@dataclass(frozen=True)
class Draw:
    """Everything needed to rebuild one fuzzed problem (printed on failure)."""

    d0: int
    dH: int
    n: int
    hidden: tuple[int, ...]
    x_kind: str
    y_kind: str
    gamma_factor: float
    seed: int
    #: DR through leading triplets (any block size allowed, so small draws use them too).
    partial: bool = False
    #: DR's maps through Gram eigendecompositions at every size (normally from d = 64).
    gram: bool = False

    def build(self) -> tuple[np.ndarray, np.ndarray, float]:
        return make_data(self)


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns."""
    Q, _ = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    return Q.T if rows <= cols else Q


def make_x(kind: str, d0: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "identity":  # n == d0 is arranged by the strategy
        return np.eye(d0, n) * float(rng.choice([1.0, 3.0, 0.25]))
    if kind == "orthonormal":  # X X^T = c I, with d0 <= n
        return float(10.0 ** rng.uniform(-2, 2)) * _orthonormal(rng, d0, n)
    if kind == "gaussian":
        return rng.standard_normal((d0, n))
    if kind == "rank_deficient":
        r = int(rng.integers(1, max(1, min(d0, n) - 1) + 1))
        return rng.standard_normal((d0, r)) @ rng.standard_normal((r, n))
    if kind == "wide":  # d0 > n is arranged by the strategy
        return rng.standard_normal((d0, n))
    if kind == "scaled_columns":
        return rng.standard_normal((d0, n)) * 10.0 ** rng.uniform(-3, 3, size=n)
    if kind == "duplicated":
        base = rng.standard_normal((d0, max(1, (n + 1) // 2)))
        return base[:, rng.integers(0, base.shape[1], size=n)]
    raise AssertionError(kind)


def make_y(kind: str, dH: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "gaussian":
        return rng.standard_normal((dH, n))
    if kind == "zeros":
        return np.zeros((dH, n))
    if kind == "repeated_sv":
        p = min(dH, n)
        level = float(rng.choice([1.0, 2.0]))
        values = np.full(p, level)
        values[p // 2:] = level / 2 if rng.random() < 0.5 else level
        return (_orthonormal(rng, dH, p) * values) @ _orthonormal(rng, p, n)
    if kind == "low_rank":
        return rng.standard_normal((dH, 1)) @ rng.standard_normal((1, n))
    if kind == "zero_rows":
        Y = rng.standard_normal((dH, n))
        Y[rng.random(dH) < 0.5] = 0.0
        return Y
    raise AssertionError(kind)


def make_data(draw: Draw) -> tuple[np.ndarray, np.ndarray, float]:
    """``X``, ``Y`` and ``gamma``; gamma is ``gamma_factor`` times the value
    ``||Y X^T||_op / H`` from which the zero network is optimal (MATH.md section 6)."""
    rng = np.random.default_rng(draw.seed)
    X = make_x(draw.x_kind, draw.d0, draw.n, rng)
    Y = make_y(draw.y_kind, draw.dH, draw.n, rng)
    H = len(draw.hidden) + 1
    threshold = float(np.linalg.norm(Y @ X.T, 2)) / H
    gamma = draw.gamma_factor * (threshold if threshold > 0 else 1.0)
    return X, Y, gamma


@st.composite
def draws(draw: st.DrawFn) -> Draw:
    x_kind = draw(st.sampled_from(X_KINDS))
    y_kind = draw(st.sampled_from(Y_KINDS))
    d0 = draw(st.integers(1, 12))
    dH = draw(st.integers(1, 12))
    if x_kind == "identity":
        n = d0
    elif x_kind == "orthonormal":
        n = draw(st.integers(d0, 12))
    elif x_kind == "wide":
        d0 = max(d0, 2)
        n = draw(st.integers(1, d0 - 1))
    else:
        n = draw(st.integers(1, 12))
    H = draw(st.integers(2, 4))
    hidden = tuple(draw(st.lists(st.integers(1, max(d0, dH) + 2), min_size=H - 1,
                                 max_size=H - 1)))
    gamma_factor = draw(st.one_of(
        st.just(0.0),
        st.floats(1e-4, 1.0),
        st.floats(1.0, 1e3),
        st.floats(1e3, 1e12),
    ))
    seed = draw(st.integers(0, 2**32 - 1))
    partial, gram = draw(st.booleans()), draw(st.booleans())
    return Draw(d0, dH, n, hidden, x_kind, y_kind, gamma_factor, seed, partial, gram)


# --------------------------------------------------------------------- statistics
STATS: dict = {"draws": 0, "failures": 0, "worst_relative_gap": 0.0, "worst_time": 0.0,
                "worst_gap_draw": None, "worst_time_draw": None, "failing_draws": [],
                "repaired": 0, "dr_iterations_max": 0, "crashes": 0,
                "silent_failures": 0, "duality_gaps": 0, "ill_conditioned": 0}


def record(draw: Draw, rel_gap: float, elapsed: float, failed: bool, repaired: bool,
            iterations: int, error: str | None) -> None:
    STATS["draws"] += 1
    if failed:
        STATS["failures"] += 1
        STATS["failing_draws"].append(f"{draw!r}: {(error or '')[:300]}")
    if repaired:
        STATS["repaired"] += 1
    STATS["dr_iterations_max"] = max(STATS["dr_iterations_max"], iterations)
    if rel_gap > STATS["worst_relative_gap"]:
        STATS["worst_relative_gap"], STATS["worst_gap_draw"] = rel_gap, repr(draw)
    if elapsed > STATS["worst_time"]:
        STATS["worst_time"], STATS["worst_time_draw"] = elapsed, repr(draw)


# ------------------------------------------------------------------------ checks
def direct_objective(X: np.ndarray, Y: np.ndarray, weights: list[np.ndarray],
                     gamma: float) -> float:
    """Objective (4) straight from its definition (MATH.md section 2), independent of the
    library's reduced evaluation."""
    out = X
    for W in weights:
        out = W @ out
    H = len(weights)
    reg = sum(float(np.sum(np.linalg.svd(W, compute_uv=False) ** H)) for W in weights if W.size)
    return 0.5 * float(np.sum((out - Y) ** 2)) + gamma * reg


def note_text(text: str) -> None:
    try:
        note(text)
    except InvalidArgument:  # called outside a hypothesis test (regressions, reports)
        pass


#: Largest search space on which a "duality_gap" status must be proved by prove_gap.
PROOF_DIMENSION = 3


def verify_duality_gap(problem: dl.DeepLinearProblem, dual: dl.DualResult,
                       rec: dl.recovery.Recovery, seed: int) -> None:
    """A draw DR reports as "stalled" or "duality_gap" passes only as a verified non-zero
    duality gap.

    The relaxation (5) need not be tight (``docs/math.md``): then no certificate exists and the
    library's claims are that its dual value is the dual optimum (for "duality_gap": pinned
    from both sides to ``tol``, with the rank signal) and that the recovered weights are a
    good primal point. Both are checked against independent paths: the CVXPY SDP must find
    the same dual value, inside the interval; where the search space is small
    (``PROOF_DIMENSION``), :func:`duallinear.prove_gap` must prove the gap; elsewhere no primal
    restart may beat the recovered weights, which must stay well above the dual optimum.
    """
    scale = max(problem.zero_value, 1e-300)
    floor = max(abs(dual.value), GAP_FLOOR * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        cvx = dl.solve_dual(problem, method="cvxpy", tol=1e-9)
    assert cvx.status == "optimal", cvx.message
    assert abs(cvx.value - dual.value) <= 1e-6 * floor, (
        "DR stopped away from the dual optimum", cvx.value, dual.value)
    if dual.status == "duality_gap":
        assert dual.dual_upper - dual.value <= 1e-10 * floor * (1 + 1e-6), (
            "the interval on D* is wider than tol", dual.value, dual.dual_upper)
        assert cvx.value <= dual.dual_upper + ROUND * scale, (
            "the conic dual value is above DR's upper bound", cvx.value, dual.dual_upper)
        assert dual.diagnostics.relaxed_rank > problem.k, dual.diagnostics
        dims = [k * (n - k) for n in (problem.dH, problem.rank) for k in [problem.k] if n > k]
        if dims and min(dims) <= PROOF_DIMENSION:
            proof = dl.prove_gap(problem, dual, time_limit=30.0)
            assert proof.verdict != "zero", ("DR said duality_gap on a zero-gap instance",
                                             proof.message)
            assert proof.verdict == "gap", proof.message
            return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        primal = dl.solve_primal(problem, restarts=10, seed=seed % 1000)
    assert primal.value >= rec.value - GAP_TOL * max(abs(rec.value), GAP_FLOOR * scale), (
        "a primal restart beats the recovered weights", primal.value, rec.value)
    # The gap is then real: well above the accuracy of the comparisons.
    assert rec.value - dual.value > 1e-5 * max(abs(rec.value), GAP_FLOOR * scale), (
        "stopped with a gap the checks cannot tell from zero", rec.value, dual.value)


def verify_pair(problem: dl.DeepLinearProblem, dual: dl.DualResult, rec,
                allowed: float) -> None:
    """A certified pair whose ``value`` is loose by its rounding margin: the exact gap of the
    weights and the dual point on the original data (40 digits) is within ``allowed``, and
    ``value`` is below the exact objective."""
    exact = dl.verify(problem, rec.weights, dual, digits=40)
    scale = max(problem.zero_value, 1e-300)
    assert exact.gap <= allowed, (exact.gap, allowed)
    assert dual.value <= exact.primal + 1e-14 * scale, (dual.value, exact.primal)


def verify_ill_conditioned(problem: dl.DeepLinearProblem, X: np.ndarray, Y: np.ndarray,
                           dual: dl.DualResult, rec) -> None:
    """"Not certifiable in float64" must still come with valid bounds: the reported value is
    below the exact objective of the recovered weights, and the reported gap covers the
    exact one (extended precision on the original data, for small draws)."""
    assert not dual.converged and "rounding" in dual.message, dual.message
    scale = max(problem.zero_value, 1e-300)
    if X.size * max(Y.shape[0], 1) > 4000:
        assert dual.value <= direct_objective(X, Y, rec.weights, problem.gamma) + ROUND * scale
        return
    exact = dl.verify(problem, rec.weights, dual, digits=40)
    assert dual.value <= exact.primal + 1e-14 * scale, (dual.value, exact.primal)
    assert exact.gap <= rec.gap + 1e-14 * scale, (exact.gap, rec.gap)


def check_pipeline(draw: Draw) -> None:
    """All properties of one draw; raises AssertionError (or the library's error) if any fails."""
    X, Y, gamma = draw.build()
    note_text(f"gamma = {gamma!r}")
    t0 = time.perf_counter()
    rel, repaired, iterations, failed = float("nan"), False, 0, True
    error: BaseException | None = None
    claimed_success = False
    try:
        problem = dl.DeepLinearProblem(X, Y, draw.hidden, gamma)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            base = dl.DRSettings()
            knobs = dl.DRSettings(
                partial_max_fraction=1.0 if draw.partial else base.partial_max_fraction,
                gram_min_dim=1 if draw.gram else base.gram_min_dim)
            dual = dl.solve_dual(problem, partial_svd=draw.partial, settings=knobs)
            rec = dl.recover(problem, dual)
        iterations = dual.iterations
        rel, repaired = rec.relative_gap, rec.repaired
        scale = max(problem.zero_value, 1e-300)
        note_text(f"dual: {dual.message}; recovery: {rec.message}")
        # A failure below is "silent" if the library claimed success (DR converged and the
        # weights certified); otherwise it reported its own failure.
        claimed_success = dual.converged and rec.certified

        conv_warnings = [w for w in caught if issubclass(w.category, dl.ConvergenceWarning)]
        assert len(conv_warnings) == (0 if dual.converged else 1)
        assert np.isfinite(dual.value) and np.isfinite(rec.value)
        duality_gap = not dual.converged and dual.status in ("stalled", "duality_gap")
        ill = dual.status == "ill_conditioned"
        if duality_gap:
            verify_duality_gap(problem, dual, rec, draw.seed)
            STATS["duality_gaps"] += 1
        elif ill:
            verify_ill_conditioned(problem, X, Y, dual, rec)
            STATS["ill_conditioned"] += 1
        else:
            assert dual.converged, dual.message
            assert rec.relative_gap <= GAP_TOL, (rec.relative_gap, rec.message)
        # The same certificate recomputed without trusting the library's bookkeeping.
        value = direct_objective(X, Y, rec.weights, gamma)
        assert abs(value - rec.value) <= 1e-9 * abs(value) + EVAL_ROUND * scale
        allowed = GAP_TOL * max(abs(value), GAP_FLOOR * scale) + EVAL_ROUND * scale
        if not (duality_gap or ill):
            # ``value`` is lowered by the first-order rounding shift, which cancels in the gap
            # of the pair (docs/math.md, data as given), so it may sit that far below the
            # optimum while the pair is certified: then the pair is checked exactly.
            first = dual.rounding[0]
            assert value - dual.value <= allowed + 2.0 * first + dual.rounding[1], (
                value, dual.value, dual.rounding)
            if value - dual.value > allowed:
                verify_pair(problem, dual, rec, allowed)
        assert rec.gap == pytest.approx(dl.duality_gap(problem, rec.weights, dual),
                                        rel=1e-9, abs=ROUND * scale)
        # Weak duality: the dual value lower-bounds the objective of any weights.
        assert dual.value <= rec.value + ROUND * scale
        assert dual.value <= problem.zero_value + ROUND * scale
        rng = np.random.default_rng(draw.seed + 1)
        for _ in range(2):
            W = [rng.standard_normal(shape) * 0.5 for shape in problem.weight_shapes]
            Lam = rng.standard_normal((problem.dH, problem.d0)) * (problem.rho + 1.0)
            upper = dl.objective(problem, W)
            assert dl.dual_value(problem, Lam) <= upper + ROUND * max(scale, abs(upper))
            assert dl.dual_value(problem, Lam) <= rec.value + ROUND * scale
        if problem.is_whitened:
            value, _ = dl.closed_form(problem)
            assert dual.value <= value + ROUND * scale
            assert rec.value >= value - ROUND * scale
            assert rec.value - value <= GAP_TOL * max(abs(value), 1e-12 * scale) + ROUND * scale
        failed = False
    except Exception as exc:
        error = exc
        if not isinstance(exc, AssertionError):
            STATS["crashes"] += 1
        elif claimed_success:
            STATS["silent_failures"] += 1
    finally:
        record(draw, rel, time.perf_counter() - t0, failed, repaired, iterations,
                None if error is None else f"{type(error).__name__}: {error}")
    if error is not None and not KEEP_GOING:
        raise error


SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("DUALLINEAR_FUZZ_EXAMPLES"):
    SETTINGS = settings(SETTINGS, max_examples=int(os.environ["DUALLINEAR_FUZZ_EXAMPLES"]))
elif PROFILE == "ci":
    SETTINGS = settings(SETTINGS, max_examples=CI_EXAMPLES)


@st.composite
def small_draws(draw: st.DrawFn) -> Draw:
    """Well-conditioned draws of size <= 6, for the slower independent paths."""
    base = draw(draws())
    x_kind = draw(st.sampled_from(("identity", "orthonormal", "gaussian", "rank_deficient",
                                   "duplicated")))
    d0, dH = min(base.d0, 6), min(base.dH, 6)
    n = d0 if x_kind == "identity" else max(min(base.n, 6), d0 if x_kind == "orthonormal" else 1)
    hidden = tuple(min(w, 7) for w in base.hidden)
    return Draw(d0, dH, n, hidden, x_kind, base.y_kind, min(base.gamma_factor, 10.0), base.seed)


def problem_and_dual(draw: Draw) -> tuple[dl.DeepLinearProblem, dl.DualResult]:
    """The problem and its dual, which must converge, or say that float64 cannot resolve
    the data as given (``"ill_conditioned"``: e.g. rank-deficient X at gamma = 0, where an X
    with the dropped directions slightly larger fits Y along them without penalty); its
    bounds must then bracket the float64 values."""
    X, Y, gamma = draw.build()
    problem = dl.DeepLinearProblem(X, Y, draw.hidden, gamma)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error", dl.ConvergenceWarning)
        warnings.simplefilter("always", dl.ConditioningWarning)  # (checked first)
        dual = dl.solve_dual(problem)
    if dual.status == "ill_conditioned":
        assert any(issubclass(w.category, dl.ConditioningWarning) for w in caught)
        assert "rounding" in dual.message, dual.message
        assert dual.value <= dual.float_value <= dual.upper_bound
    return problem, dual


