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
import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg

from . import _statistics
from ._linalg import frobenius, frobenius_sq_error, spectral_scale, svd, svd_backward_error
from ._reduced import GAP_FLOOR, numerical_rank
from ._validation import (
    as_hidden,
    as_matrix,
    as_nonneg_scalar,
    as_positive_int,
    check_same_samples,
)
from .results import ConditioningWarning

__all__ = ["DeepLinearProblem", "WHITENED_RTOL", "PENALTIES", "check_problem",
           "check_chain"]

#: Relative spread of the non-zero singular values of X below which X counts as whitened.
WHITENED_RTOL = 1e-10

#: The layer penalties: ``gamma sum ||W||_{S_H}^H`` and plain weight decay ``gamma sum ||W||_F^2``.
PENALTIES = ("schatten", "frobenius")


@dataclass(frozen=True, eq=False)
class _Reduction:
    """What the solvers need of the data: ``U`` (d0, r), ``s`` (r,), ``A = Y V`` (dH, r),
    ``residual = ||Y - A V^T||_F``, ``y_norm = ||Y||_F`` and the sample count ``n``.

    Norms are kept unsquared (and computed by scaled sums): their squares can leave the range
    of float64 where the data does not.
    """

    U: np.ndarray
    s: np.ndarray
    A: np.ndarray
    residual: float
    y_norm: float
    n: int | None
    #: Bound on ||X - U diag(s) V^T||_F: the backward error of the decomposition plus the
    #: dropped singular values (the reduced data is exact for a matrix this close to X).
    rounding: float = 0.0
    #: Singular values below the rank cut (dropped), non-increasing.
    dropped: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: ||Y V_dropped||_F: the energy of Y along the dropped directions (an upper bound where
    #: it cannot be resolved).
    dropped_energy: float = 0.0
    #: A bound on ||Y V_dropped diag(s_dropped)|| = ||Y X^T U_dropped||: the room a dual point
    #: needs in the ball to absorb the dropped directions.
    dropped_load: float = 0.0
    #: Bound on the error of ``1/2 residual^2`` as computed (0 where it is formed without
    #: cancellation): a shift of every objective and dual value alike.
    residual_error: float = 0.0

    def __post_init__(self) -> None:
        for array in (self.U, self.s, self.A, self.dropped):
            array.setflags(write=False)


def _reduce_samples(X: np.ndarray, Y: np.ndarray) -> _Reduction:
    """The reduction by a thin SVD of ``X`` (directions below numpy's rank cut dropped), or
    through ``X X^T`` where that is as accurate (:func:`_reduce_gram`)."""
    y_norm = _check_y_norm(frobenius(Y), "Y")
    gram = _reduce_gram(X, Y, y_norm)
    if gram is not None:
        return gram
    with np.errstate(over="ignore", invalid="ignore"):
        Ux, sx, Vt = svd(X)
        r = numerical_rank(sx, X.shape)
        U, s, V_drop, Vt = Ux[:, :r], sx[:r], Vt[r:], Vt[:r]
        A = Y @ Vt.T
        residual = frobenius(Y - A @ Vt)
        dropped_energy = frobenius(Y @ V_drop.T) if V_drop.size else 0.0
    if not (np.all(np.isfinite(sx)) and np.all(np.isfinite(A)) and np.isfinite(residual)):
        raise ValueError("X: its singular value decomposition overflowed float64 (rescale X; "
                         "the optimum does not change when X is scaled by c and gamma by c)")
    dropped = sx[r:]
    rounding = svd_backward_error(X.shape, frobenius(sx)) + frobenius(dropped)
    load = dropped_energy * (float(dropped[0]) + rounding) if dropped.size else 0.0
    return _Reduction(U, s, A, residual, y_norm, X.shape[1], rounding, dropped,
                      dropped_energy, load)


#: Smallest ``min(d0, n)`` at which samples with ``d0 <= n`` are reduced through ``X X^T``
#: (:func:`_reduce_gram`). Measured at d0 = 2000, n = 4000 (one BLAS thread): the Gram
#: route takes 0.53 of the time of the thin SVD with ``A = Y V`` and the residual
#: (5.5 s against 10.5 s), and needs no copy of X or ``V^T``; below a few hundred the
#: difference is in the noise of the rest of a solve.
GRAM_MIN_DIM = 1000
#: Largest orthogonality defect ``||V^T V - I||_F`` of ``V = X^T U diag(s)^-1`` for which
#: the Gram route is kept: ``V (I - E/2)`` is then orthonormal to ``3/4 ||E||^2 <= 1e-16``,
#: below float64 resolution. The defect grows like ``d0 eps cond(X)^2`` (2.7e-13 for a
#: Gaussian 2000 x 4000 X, cond 5.8); beyond this the thin SVD is taken.
GRAM_MAX_DEFECT = 1e-8
#: Entries of X outside this range of magnitudes make ``X X^T`` overflow or lose digits to
#: subnormal numbers: the SVD, which works on X itself, is taken instead.
_GRAM_RANGE = (1e-100, 1e100)


def _reduce_gram(X: np.ndarray, Y: np.ndarray, y_norm: float) -> _Reduction | None:
    """The reduction through ``X X^T = U diag(w) U^T``, or None where it would be less
    accurate than the SVD of X (then nothing of it is kept).

    With ``s = sqrt(w)``, ``V = X^T U diag(s)^-1`` and ``E = V^T V - I`` (formed from X
    itself, so the rounding of ``X X^T`` shows in it rather than hiding), ``V_hat = V (I -
    E/2)`` is orthonormal to second order in E, ``X_hat = U diag(s) V_hat^T`` satisfies
    ``X - X_hat = (I - U U^T) X + U (diag(s) E) V^T / 2``, and ``A = Y V_hat``. So the
    rounding bound is the SVD's backward error (for the orthogonality of U and the products
    that form V, A and E) plus ``||diag(s) E||_F / 2`` (times ``1 + ||E||``). The residual
    ``||Y||^2 - ||A||^2`` is formed with cancellation; its error bound goes to
    ``residual_error``. Taken only for ``d0 <= n``, X of full rank above the rank cut, entries
    in a safe range and ``||E||_F <= GRAM_MAX_DEFECT``.
    """
    d0, n = X.shape
    if min(d0, n) < GRAM_MIN_DIM or d0 > n:
        return None
    top = max(float(np.max(X)), -float(np.min(X)))  # (no |X| temporary)
    if not _GRAM_RANGE[0] <= top <= _GRAM_RANGE[1]:
        return None
    eps = np.finfo(np.float64).eps
    C = X @ X.T
    w, U = scipy.linalg.eigh(C, overwrite_a=True, check_finite=False, driver="evd")
    del C
    w, U = w[::-1], np.ascontiguousarray(U[:, ::-1])
    if not (np.all(np.isfinite(w)) and w[-1] > 0.0):
        return None
    s = np.sqrt(w)
    # The eigenvalues carry errors of about d0 eps w_1: the smallest must stand well clear.
    if numerical_rank(s, X.shape) < d0 or d0 * eps * float(w[0] / w[-1]) > GRAM_MAX_DEFECT:
        return None
    V = X.T @ U
    V /= s
    E = V.T @ V
    E[np.diag_indices(d0)] -= 1.0
    defect = frobenius(E)
    if not defect <= GRAM_MAX_DEFECT:
        return None
    A = Y @ V
    del V
    A -= 0.5 * (A @ E)  # Y V_hat
    a_norm = frobenius(A)
    if not (np.all(np.isfinite(A)) and a_norm <= y_norm * (1.0 + 1e-8)):
        return None
    residual = float(np.sqrt(max((y_norm - a_norm) * (y_norm + a_norm), 0.0)))
    x_norm = float(np.sqrt(np.sum(w)))
    rounding = (svd_backward_error(X.shape, x_norm)
                + 0.5 * (1.0 + defect) * frobenius(s[:, None] * E))
    # ||Y||^2 and ||A||^2 each to frobenius_sq_error, their difference to a few eps of
    # their sum.
    residual_error = 0.5 * ((frobenius_sq_error(Y.size) + 8.0 * eps) * y_norm**2
                            + (frobenius_sq_error(A.size) + 8.0 * eps) * a_norm**2)
    return _Reduction(U, s, A, residual, y_norm, n, rounding, residual_error=residual_error)


def _warn_if_dropped_directions_matter(data: _Reduction, rho: float) -> None:
    """Warn when the directions below the rank cut could lower the optimum visibly.

    Fitting the part ``e`` of Y along a direction of singular value ``s`` costs ``rho e / s``
    and gains at most ``e^2 / 2``; with ``s`` known only to within the rounding bound, the
    optimum could drop by ``(e - rho / (s + rounding))_+^2 / 2``.
    """
    e = data.dropped_energy
    if not data.dropped.size or e == 0.0:
        return
    s_bound = float(data.dropped[0]) + data.rounding
    drop = 0.5 * max(e - (rho / s_bound if s_bound > 0 else np.inf), 0.0) ** 2
    if drop > 1e-10 * 0.5 * data.y_norm**2:
        warnings.warn(
            f"X has {data.dropped.size} singular value(s) below the rank cut (largest "
            f"{data.dropped[0]:.2e}) along which Y has energy ||Y V||_F = {e:.3g}; at "
            f"rho = gamma H = {rho:.3g} a problem whose X had them slightly larger could "
            f"have an optimum lower by up to {drop:.3g} ({drop / (0.5 * data.y_norm**2):.1e} of "
            "1/2 ||Y||^2). The certificates account for this; rescale or drop those input "
            "directions to avoid it.", ConditioningWarning, stacklevel=4)


def _check_y_norm(y_norm: float, name: str) -> float:
    # Every objective value is at most 1/2 ||Y||^2: it must be representable.
    if not np.isfinite(0.5 * y_norm * y_norm):
        raise ValueError(
            f"{name} is too large for float64: 1/2 ||Y||_F^2 (the objective of the zero "
            f"network, ||Y||_F = {y_norm:.3g}) overflows; rescale the targets (the optimum of "
            "(c Y, c gamma) is c^2 times that of (Y, gamma))")
    # ... and resolved: relative gaps floor at GAP_FLOOR * 1/2 ||Y||^2, where values must
    # still carry full precision (no subnormal numbers).
    if 0.0 < y_norm and 0.5 * y_norm * y_norm * GAP_FLOOR * np.finfo(np.float64).eps < (
            np.finfo(np.float64).tiny):
        raise ValueError(
            f"{name} is too small for float64: with ||Y||_F = {y_norm:.3g} the objective values "
            "fall among subnormal numbers, which lose precision; rescale the targets (the "
            "optimum of (c Y, c gamma) is c^2 times that of (Y, gamma))")
    return y_norm


def _reduce_qr(R: object, d0: object, n: object) -> _Reduction:
    """The reduction from ``[X^T, Y^T] = Q R``: ``X = R11^T Q1^T``, so the SVD of ``R11^T``
    is that of X (with ``V = Q1 W``), ``A = R12^T W``, and what no map of X reaches is
    ``R22`` and the dropped directions."""
    R = as_matrix(R, "R")
    d0 = as_positive_int(d0, "d0")
    p = R.shape[0]
    if R.shape != (p, p) or not d0 < p:
        raise ValueError(f"R must be square (d0 + dH, d0 + dH) with d0 = {d0} < d0 + dH, got "
                         f"shape {R.shape}")
    if np.any(np.tril(R, -1)):
        raise ValueError("R must be upper triangular")
    if n is not None:
        n = as_positive_int(n, "n")
    R11, R12, R22 = R[:d0, :d0], R[:d0, d0:], R[d0:, d0:]
    y_norm = _check_y_norm(float(np.hypot(frobenius(R12), frobenius(R22))), "Y")
    Ux, sx, Wt = svd(R11.T)
    r = numerical_rank(sx, (d0, n if n is not None else d0))
    A_all = R12.T @ Wt.T
    U, s, A = Ux[:, :r], sx[:r], A_all[:, :r]
    dropped = sx[r:]
    dropped_energy = frobenius(A_all[:, r:])
    residual = float(np.hypot(dropped_energy, frobenius(R22)))
    # A QR factorisation is backward stable like an SVD: the same bound, twice.
    rounding = 2.0 * svd_backward_error((d0, n if n is not None else d0), frobenius(sx))
    rounding += frobenius(dropped)
    load = dropped_energy * (float(dropped[0]) + rounding) if dropped.size else 0.0
    return _Reduction(U, s, A, residual, y_norm, n, rounding, dropped, dropped_energy, load)


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
    residual = float(np.sqrt(max(YY - a_sq, 0.0)))
    if s.size and (s[0] / s[-1] > 1e7 or np.any(~keep & (w > 0))):
        warnings.warn(
            f"XXt: X X^T squares the conditioning of X (cond(X) = {s[0] / s[-1]:.1e} from its "
            f"eigenvalues, {int(np.sum(~keep & (w > 0)))} direction(s) below sqrt(eps)): beyond "
            "about 1e7 the certificates cannot reach tight tolerances. Pass the samples, Dask "
            "arrays, chunks or DeepLinearProblem.from_qr instead.",
            ConditioningWarning, stacklevel=4)
    # Eigenvalues of X X^T carry errors of eps ||X X^T||: as a perturbation of X that is
    # eps s_1^2 / s_j along direction j (squared conditioning), and the energy of Y along
    # the dropped directions cannot be told from the residual.
    dropped = np.sqrt(np.clip(w[~keep], 0.0, None))
    if s.size:
        rounding = svd_backward_error((d0, d0), float(s[0])) * float(s[0] / s[-1])
        rounding += frobenius(dropped)
    else:
        rounding = 0.0
    # Y X^T along the dropped eigenvectors is ||Y V_2 S_2|| itself, no division needed.
    load = 0.0
    if dropped.size:
        load = frobenius(YXt @ Ue[:, ~keep]) + svd_backward_error((d0, d0), frobenius(YXt))
    return _Reduction(U, s, A, residual, _check_y_norm(float(np.sqrt(YY)), "YY"), n, rounding,
                      dropped, residual if dropped.size else 0.0, load)


@dataclass(frozen=True, eq=False, repr=False)
class DeepLinearProblem:
    r"""An instance of the regularised deep linear problem.

    ``min 1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i ||W_i||_{S_H}^H`` over ``W_1 .. W_H``.

    Validated once at construction and immutable afterwards (its arrays are read-only copies,
    or with ``copy=False`` read-only views; the caller's arrays are never modified).

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
    branches : int >= 1, keyword-only
        Number ``B`` of parallel branches, each with the hidden widths ``hidden``; the network
        is ``sum_b W_{H,b} .. W_{1,b} X`` (default 1: one chain).
    penalty : {"schatten", "frobenius"}, keyword-only
        ``"schatten"`` (default): ``gamma sum ||W||_{S_H}^H`` over every layer of every branch.
        ``"frobenius"``: plain weight decay ``gamma sum ||W||_F^2``; the same thing at
        ``H = 2``. Problems other than one Schatten chain are solved by
        :func:`duallinear.solve` (``docs/math.md``, several branches).
    copy : bool, keyword-only
        ``True`` (default): keep read-only copies of X and Y. ``False``: keep read-only views
        of float64 numpy arrays as given (other input is still converted), which saves the
        memory of X and Y; the caller must then not modify them while the problem is in use
        (the reduced data would no longer describe them).

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
    branches: int = field(default=1, kw_only=True)
    penalty: str = field(default="schatten", kw_only=True)
    copy: bool = field(default=True, kw_only=True)
    #: The reduced data, when already at hand (``from_statistics``, ``with_gamma``).
    _data: _Reduction | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        X, Y, data = self.X, self.Y, self._data
        if data is None and (_statistics.is_dask(X) or _statistics.is_dask(Y)):
            # Never load Dask data: reduce it block by block to the triangular factor of
            # [X; Y]^T (a tree of QR factorisations; the conditioning is not squared).
            as_hidden(self.hidden, "hidden")
            as_nonneg_scalar(self.gamma, "gamma")
            _, _, _, n, R, d0 = _statistics.dask_statistics(X, Y, {})
            data = _reduce_qr(R, d0, n)
            X = Y = None
        elif data is None:
            if not isinstance(self.copy, (bool, np.bool_)):
                raise TypeError(f"copy must be a bool, got {type(self.copy).__name__}")
            X = as_matrix(X, "X", copy=bool(self.copy))
            Y = as_matrix(Y, "Y", copy=bool(self.copy))
            check_same_samples(X.shape, Y.shape)
        hidden = as_hidden(self.hidden, "hidden")
        gamma = as_nonneg_scalar(self.gamma, "gamma")
        branches = as_positive_int(self.branches, "branches")
        penalty = _as_penalty(self.penalty)
        if data is None:
            data = _reduce_samples(X, Y)
        if self._data is None:
            _warn_if_dropped_directions_matter(data, gamma * (len(hidden) + 1))
        # The one place the frozen fields are written: their validated values.
        for name, value in (("X", X), ("Y", Y), ("hidden", hidden), ("gamma", gamma),
                            ("branches", branches), ("penalty", penalty), ("_data", data)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_qr(cls, R: np.ndarray, d0: int, hidden: Sequence[int], gamma: float, *,
                n: int | None = None) -> DeepLinearProblem:
        """Build the problem from the triangular factor of ``[X; Y]^T``.

        With ``[X^T, Y^T] = Q R`` (samples as rows, ``Q`` orthonormal), the optimum, the dual
        and the weights depend on the data only through ``R``, which can be accumulated over
        chunks of samples by stacking factors and factorising again (what
        :mod:`duallinear.distributed` does). Unlike ``X X^T`` it keeps the conditioning of X.

        Parameters
        ----------
        R : array_like, shape (d0 + dH, d0 + dH)
            Upper triangular.
        d0 : int
            Number of inputs (rows of X).
        hidden, gamma
            As for the constructor.
        n : int, optional
            Number of samples (informational; it also sizes the rounding bound).
        """
        as_hidden(hidden, "hidden")
        as_nonneg_scalar(gamma, "gamma")
        return cls(None, None, hidden, gamma, _data=_reduce_qr(R, d0, n))

    @classmethod
    def from_statistics(cls, XXt: np.ndarray, YXt: np.ndarray, YY: float,
                        hidden: Sequence[int], gamma: float, *,
                        n: int | None = None, branches: int = 1,
                        penalty: str = "schatten") -> DeepLinearProblem:
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
        branches, penalty
            As for the constructor.

        Notes
        -----
        The singular values of X are taken as square roots of the eigenvalues of ``X X^T``,
        so directions of X weaker than ``sqrt(eps)`` times the strongest are treated as
        absent (the price of never forming X). The problem's ``X`` and ``Y`` are ``None``.
        """
        return cls(None, None, hidden, gamma, branches=branches, penalty=penalty,
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
        return self._data.residual ** 2

    @property
    def y_norm_sq(self) -> float:
        """``||Y||_F^2``."""
        return self._data.y_norm ** 2

    @property
    def residual(self) -> float:
        """``||Y - A V^T||_F`` (unsquared)."""
        return self._data.residual

    @property
    def y_norm(self) -> float:
        """``||Y||_F`` (unsquared)."""
        return self._data.y_norm

    @property
    def rounding(self) -> float:
        """Bound on ``||X - U diag(s) V^T||_F``: the reduced data is exact for a matrix within
        this distance of ``X`` (float64 backward error, plus the dropped singular values).
        The certificates account for it (``docs/math.md``, rounding)."""
        return self._data.rounding

    @property
    def residual_error(self) -> float:
        """Bound on the error of ``1/2 residual_sq`` as computed, a shift of every objective
        and dual value alike (0 unless the reduction went through ``X X^T``, which forms the
        residual as ``||Y||^2 - ||A||^2``). The certificates account for it."""
        return self._data.residual_error

    @property
    def dropped_singular_values(self) -> np.ndarray:
        """Singular values of X below the rank cut ``s_1 max(d0, n) eps``, which the reduction
        drops (read-only)."""
        return self._data.dropped

    @property
    def dropped_energy(self) -> float:
        """``||Y V_dropped||_F``: the part of Y along the dropped directions of X; fitting it
        could lower the optimum by up to half its square (at gamma = 0)."""
        return self._data.dropped_energy

    @property
    def dropped_load(self) -> float:
        """A bound on ``||Y X^T U_dropped||``: what a dual point absorbing the dropped
        directions takes from the ball ``||Lambda||_op <= rho``."""
        return self._data.dropped_load

    @property
    def condition_number(self) -> float:
        """``s_1 / s_r`` over the kept singular values of X (1 when X is zero)."""
        return float(self.s[0] / self.s[-1]) if self.rank else 1.0

    @property
    def depth(self) -> int:
        """``H``, the number of weight matrices."""
        return len(self.hidden) + 1

    @property
    def k(self) -> int:
        """The bottleneck width ``min(hidden)``."""
        return min(self.hidden)

    @property
    def K(self) -> int:
        """``branches * k``: the bottleneck of the equivalent single chain (the rank bound on
        the end-to-end matrix ``sum_b W_{H,b} .. W_{1,b}``)."""
        return self.branches * self.k

    @property
    def is_schatten(self) -> bool:
        """True when the penalty is ``gamma sum ||W||_{S_H}^H`` (``penalty="schatten"``, or
        ``"frobenius"`` at ``H = 2``, where the two coincide)."""
        return self.penalty == "schatten" or self.depth == 2

    @property
    def is_chain(self) -> bool:
        """One chain with the Schatten-H penalty: the problem ``solve_dual``, ``recover`` and
        the certificates handle directly."""
        return self.branches == 1 and self.is_schatten

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
        """Shapes ``(d_i, d_{i-1})`` of ``W_1 .. W_H`` (of each branch)."""
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

        Solvers work in the units ``A/a``, ``s/b``, ``gamma/(a b)`` where both are about one
        (``a`` is a scale, not a bound: on large A an estimate of ``||A||_op`` from below,
        :func:`~duallinear._linalg.spectral_scale`)."""
        b = float(self.s[0]) if self.rank else 1.0
        a = spectral_scale(self.A) if self.A.size else 0.0
        if a == 0.0:
            a = self.y_norm or 1.0
        return a, b

    @cached_property
    def fingerprint(self) -> str:
        """A digest of what defines the problem: shapes, widths, ``gamma`` and the reduced data
        (``U``, ``s``, ``A``, the residual). A :class:`~duallinear.DualResult` carries the
        fingerprint of its problem, so that another problem's dual is recognised."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.dims, self.hidden, float(self.gamma), self.branches,
                            self.penalty, self.residual, self.y_norm)).encode())
        for array in (self.U, self.s, self.A):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    @property
    def zero_value(self) -> float:
        """Objective of the zero network, ``1/2 ||Y||_F^2``: an upper bound on the optimum."""
        return 0.5 * self.y_norm_sq

    def with_gamma(self, gamma: float) -> DeepLinearProblem:
        """The same data and widths with another ``gamma`` (reuses the SVD of X)."""
        return dataclasses.replace(self, gamma=as_nonneg_scalar(gamma, "gamma"))

    def check_weights(self, weights: object, name: str = "weights") -> list:
        """Validate the weights against this problem's shapes; return float64 copies.

        One chain: ``[W_1, .., W_H]``. ``B > 1`` branches: a list of ``B`` such lists.
        """
        if self.branches == 1:
            return self._check_chain_weights(weights, name)
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError(
                f"{name} must be a list of {self.branches} branches, each a list "
                f"[W_1, .., W_H], got {type(weights).__name__}")
        if len(weights) != self.branches:
            raise ValueError(
                f"{name} must hold B = {self.branches} branches, got {len(weights)}")
        return [self._check_chain_weights(branch, f"{name}[{b}]")
                for b, branch in enumerate(weights)]

    def _check_chain_weights(self, weights: object, name: str) -> list[np.ndarray]:
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
        extra = (f", branches={self.branches}" if self.branches != 1 else "") + (
            f", penalty={self.penalty!r}" if self.penalty != "schatten" else "")
        return (
            f"DeepLinearProblem(d0={self.d0}, dH={self.dH}, n={self.n}, rank={self.rank}, "
            f"hidden={self.hidden}, H={self.depth}, k={self.k}, gamma={self.gamma:g}{extra})"
        )


def _as_penalty(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"penalty must be one of {PENALTIES}, got {type(value).__name__}")
    if value not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {value!r}")
    return value


def check_problem(problem: object, name: str = "problem") -> DeepLinearProblem:
    """Raise ``TypeError`` unless ``problem`` is a :class:`DeepLinearProblem`."""
    if not isinstance(problem, DeepLinearProblem):
        raise TypeError(f"{name} must be a DeepLinearProblem, got {type(problem).__name__}")
    return problem


def check_chain(problem: object, name: str = "problem") -> DeepLinearProblem:
    """:func:`check_problem`, and ``ValueError`` unless the problem is one Schatten chain."""
    check_problem(problem, name)
    if not problem.is_chain:
        raise ValueError(
            f"{name} has branches={problem.branches} and penalty={problem.penalty!r} at "
            f"H = {problem.depth}: this function handles one chain with the Schatten-H penalty. "
            "Use duallinear.solve(problem), or duallinear.branches.chain_problem(problem) for "
            "the equivalent single chain")
    return problem
