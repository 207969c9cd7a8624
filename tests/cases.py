"""Shared data for the core tests: inputs X of every kind, targets Y, problems and oracles.

X kinds (all of shape ``(d0, n)``):

* ``identity``        - ``X = I`` (``n = d0``), the paper's experiment; whitened.
* ``gaussian``        - i.i.d. standard normal with ``d0 <= n``: full row rank.
* ``rank_deficient``  - a product of Gaussian factors of inner size ``rank < d0``.
* ``wide``            - Gaussian with ``d0 > n``: more features than samples.
* ``ill_conditioned`` - ``U diag(s) V^T`` with ``s`` log-spaced from 1 to ``1/cond``
  (condition number exactly ``cond``, default 1e3).

Y kinds (shape ``(dH, n)``): ``gaussian``, or ``orthogonal`` (orthonormal rows or columns, so
every singular value equals one: the tie case of MATH.md section 7).

The functions computing values "directly" here use only numpy on ``X``, ``Y`` and the weights,
never the library's reduced data, so they are independent oracles.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import duallinear as dl

X_KINDS = ("identity", "gaussian", "rank_deficient", "wide", "ill_conditioned")
GENERAL_X_KINDS = ("gaussian", "rank_deficient", "wide", "ill_conditioned")
ILL_COND = 1e3


# ------------------------------------------------------------------------- generators
def _orthonormal_columns(rng: np.random.Generator, m: int, p: int) -> np.ndarray:
    """An ``(m, p)`` matrix with orthonormal columns (``p <= m``), Haar distributed."""
    Q, R = np.linalg.qr(rng.standard_normal((m, p)))
    return Q * np.sign(np.diag(R))


def make_X(kind: str, d0: int, n: int | None, rng: np.random.Generator, *,
           rank: int | None = None, cond: float = ILL_COND) -> np.ndarray:
    """Input matrix of shape ``(d0, n)`` of the given kind (see the module docstring)."""
    if kind == "identity":
        if n not in (None, d0):
            raise ValueError("identity X needs n == d0")
        return np.eye(d0)
    if n is None:
        raise ValueError(f"{kind} X needs n")
    if kind == "gaussian":
        if d0 > n:
            raise ValueError("gaussian X is meant to have full row rank: need d0 <= n")
        return rng.standard_normal((d0, n))
    if kind == "rank_deficient":
        rank = max(1, min(d0, n) // 2) if rank is None else rank
        if rank >= min(d0, n):
            raise ValueError("rank_deficient X needs rank < min(d0, n)")
        return rng.standard_normal((d0, rank)) @ rng.standard_normal((rank, n))
    if kind == "wide":
        if d0 <= n:
            raise ValueError("wide X needs d0 > n")
        return rng.standard_normal((d0, n))
    if kind == "ill_conditioned":
        p = min(d0, n)
        s = np.logspace(0.0, -np.log10(cond), p)
        return (_orthonormal_columns(rng, d0, p) * s) @ _orthonormal_columns(rng, n, p).T
    raise ValueError(f"unknown X kind {kind!r}")


def make_Y(kind: str, dH: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Target matrix of shape ``(dH, n)``."""
    if kind == "gaussian":
        return rng.standard_normal((dH, n))
    if kind == "orthogonal":
        if dH <= n:
            return _orthonormal_columns(rng, n, dH).T
        return _orthonormal_columns(rng, dH, n)
    raise ValueError(f"unknown Y kind {kind!r}")


def zero_threshold(X: np.ndarray, Y: np.ndarray) -> float:
    """``||Y X^T||_op``: the zero network is optimal iff ``rho = gamma H`` is at least this."""
    return float(np.linalg.norm(Y @ X.T, 2))


@dataclass(frozen=True)
class Case:
    """A problem description, built lazily so that parametrised ids stay readable."""

    x_kind: str
    d0: int
    dH: int
    n: int | None
    hidden: tuple[int, ...]
    frac: float = 0.15  # rho as a fraction of the zero-network threshold ||Y X^T||_op
    y_kind: str = "gaussian"
    seed: int = 0
    rank: int | None = None

    @property
    def id(self) -> str:
        H = len(self.hidden) + 1
        return f"{self.x_kind}-d0={self.d0}-dH={self.dH}-n={self.n}-H={H}-k={min(self.hidden)}"

    def data(self) -> tuple[np.ndarray, np.ndarray, float]:
        rng = np.random.default_rng(self.seed)
        X = make_X(self.x_kind, self.d0, self.n, rng, rank=self.rank)
        Y = make_Y(self.y_kind, self.dH, X.shape[1], rng)
        H = len(self.hidden) + 1
        gamma = self.frac * zero_threshold(X, Y) / H
        return X, Y, gamma

    def problem(self) -> dl.DeepLinearProblem:
        X, Y, gamma = self.data()
        return dl.DeepLinearProblem(X, Y, self.hidden, gamma)


