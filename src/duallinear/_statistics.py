"""Sufficient statistics of the data as plain tuples: the triangular factor R of
``[X; Y]^T = Q R``, accumulated block by block (a QR never squares the conditioning of X, as
``X X^T`` does), and the Gram statistics ``(X X^T, Y X^T, ||Y||_F^2)`` derived from it.

The arithmetic behind :mod:`duallinear.distributed` (which wraps the tuples in its public
``Statistics``), kept apart so that :mod:`duallinear.problem` can reduce Dask input without
importing the module that builds problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._validation import as_matrix, check_same_samples

__all__ = ["Raw", "dask_statistics", "is_dask", "of_arrays", "of_chunks", "qr_r", "symmetrise"]

#: ``(XXt, YXt, YY, n, R, d0)``: the Gram statistics, the sample count, and the
#: upper-triangular factor R of ``[X; Y]^T = Q R`` (``(d0 + dH)`` square) they come from.
Raw = tuple[np.ndarray, np.ndarray, float, int, np.ndarray, int]


def is_dask(value: object) -> bool:
    # Duck-typed so that numpy-only users never import dask.
    return hasattr(value, "__dask_graph__") and hasattr(value, "ndim")


def import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised only without dask installed
        raise ImportError(
            "Dask arrays need the optional dependency dask: "
            'pip install "duallinear[dask]"'
        ) from exc
    return dask, da


def check_dask_matrix(value: Any, name: str, da: Any) -> Any:
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


def qr_r(Z: np.ndarray, p: int) -> np.ndarray:
    """The ``p x p`` upper-triangular factor R of ``Z = Q R`` (``Z`` of ``p`` columns; rows of
    zeros added when Z has fewer rows)."""
    R = np.linalg.qr(Z, mode="r")
    if R.shape[0] < p:
        R = np.vstack([R, np.zeros((p - R.shape[0], p))])
    return R


def _finished(XXt: np.ndarray, YXt: np.ndarray, YY: float, R: np.ndarray, d0: int, n: int,
              source: str) -> Raw:
    """The statistics, validated. NaN and Inf in the data propagate to R and to the diagonal
    of ``X X^T``: checking the small results validates every entry without a second pass."""
    if not np.all(np.isfinite(np.diag(XXt))):
        raise ValueError("X must contain only finite values (found NaN or Inf, or entries so "
                         "large that X X^T overflows)")
    if not np.isfinite(YY):
        raise ValueError("Y must contain only finite values (found NaN or Inf, or entries so "
                         "large that ||Y||^2 overflows)")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"{source} must contain only finite values (their QR factor is not)")
    if not (np.all(np.isfinite(XXt)) and np.all(np.isfinite(YXt))):
        raise ValueError(f"{source}: the statistics X X^T, Y X^T overflowed (entries too large)")
    return symmetrise(XXt), YXt, float(YY), n, R, d0


def dask_statistics(X: Any, Y: Any, compute_kwargs: dict) -> Raw:
    """The triangular factor of ``[X; Y]^T`` by a tree of QR factorisations of its blocks of
    samples (one pass over the data, never gathered), with the Gram statistics from it."""
    dask, da = import_dask()
    X = check_dask_matrix(X, "X", da)
    Y = check_dask_matrix(Y, "Y", da)
    check_same_samples(X.shape, Y.shape)
    d0, p = X.shape[0], X.shape[0] + Y.shape[0]
    # Samples as rows, all features in one block column; each block of samples is reduced to
    # its p x p factor, and the factors are stacked and reduced again, pairwise.
    Z = da.concatenate([X, Y.rechunk({1: X.chunks[1]})], axis=0).T.rechunk({1: -1})
    factors = [dask.delayed(qr_r)(block, p) for block in Z.to_delayed().ravel()]
    while len(factors) > 1:
        factors = [dask.delayed(qr_r)(dask.delayed(np.vstack)(factors[i:i + 2]), p)
                   if i + 1 < len(factors) else factors[i] for i in range(0, len(factors), 2)]
    Yc = Y.rechunk({1: X.chunks[1]})
    # One compute: every block of the data is produced once for all four results.
    XXt, YXt, YY, R = dask.compute(X @ X.T, Yc @ X.T, da.sum(Yc * Yc), factors[0],
                                   **compute_kwargs)
    return _finished(np.asarray(XXt), np.asarray(YXt), float(YY),
                     np.asarray(R, dtype=np.float64), d0, X.shape[1], "X and Y")


def symmetrise(XXt: np.ndarray) -> np.ndarray:
    # Blocked sums can differ in the last bit between (i, j) and (j, i).
    return 0.5 * (XXt + XXt.T)


def of_arrays(X: Any, Y: Any, compute_kwargs: dict) -> Raw:
    """``(X X^T, Y X^T, ||Y||^2, n)`` of numpy or Dask arrays (see ``distributed.statistics``)."""
    if compute_kwargs and not (is_dask(X) or is_dask(Y)):
        raise TypeError("compute options (" + ", ".join(compute_kwargs)
                        + ") apply only to Dask arrays; X and Y are in memory")
    if is_dask(X) or is_dask(Y):
        return dask_statistics(X, Y, compute_kwargs)
    X = as_matrix(X, "X")
    Y = as_matrix(Y, "Y")
    check_same_samples(X.shape, Y.shape)
    p = X.shape[0] + Y.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        XXt, YXt, YY = X @ X.T, Y @ X.T, float(np.sum(Y * Y))
    return _finished(XXt, YXt, YY, qr_r(np.vstack([X, Y]).T, p), X.shape[0], X.shape[1],
                     "X and Y")


def of_chunks(chunks: Iterable[tuple[Any, Any]]) -> Raw:
    """``(X X^T, Y X^T, ||Y||^2, n)`` accumulated over chunks (see
    ``distributed.statistics_from_chunks``)."""
    if isinstance(chunks, (np.ndarray, str, bytes)) or not isinstance(chunks, Iterable):
        raise TypeError("chunks must be an iterable of (X_chunk, Y_chunk) pairs, got "
                        f"{type(chunks).__name__}")
    R = XXt = YXt = None
    d0 = dH = 0
    n, YY = 0, 0.0
    for i, pair in enumerate(chunks):
        if isinstance(pair, np.ndarray) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"chunks[{i}] must be a pair (X_chunk, Y_chunk), got "
                            f"{type(pair).__name__}")
        Xc = as_matrix(pair[0], f"chunks[{i}][0] (X_chunk)")
        Yc = as_matrix(pair[1], f"chunks[{i}][1] (Y_chunk)")
        check_same_samples(Xc.shape, Yc.shape, f"chunks[{i}]: X_chunk and Y_chunk")
        if R is None:
            d0, dH = Xc.shape[0], Yc.shape[0]
            R = np.zeros((0, d0 + dH))
            XXt, YXt = np.zeros((d0, d0)), np.zeros((dH, d0))
        elif Xc.shape[0] != d0 or Yc.shape[0] != dH:
            raise ValueError(
                f"chunks[{i}] has {Xc.shape[0]} input and {Yc.shape[0]} output rows; earlier "
                f"chunks had d0 = {d0} and dH = {dH}")
        # The running factor and the new samples, reduced together (the data never squared).
        R = qr_r(np.vstack([R, np.vstack([Xc, Yc]).T]), d0 + dH)
        with np.errstate(over="ignore", invalid="ignore"):
            XXt += Xc @ Xc.T
            YXt += Yc @ Xc.T
            YY += float(np.sum(Yc * Yc))
        n += Xc.shape[1]
    if R is None:
        raise ValueError("chunks must hold at least one (X_chunk, Y_chunk) pair; it was empty")
    return _finished(XXt, YXt, YY, R, d0, n, "chunks")
