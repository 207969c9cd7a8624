r"""Sufficient statistics for data that does not fit in memory.

The dual problem, its optimum and the recovered weights depend on the samples only through

    XXt = X X^T  (d0, d0),    YXt = Y X^T  (dH, d0),    YY = ||Y||_F^2

(the reduction [(3)][eq-reduction] of the math page). Each is a sum over samples, so it can be
accumulated chunk by chunk:

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

from . import _statistics
from ._validation import as_hidden, as_nonneg_scalar, as_positive_int
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
    #: The upper-triangular factor of ``[X; Y]^T = Q R``, ``(d0 + dH)`` square, from which the
    #: Gram statistics were formed (None if built from them). :meth:`problem` reduces it
    #: directly, without squaring the conditioning of X.
    R: np.ndarray | None

    def __new__(cls, XXt: np.ndarray, YXt: np.ndarray, YY: float, n: int,
                R: np.ndarray | None = None, d0: int | None = None) -> Statistics:
        n = as_positive_int(n, "n", minimum=0)
        self = super().__new__(cls, (XXt, YXt, as_nonneg_scalar(YY, "YY")))
        self.n = n
        self.R = R
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
        """The problem of these statistics: ``DeepLinearProblem.from_qr`` on ``R`` when it is
        known (accurate to the conditioning of X), else ``from_statistics``."""
        if self.R is not None:
            return DeepLinearProblem.from_qr(self.R, self.XXt.shape[0], hidden, gamma,
                                             n=self.n)
        return DeepLinearProblem.from_statistics(self.XXt, self.YXt, self.YY, hidden, gamma,
                                                 n=self.n)

    def __repr__(self) -> str:
        return (f"Statistics(d0={self.XXt.shape[0]}, dH={self.YXt.shape[0]}, n={self.n}, "
                f"YY={self.YY:.6g})")


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
    return Statistics(*_statistics.of_arrays(X, Y, compute_kwargs))


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

    Examples
    --------
    >>> import numpy as np
    >>> from duallinear.distributed import statistics_from_chunks
    >>> X, Y = np.ones((2, 6)), np.ones((1, 6))
    >>> stats = statistics_from_chunks((X[:, i:i + 2], Y[:, i:i + 2]) for i in range(0, 6, 2))
    >>> stats.n, float(stats.YY)
    (6, 6.0)
    """
    return Statistics(*_statistics.of_chunks(chunks))


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
