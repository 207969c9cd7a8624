r"""Sufficient statistics for data that does not fit in memory.

The dual problem, its optimum and the recovered weights depend on the samples only through

    XXt = X X^T  (d0, d0),    YXt = Y X^T  (dH, d0),    YY = ||Y||_F^2

(MATH.md section 4). Each is a sum over samples, so it can be accumulated chunk by chunk:

* :func:`statistics` computes them from numpy arrays, or from Dask arrays on whatever
  scheduler or cluster is active (one ``dask.compute`` of the three, so every chunk of the
  data is produced and read once);
* :func:`statistics_from_chunks` accumulates them from any iterable of ``(X_chunk, Y_chunk)``
  pairs (a file reader, a generator) while holding one chunk at a time;
* :func:`problem_from_dask` and :func:`problem_from_chunks` build the
  :class:`~duallinear.DeepLinearProblem` from them (its ``X`` and ``Y`` are then ``None``).

Dask is optional: it is imported only when a Dask array is given
(``pip install "duallinear[dask]"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._validation import as_hidden, as_matrix, as_nonneg_scalar, as_positive_int
from .problem import DeepLinearProblem

__all__ = [
    "Statistics",
    "statistics",
    "statistics_from_chunks",
    "problem_from_dask",
    "problem_from_chunks",
]


class Statistics(tuple):
    """The triple ``(XXt, YXt, YY)``, with the number of samples ``n`` as an attribute.

    Unpacks like a plain tuple: ``XXt, YXt, YY = statistics(X, Y)``.

    Attributes
    ----------
    XXt : ndarray, shape (d0, d0)
    YXt : ndarray, shape (dH, d0)
    YY : float
    n : int
        Number of samples summed over.
    """

    n: int

    def __new__(cls, XXt: np.ndarray, YXt: np.ndarray, YY: float, n: int) -> Statistics:
        n = as_positive_int(n, "n", minimum=0)
        self = super().__new__(cls, (XXt, YXt, as_nonneg_scalar(YY, "YY")))
        self.n = n
        return self

    @property
    def XXt(self) -> np.ndarray:
        return self[0]

    @property
    def YXt(self) -> np.ndarray:
        return self[1]

    @property
    def YY(self) -> float:
        return self[2]

    def problem(self, hidden: Sequence[int], gamma: float) -> DeepLinearProblem:
        """``DeepLinearProblem.from_statistics`` on these statistics."""
        return DeepLinearProblem.from_statistics(self.XXt, self.YXt, self.YY, hidden, gamma,
                                                 n=self.n)

    def __repr__(self) -> str:
        return (f"Statistics(d0={self.XXt.shape[0]}, dH={self.YXt.shape[0]}, n={self.n}, "
                f"YY={self.YY:.6g})")


# ----------------------------------------------------------------------------- dask
def _is_dask(value: object) -> bool:
    # Duck-typed so that numpy-only users never import dask.
    return hasattr(value, "__dask_graph__") and hasattr(value, "ndim")


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised only without dask installed
        raise ImportError(
            "Dask arrays need the optional dependency dask: "
            'pip install "duallinear[dask]"'
        ) from exc
    return dask, da


def _check_dask_matrix(value: Any, name: str, da: Any) -> Any:
    """Validate what can be checked without computing: type, rank, dtype, size."""
    if not isinstance(value, da.Array):
        value = da.asarray(value)
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a Dask array with {value.ndim} dimension(s) "
                         f"and shape {value.shape}")
    if np.issubdtype(value.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {value.dtype}")
    if not (np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.bool_)):
        raise TypeError(f"{name} must have a real numeric dtype, got dtype {value.dtype}")
    if any(isinstance(n, float) and np.isnan(n) for n in value.shape):
        raise ValueError(f"{name} must have known dimensions (call compute_chunk_sizes() "
                         f"first), got shape {value.shape}")
    if value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    return value.astype(np.float64)


def _dask_statistics(X: Any, Y: Any, compute_kwargs: dict) -> Statistics:
    dask, da = _import_dask()
    X = _check_dask_matrix(X, "X", da)
    Y = _check_dask_matrix(Y, "Y", da)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            "X and Y must have the same number of samples (columns): "
            f"X has shape {X.shape} (d0, n), Y has shape {Y.shape} (dH, n)")
    # Same column chunks, so each sample block of X meets the matching block of Y.
    Y = Y.rechunk({1: X.chunks[1]})
    XXt, YXt, YY = dask.compute(X @ X.T, Y @ X.T, da.sum(Y * Y), **compute_kwargs)
    XXt, YXt, YY = np.asarray(XXt), np.asarray(YXt), float(YY)
    # NaN and Inf in the data propagate to the diagonal of X X^T and to ||Y||^2: checking
    # the small results validates every entry without a second pass over the data.
    if not np.all(np.isfinite(np.diag(XXt))):
        raise ValueError("X must contain only finite values (found NaN or Inf, or entries so "
                         "large that X X^T overflows)")
    if not np.isfinite(YY):
        raise ValueError("Y must contain only finite values (found NaN or Inf, or entries so "
                         "large that ||Y||^2 overflows)")
    if not (np.all(np.isfinite(XXt)) and np.all(np.isfinite(YXt))):
        raise ValueError("X and Y: the statistics X X^T, Y X^T overflowed (entries too large)")
    return Statistics(_symmetrise(XXt), YXt, YY, X.shape[1])


def _symmetrise(XXt: np.ndarray) -> np.ndarray:
    # Blocked sums can differ in the last bit between (i, j) and (j, i).
    return 0.5 * (XXt + XXt.T)


# ---------------------------------------------------------------------------- public
def statistics(X: Any, Y: Any, **compute_kwargs: Any) -> Statistics:
    """Sufficient statistics ``(X X^T, Y X^T, ||Y||_F^2)`` of the data.

    Parameters
    ----------
    X : array_like or dask.array.Array, shape (d0, n)
        Inputs, one column per sample.
    Y : array_like or dask.array.Array, shape (dH, n)
        Targets, one column per sample.
    **compute_kwargs
        Passed to ``dask.compute`` when X or Y is a Dask array (e.g. ``scheduler="threads"``);
        by default the active scheduler or ``dask.distributed.Client`` is used.

    Returns
    -------
    Statistics
        ``(XXt, YXt, YY)`` with ``XXt`` of shape (d0, d0), ``YXt`` of shape (dH, d0) and
        ``YY`` a float; ``.n`` is the number of samples.

    Notes
    -----
    With Dask arrays the three products are computed in one ``dask.compute``, block by block
    along the samples, so the data are streamed once and never gathered in one place; only
    ``O(d0 (d0 + dH))`` numbers come back. Integer and float32 data are summed in float64.
    Non-finite data are detected from the results (they make ``X X^T`` or ``||Y||^2``
    non-finite), so no extra pass over the data is needed.
    """
    if compute_kwargs and not (_is_dask(X) or _is_dask(Y)):
        raise TypeError("compute options (" + ", ".join(compute_kwargs)
                        + ") apply only to Dask arrays; X and Y are in memory")
    if _is_dask(X) or _is_dask(Y):
        return _dask_statistics(X, Y, compute_kwargs)
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            "X and Y must have the same number of samples (columns): "
            f"X has shape {X.shape} (d0, n), Y has shape {Y.shape} (dH, n)")
    return Statistics(_symmetrise(X @ X.T), Y @ X.T, float(np.sum(Y * Y)), X.shape[1])


def statistics_from_chunks(chunks: Iterable[tuple[Any, Any]]) -> Statistics:
    """Accumulate ``(X X^T, Y X^T, ||Y||_F^2)`` over chunks of samples.

    Parameters
    ----------
    chunks : iterable of (X_chunk, Y_chunk)
        ``X_chunk`` of shape (d0, n_i) and ``Y_chunk`` of shape (dH, n_i): consecutive
        blocks of columns of X and Y (any order, any sizes ``n_i >= 1``). A generator is
        consumed once and only one chunk is held at a time.

    Returns
    -------
    Statistics
        The same as :func:`statistics` on the concatenated data, with ``.n = sum n_i``.
    """
    if isinstance(chunks, (np.ndarray, str, bytes)) or not isinstance(chunks, Iterable):
        raise TypeError("chunks must be an iterable of (X_chunk, Y_chunk) pairs, got "
                        f"{type(chunks).__name__}")
    XXt = YXt = None
    YY, n = 0.0, 0
    for i, pair in enumerate(chunks):
        if isinstance(pair, np.ndarray) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"chunks[{i}] must be a pair (X_chunk, Y_chunk), got "
                            f"{type(pair).__name__}")
        Xc = as_matrix(pair[0], f"chunks[{i}][0] (X_chunk)")
        Yc = as_matrix(pair[1], f"chunks[{i}][1] (Y_chunk)")
        if Xc.shape[1] != Yc.shape[1]:
            raise ValueError(
                f"chunks[{i}]: X_chunk and Y_chunk must have the same number of samples "
                f"(columns), got shapes {Xc.shape} and {Yc.shape}")
        if XXt is None:
            XXt = np.zeros((Xc.shape[0], Xc.shape[0]))
            YXt = np.zeros((Yc.shape[0], Xc.shape[0]))
        elif Xc.shape[0] != XXt.shape[0] or Yc.shape[0] != YXt.shape[0]:
            raise ValueError(
                f"chunks[{i}] has {Xc.shape[0]} input and {Yc.shape[0]} output rows; earlier "
                f"chunks had d0 = {XXt.shape[0]} and dH = {YXt.shape[0]}")
        XXt += Xc @ Xc.T
        YXt += Yc @ Xc.T
        YY += float(np.sum(Yc * Yc))
        n += Xc.shape[1]
    if XXt is None:
        raise ValueError("chunks must hold at least one (X_chunk, Y_chunk) pair; it was empty")
    if not (np.all(np.isfinite(XXt)) and np.all(np.isfinite(YXt)) and np.isfinite(YY)):
        raise ValueError("chunks: the accumulated statistics overflowed (entries too large)")
    return Statistics(_symmetrise(XXt), YXt, YY, n)


def problem_from_dask(X: Any, Y: Any, hidden: Sequence[int], gamma: float,
                      **compute_kwargs: Any) -> DeepLinearProblem:
    """Build the problem from data too large to hold, through its sufficient statistics.

    Parameters
    ----------
    X : dask.array.Array or array_like, shape (d0, n)
    Y : dask.array.Array or array_like, shape (dH, n)
    hidden : sequence of int
        Hidden widths ``(d_1, .., d_{H-1})``.
    gamma : float >= 0
    **compute_kwargs
        Passed to ``dask.compute`` (see :func:`statistics`).

    Returns
    -------
    DeepLinearProblem
        Built by ``DeepLinearProblem.from_statistics``; its ``X`` and ``Y`` are ``None`` and
        its ``n`` is the number of samples. Every solver accepts it.
    """
    _check_model(hidden, gamma)
    return statistics(X, Y, **compute_kwargs).problem(hidden, gamma)


def problem_from_chunks(chunks: Iterable[tuple[Any, Any]], hidden: Sequence[int],
                        gamma: float) -> DeepLinearProblem:
    """:func:`statistics_from_chunks` followed by ``DeepLinearProblem.from_statistics``."""
    _check_model(hidden, gamma)
    return statistics_from_chunks(chunks).problem(hidden, gamma)


def _check_model(hidden: object, gamma: object) -> None:
    # Fail on a typo in the model before streaming the data, not after.
    as_hidden(hidden, "hidden")
    as_nonneg_scalar(gamma, "gamma")