def hidden_widths(H: int, k: int, wide: int) -> tuple[int, ...]:
    """``H - 1`` hidden widths with the bottleneck ``k`` in the middle layer, others ``wide``."""
    widths = [wide] * (H - 1)
    widths[(H - 1) // 2] = k
    return tuple(widths)


def identity_case(d: int, H: int, seed: int = 0, y_kind: str = "gaussian",
                  frac: float | None = None) -> Case:
    """The paper's setting: X = I, square Y, bottleneck ``k = d // 2``.

    ``rho`` is placed between sigma_k(Y) and sigma_1(Y) by default (``frac`` of the top
    singular value chosen so that some of the top k values are thresholded to zero and some
    are not), so that every branch of the closed form is exercised.
    """
    k = max(1, d // 2)
    if frac is None:
        rng = np.random.default_rng(seed)
        Y = make_Y(y_kind, d, d, rng)
        sv = np.linalg.svd(Y, compute_uv=False)
        rho = 0.5 * (sv[0] + sv[k - 1]) if sv[0] > sv[k - 1] else 0.5 * sv[0]
        frac = rho / sv[0]
    return Case("identity", d, d, d, hidden_widths(H, k, d), frac, y_kind, seed)


#: The paper's experiment: X = I, d in {5, 10, 20}, H in {2, 3, 4}.
IDENTITY_CASES = [identity_case(d, H, seed=10 * d + H) for d in (5, 10, 20) for H in (2, 3, 4)]

#: General X: full row rank, rank-deficient, d0 > n, ill-conditioned; H in {2, 3, 4}.
#: (rho grows with H so that the three depths give three different duals.)
GENERAL_CASES = [
    Case(kind, d0, dH, n, hidden_widths(H, 3, 7), frac=0.1 * (H - 1), seed=100 * i + H)
    for i, (kind, d0, dH, n) in enumerate([
        ("gaussian", 8, 6, 20),
        ("rank_deficient", 8, 6, 20),
        ("wide", 12, 6, 6),
        ("ill_conditioned", 8, 6, 20),
    ])
    for H in (2, 3, 4)
]

#: Repeated singular values: Y orthogonal, X = I (every singular value of A equals one).
REPEATED_SV_CASES = [
    Case("identity", 8, 8, 8, hidden_widths(H, 3, 8), frac=frac, y_kind="orthogonal", seed=H)
    for H in (2, 3, 4) for frac in (0.0, 0.4)
]


# ----------------------------------------------------------------------------- oracles
def rel_diff(a: float, b: float) -> float:
    """``|a - b| / max(|a|, |b|)`` (0 if both are 0)."""
    denom = max(abs(a), abs(b))
    return 0.0 if denom == 0.0 else abs(a - b) / denom


def product(weights: list[np.ndarray]) -> np.ndarray:
    """``W_H .. W_1``."""
    M = weights[0]
    for W in weights[1:]:
        M = W @ M
    return M


def direct_objective(X: np.ndarray, Y: np.ndarray, weights: list[np.ndarray],
                     gamma: float) -> float:
    """``1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i ||W_i||_{S_H}^H`` straight from the data."""
    H = len(weights)
    R = product(weights) @ X - Y
    reg = sum(float(np.sum(np.linalg.svd(W, compute_uv=False) ** H)) for W in weights)
    return 0.5 * float(np.sum(R * R)) + gamma * reg


def row_space_projector(X: np.ndarray) -> np.ndarray:
    """Orthogonal projector ``(n, n)`` onto the row space of X (via the pseudo-inverse)."""
    return np.linalg.pinv(X) @ X


def reduced_rank_value(X: np.ndarray, Y: np.ndarray, k: int) -> float:
    """``min_{rank M <= k} 1/2 ||M X - Y||^2``, the classical reduced-rank regression optimum.

    The fit ``Y P`` (P the projector onto the row space of X) is truncated to rank k:
    ``1/2 ||Y||^2 - 1/2 ||Y P||_(k)^2``.
    """
    sv = np.linalg.svd(Y @ row_space_projector(X), compute_uv=False)
    return 0.5 * float(np.sum(Y * Y)) - 0.5 * float(np.sum(sv[:k] ** 2))


def nuclear_norm_value(X: np.ndarray, Y: np.ndarray, rho: float) -> float:
    """``min_M 1/2 ||M X - Y||^2 + rho ||M||_*`` solved directly by CVXPY (Clarabel).

    The problem (6) without its rank bound, which is the whole problem when the bottleneck
    is at least ``min(d0, dH)``. Formulated here from X and Y, independently of the library.
    """
    import cvxpy as cp

    M = cp.Variable((Y.shape[0], X.shape[0]))
    obj = 0.5 * cp.sum_squares(M @ X - Y) + rho * cp.normNuc(M)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL, prob.status
    return float(prob.value)


def random_weights(problem: dl.DeepLinearProblem, rng: np.random.Generator,
                   scale: float = 1.0) -> list[np.ndarray]:
    """Gaussian weights of the problem's shapes, entries of standard deviation ``scale``."""
    return [scale * rng.standard_normal(shape) for shape in problem.weight_shapes]


def zero_weights(problem: dl.DeepLinearProblem) -> list[np.ndarray]:
    return [np.zeros(shape) for shape in problem.weight_shapes]


# ------------------------------------------------------- solutions shared between modules
# Each case is solved once per test session whatever the number of tests that look at it.
@functools.cache
def problem_of(case: Case) -> dl.DeepLinearProblem:
    return case.problem()


@functools.cache
def dual_of(case: Case, method: str = "dr") -> dl.DualResult:
    return dl.solve_dual(problem_of(case), method=method)


@functools.cache
def primal_of(case: Case, restarts: int = 4) -> dl.PrimalResult:
    return dl.solve_primal(problem_of(case), restarts=restarts, seed=case.seed)


@contextlib.contextmanager
def expect_warning(category: type[Warning], match: str | None = None):
    """Like ``pytest.warns`` but also fails on any ``RuntimeWarning`` raised meanwhile.

    ``pytest.warns`` records every warning, which suspends the project's
    ``error::RuntimeWarning`` filter: a numpy overflow or division by zero inside the library
    would go unnoticed in exactly the tests that drive solvers into trouble.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    runtime = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
               if issubclass(w.category, RuntimeWarning)]
    assert not runtime, "numpy runtime warnings inside the call:\n" + "\n".join(runtime)
    hits = [w for w in caught if issubclass(w.category, category)
            and (match is None or re.search(match, str(w.message)))]
    assert hits, (f"expected a {category.__name__}"
                  + (f" matching {match!r}" if match else "")
                  + f"; got {[f'{w.category.__name__}: {w.message}' for w in caught]}")


# ------------------------------------------------------------------ hypothesis strategy
@st.composite
def problems(draw, max_dim: int = 5):
    """A random problem (any kind of X, depth 2..5, widths above and below the data sizes,
    gamma from 0 up) together with its raw data."""
    kind = draw(st.sampled_from(["identity", "gaussian", "rank_deficient", "wide",
                                 "ill_conditioned"]))
    d0 = draw(st.integers(1 if kind in ("identity", "gaussian") else 2, max_dim))
    dH = draw(st.integers(1, max_dim))
    if kind == "identity":
        n = d0
    elif kind == "wide":
        n = draw(st.integers(1, d0 - 1))
    elif kind == "gaussian":
        n = draw(st.integers(d0, d0 + 4))
    else:
        n = draw(st.integers(2, max_dim + 3))
    H = draw(st.integers(2, 5))
    hidden = tuple(draw(st.lists(st.integers(1, max_dim + 1), min_size=H - 1, max_size=H - 1)))
    gamma = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 5.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rank = None
    if kind == "rank_deficient":
        if min(d0, n) < 2:
            kind = "gaussian" if d0 <= n else "wide"
        else:
            rank = draw(st.integers(1, min(d0, n) - 1))
    X = make_X(kind, d0, n, rng, rank=rank)
    Y = make_Y("gaussian", dH, n, rng)
    return dl.DeepLinearProblem(X, Y, hidden, gamma), X, Y, rng
