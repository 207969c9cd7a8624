"""Sufficient statistics of the data, ``(X X^T, Y X^T, ||Y||_F^2, n)``, as plain tuples.

The arithmetic behind :mod:`duallinear.distributed` (which wraps the tuples in its public
``Statistics``), kept apart so that :mod:`duallinear.problem` can reduce Dask input without
importing the module that builds problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._validation import as_matrix, check_same_samples

__all__ = ["Raw", "dask_statistics", "is_dask", "of_arrays", "of_chunks", "symmetrise"]

#: ``(XXt, YXt, YY, n)``.
Raw = tuple[np.ndarray, np.ndarray, float, int]


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


def dask_statistics(X: Any, Y: Any, compute_kwargs: dict) -> Raw:
    dask, da = import_dask()
    X = check_dask_matrix(X, "X", da)
    Y = check_dask_matrix(Y, "Y", da)
    check_same_samples(X.shape, Y.shape)
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
    return symmetrise(XXt), YXt, YY, X.shape[1]


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
    return symmetrise(X @ X.T), Y @ X.T, float(np.sum(Y * Y)), X.shape[1]


def of_chunks(chunks: Iterable[tuple[Any, Any]]) -> Raw:
    """``(X X^T, Y X^T, ||Y||^2, n)`` accumulated over chunks (see
    ``distributed.statistics_from_chunks``)."""
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
        check_same_samples(Xc.shape, Yc.shape, f"chunks[{i}]: X_chunk and Y_chunk")
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
    return symmetrise(XXt), YXt, YY, n
