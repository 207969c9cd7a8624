r"""The regularised deep linear problem: data, shapes, validation and the reduction by SVD.

Conventions ([section 1][sec-problem] of the math page): ``X`` has shape ``(d0, n)`` and
``Y`` shape ``(dH, n)``, one column per sample; ``W_i`` has shape ``(d_i, d_{i-1})`` for
``i = 1..H``; the hidden widths are ``hidden = (d_1, .., d_{H-1})`` and ``k = min(hidden)``;
``rho = gamma * H``.

All solvers work on the *reduced* data of [(3)][eq-reduction]: with the thin SVD
``X = U diag(s) V^T`` (rank ``r``), ``A = Y V`` of shape ``(dH, r)`` and the constant
``1/2 ||Y - A V^T||_F^2`` (the part of ``Y`` no linear map of ``X`` can reach). Their cost
therefore does not depend on the number of samples ``n``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import _statistics
from ._linalg import svd, svdvals
from ._reduced import numerical_rank
from ._validation import (
    as_hidden,
    as_matrix,
    as_nonneg_scalar,
    as_positive_int,
    check_same_samples,
)

__all__ = ["DeepLinearProblem", "WHITENED_RTOL", "check_problem"]

#: Relative spread of the non-zero singular values of X below which X counts as whitened.
WHITENED_RTOL = 1e-10


@dataclass(frozen=True, eq=False)
class _Reduction:
    """What the solvers need of the data: ``U`` (d0, r), ``s`` (r,), ``A = Y V`` (dH, r),
    ``residual_sq = ||Y - A V^T||^2``, ``y_norm_sq = ||Y||^2`` and the sample count ``n``."""

    U: np.ndarray
    s: np.ndarray
    A: np.ndarray
    residual_sq: float
    y_norm_sq: float
    n: int | None

    def __post_init__(self) -> None:
        for array in (self.U, self.s, self.A):
            array.setflags(write=False)


def _reduce_samples(X: np.ndarray, Y: np.ndarray) -> _Reduction:
    """The reduction by a thin SVD of ``X`` (directions below numpy's rank cut dropped)."""
    with np.errstate(over="ignore", invalid="ignore"):
        Ux, sx, Vt = svd(X)
        r = numerical_rank(sx, X.shape)
        U, s, Vt = Ux[:, :r], sx[:r], Vt[:r]
        A = Y @ Vt.T
        residual_sq = float(np.sum((Y - A @ Vt) ** 2))
        y_norm_sq = float(np.sum(Y * Y))
        x_norm_sq = float(np.sum(sx * sx))
    if not (np.isfinite(y_norm_sq) and np.isfinite(x_norm_sq) and np.isfinite(residual_sq)):
        raise ValueError("X and Y must be small enough that ||X||^2 and ||Y||^2 fit in "
                         "float64 (rescale the data; the optimum scales as c^2 for (c Y, "
                         "c gamma))")
    return _Reduction(U, s, A, residual_sq, y_norm_sq, X.shape[1])


def _reduce_statistics(XXt: object, YXt: object, YY: object, n: object,
                       hidden: object, gamma: object) -> _Reduction:
    """The reduction by an eigendecomposition of ``X X^T`` (validated statistics)."""
    XXt = as_matrix(XXt, "XXt")
    YXt = as_matrix(YXt, "YXt")
    YY = as_nonneg_scalar(YY, "YY")
    d0 = XXt.shape[0]
    if XXt.shape != (d0, d0):
        raise ValueError(f"XXt must be square (d0, d0), got shape {XXt.shape}")
    if YXt.shape[1] != d0:
        raise ValueError(
            f"YXt must have shape (dH, d0) with d0 = {d0} from XXt, got {YXt.shape}")
    asym = float(np.max(np.abs(XXt - XXt.T)))
    if asym > 1e-8 * max(float(np.max(np.abs(XXt))), 1e-300):
        raise ValueError(f"XXt must be symmetric (max |XXt - XXt^T| = {asym:.3g})")
    if n is not None:
        n = as_positive_int(n, "n")
    # (Validated here, before the decomposition, so that a typo fails fast.)
    as_hidden(hidden, "hidden")
    as_nonneg_scalar(gamma, "gamma")
    w, Ue = np.linalg.eigh(0.5 * (XXt + XXt.T))
    order = np.argsort(w)[::-1]
    w, Ue = w[order], Ue[:, order]
    keep = w > max(float(w[0]), 0.0) * d0 * 16 * np.finfo(np.float64).eps
    if w[0] <= 0:
        keep[:] = False
    if np.any(w < -1e-8 * max(float(w[0]), 1e-300)):
        raise ValueError("XXt must be positive semidefinite (it has a negative eigenvalue)")
    U, s = Ue[:, keep], np.sqrt(w[keep])
    A = (YXt @ U) / s
    a_sq = float(np.sum(A * A))
    if a_sq > YY * (1 + 1e-8) + 1e-300:
        raise ValueError(
            f"statistics are inconsistent: ||Y X^T U S^-1||^2 = {a_sq:.6g} exceeds "
            f"YY = {YY:.6g}")
    return _Reduction(U, s, A, max(YY - a_sq, 0.0), YY, n)


@dataclass(frozen=True, eq=False, repr=False)
class DeepLinearProblem:
    r"""An instance of the regularised deep linear problem.

    ``min 1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i ||W_i||_{S_H}^H`` over ``W_1 .. W_H``.

    Validated once at construction and immutable afterwards (its arrays are read-only copies;
    the caller's arrays are never modified).

    Parameters
    ----------
    X : array_like, shape (d0, n)
        Inputs, one column per sample. Integer and float32 data are converted to float64.
        Dask arrays are reduced chunk by chunk to ``X X^T``, ``Y X^T`` and ``||Y||^2`` on the
        active Dask scheduler (see :meth:`from_statistics`); ``X`` and ``Y`` are then ``None``.
    Y : array_like, shape (dH, n)
        Targets, one column per sample (a Dask array when ``X`` is one).
    hidden : sequence of int, length H - 1 >= 1
        Hidden widths ``(d_1, .., d_{H-1})``.
    gamma : float >= 0
        Regularisation weight.

    Attributes
    ----------
    depth : int
        ``H``, the number of weight matrices.
    k : int
        The bottleneck width ``min(hidden)``.
    dims : tuple of int
        ``(d0, d1, .., dH)``.
    rho : float
        ``gamma * H``.
    U : ndarray, shape (d0, r)
        Left singular vectors of X for its ``r`` numerically non-zero singular values.
    s : ndarray, shape (r,)
        Those singular values, non-increasing.
    A : ndarray, shape (dH, r)
        ``Y V``: the targets expressed in the right singular basis of X.
    residual_sq : float
        ``||Y - A V^T||_F^2 = ||Y||^2 - ||A||^2``, computed without cancellation.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> dl.DeepLinearProblem(rng.standard_normal((5, 20)), rng.standard_normal((3, 20)),
    ...                      hidden=(2, 2), gamma=0.1)
    DeepLinearProblem(d0=5, dH=3, n=20, rank=5, hidden=(2, 2), H=3, k=2, gamma=0.1)
    """

    X: np.ndarray | None
    Y: np.ndarray | None
    hidden: tuple[int, ...]
    gamma: float
    #: The reduced data, when already at hand (``from_statistics``, ``with_gamma``).
    _data: _Reduction | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        X, Y, data = self.X, self.Y, self._data
        if data is None and (_statistics.is_dask(X) or _statistics.is_dask(Y)):
            # Never load Dask data: reduce it to the sufficient statistics chunk by chunk.
            data = _reduce_statistics(*_statistics.dask_statistics(X, Y, {}), self.hidden,
                                      self.gamma)
            X = Y = None
        elif data is None:
            X = as_matrix(X, "X")
            Y = as_matrix(Y, "Y")
            check_same_samples(X.shape, Y.shape)
        hidden = as_hidden(self.hidden, "hidden")
        gamma = as_nonneg_scalar(self.gamma, "gamma")
        if data is None:
            data = _reduce_samples(X, Y)
        # The one place the frozen fields are written: their validated values.
        for name, value in (("X", X), ("Y", Y), ("hidden", hidden), ("gamma", gamma),
                            ("_data", data)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_statistics(cls, XXt: np.ndarray, YXt: np.ndarray, YY: float,
                        hidden: Sequence[int], gamma: float, *,
                        n: int | None = None) -> DeepLinearProblem:
        """Build the problem from sufficient statistics instead of the samples.

        The optimum, the dual and the weights depend on the data only through
        ``X X^T``, ``Y X^T`` and ``||Y||_F^2`` (the reduction [(3)][eq-reduction]), which can be
        accumulated chunk by chunk over any number of samples.

        Parameters
        ----------
        XXt : array_like, shape (d0, d0)
            ``X X^T``, symmetric positive semidefinite.
        YXt : array_like, shape (dH, d0)
            ``Y X^T``.
        YY : float
            ``||Y||_F^2``.
        hidden, gamma
            As for the constructor.
        n : int, optional
            Number of samples the statistics came from (informational).

        Notes
        -----
        The singular values of X are taken as square roots of the eigenvalues of ``X X^T``,
        so directions of X weaker than ``sqrt(eps)`` times the strongest are treated as
        absent (the price of never forming X). The problem's ``X`` and ``Y`` are ``None``.
        """
        return cls(None, None, hidden, gamma,
                   _data=_reduce_statistics(XXt, YXt, YY, n, hidden, gamma))

    # ------------------------------------------------------------------ derived views
    @property
    def U(self) -> np.ndarray:
        """Left singular vectors of X, shape ``(d0, r)`` (read-only)."""
        return self._data.U

    @property
    def s(self) -> np.ndarray:
        """Non-zero singular values of X, shape ``(r,)``, non-increasing (read-only)."""
        return self._data.s

    @property
    def A(self) -> np.ndarray:
        """``Y V``, shape ``(dH, r)`` (read-only)."""
        return self._data.A

    @property
    def residual_sq(self) -> float:
        """``||Y - A V^T||_F^2``: the part of ``Y`` no linear map of ``X`` reaches."""
        return self._data.residual_sq

    @property
    def y_norm_sq(self) -> float:
        """``||Y||_F^2``."""
        return self._data.y_norm_sq

    @property
    def depth(self) -> int:
        """``H``, the number of weight matrices."""
        return len(self.hidden) + 1

    @property
    def k(self) -> int:
        """The bottleneck width ``min(hidden)``."""
        return min(self.hidden)

    @property
    def dims(self) -> tuple[int, ...]:
        """``(d0, d1, .., dH)``."""
        return (self.U.shape[0], *self.hidden, self.A.shape[0])

    @property
    def rho(self) -> float:
        """``gamma * H``."""
        return self.gamma * self.depth

    @property
    def d0(self) -> int:
        """Input dimension."""
        return self.dims[0]

    @property
    def dH(self) -> int:
        """Output dimension."""
        return self.dims[-1]

    @property
    def n(self) -> int | None:
        """Number of samples (``None`` if built from statistics without ``n``)."""
        return self._data.n

    @property
    def rank(self) -> int:
        """Numerical rank ``r`` of X."""
        return self.s.size

    @property
    def weight_shapes(self) -> list[tuple[int, int]]:
        """Shapes ``(d_i, d_{i-1})`` of ``W_1 .. W_H``."""
        return [(self.dims[i + 1], self.dims[i]) for i in range(self.depth)]

    @property
    def is_whitened(self) -> bool:
        """True when the non-zero singular values of X are all equal (``X X^T = c I`` on the
        range of X), the case with a closed form [(6)][eq-closed-form]."""
        if self.rank == 0:
            return True
        return bool(self.s[0] - self.s[-1] <= WHITENED_RTOL * self.s[0])

    @cached_property
    def scales(self) -> tuple[float, float]:
        """``(a, b) = (||A||_op, s_max(X))``, each replaced by a positive fallback when zero.

        Solvers work in the units ``A/a``, ``s/b``, ``gamma/(a b)`` where both are one."""
        b = float(self.s[0]) if self.rank else 1.0
        a = float(svdvals(self.A)[0]) if self.A.size else 0.0
        if a == 0.0:
            a = float(np.sqrt(self.y_norm_sq)) or 1.0
        return a, b

    @property
    def zero_value(self) -> float:
        """Objective of the zero network, ``1/2 ||Y||_F^2``: an upper bound on the optimum."""
        return 0.5 * self.y_norm_sq

    def with_gamma(self, gamma: float) -> DeepLinearProblem:
        """The same data and widths with another ``gamma`` (reuses the SVD of X)."""
        return dataclasses.replace(self, gamma=as_nonneg_scalar(gamma, "gamma"))

    def check_weights(self, weights: object, name: str = "weights") -> list[np.ndarray]:
        """Validate ``[W_1, .., W_H]`` against this problem's shapes; return float64 copies."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError(
                f"{name} must be a list of {self.depth} matrices [W_1, .., W_H], "
                f"got {type(weights).__name__}"
            )
        if len(weights) != self.depth:
            raise ValueError(
                f"{name} must hold H = {self.depth} matrices, got {len(weights)}"
            )
        out = []
        for i, (W, shape) in enumerate(zip(weights, self.weight_shapes, strict=True)):
            W = as_matrix(W, f"{name}[{i}] (W_{i + 1})", allow_empty=True)
            if W.shape != shape:
                raise ValueError(
                    f"{name}[{i}] (W_{i + 1}) must have shape (d_{i + 1}, d_{i}) = {shape}, "
                    f"got {W.shape}"
                )
            out.append(W)
        return out

    def __repr__(self) -> str:
        return (
            f"DeepLinearProblem(d0={self.d0}, dH={self.dH}, n={self.n}, rank={self.rank}, "
            f"hidden={self.hidden}, H={self.depth}, k={self.k}, gamma={self.gamma:g})"
        )


def check_problem(problem: object, name: str = "problem") -> DeepLinearProblem:
    """Raise ``TypeError`` unless ``problem`` is a :class:`DeepLinearProblem`."""
    if not isinstance(problem, DeepLinearProblem):
        raise TypeError(f"{name} must be a DeepLinearProblem, got {type(problem).__name__}")
    return problem
