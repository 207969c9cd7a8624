"""Input validation at the public boundary.

Every public entry point checks its arguments here, once, and raises a ``TypeError`` or
``ValueError`` that names the argument, says what was expected and what was received.
Code behind the boundary trusts its inputs.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_matrix",
    "as_nonneg_scalar",
    "as_positive_int",
    "as_hidden",
    "check_same_samples",
    "check_callback",
]


#: Largest layer width accepted (an index that fits in 32 bits; far beyond memory anyway).
MAX_WIDTH = 2**31 - 1


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__}"


def as_matrix(value: object, name: str, *, allow_empty: bool = False, copy: bool = True
              ) -> np.ndarray:
    """Return ``value`` as a new, C-contiguous, read-only float64 matrix.

    Accepts real or integer (and boolean) array-likes of exactly two dimensions with finite
    entries: numpy arrays, nested lists, and any array with ``__array__`` or ``__dlpack__``
    (PyTorch, JAX, CuPy, ... without importing them). The caller's array is never modified:
    the result is a copy, or with ``copy=False`` a read-only *view* of a float64 numpy array
    as given (any memory layout; other input is still converted).

    Raises
    ------
    TypeError
        If ``value`` is not array-like, is complex, or has a non-numeric dtype.
    ValueError
        If it is not two-dimensional, is empty, or holds NaN or Inf.
    """
    if value is None:
        raise TypeError(f"{name} must be a 2-D real array, got None")
    if isinstance(value, np.ma.MaskedArray):
        # np.asarray would silently drop the mask and use the hidden values.
        raise TypeError(f"{name} is a masked array: fill or remove the masked entries first "
                        "(e.g. value.filled(0.0) or a complete-case selection)")
    if (hasattr(value, "__array_namespace__") or hasattr(value, "__array__")
            or hasattr(value, "__dlpack__")):
        arr = _foreign_array(value, name)
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular 2-D array: {exc}") from None
    else:
        raise TypeError(f"{name} must be a 2-D real array, got {_describe(value)}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must have a real numeric dtype, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got an array with {arr.ndim} dimension(s) "
                         f"and shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if copy:
        out = np.array(arr, dtype=np.float64, order="C", copy=True)
    else:
        out = np.asarray(arr, dtype=np.float64).view()  # (setting its flag leaves arr alone)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must contain only finite values (found NaN or Inf)")
    out.setflags(write=False)
    return out


#: Errors an array library raises when it will not hand its data to numpy.
_CONVERSION_ERRORS = (TypeError, ValueError, RuntimeError, BufferError)


def _foreign_array(value: object, name: str) -> np.ndarray:
    """``value`` as a numpy array through ``__array__``, else through DLPack."""
    problem = None
    if hasattr(value, "__array__") or hasattr(value, "__array_namespace__"):
        try:
            return np.asarray(value)
        except _CONVERSION_ERRORS as exc:
            problem = exc
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except _CONVERSION_ERRORS as exc:
            problem = exc
    raise TypeError(
        f"{name}: a {type(value).__name__} could not be read as a numpy array ({problem}); "
        "give it in host memory and without autograd history (a PyTorch tensor: "
        "t.detach().cpu(); CuPy: a.get(); JAX: jax.device_get(a))") from None


def as_nonneg_scalar(value: object, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.isrealobj(value):
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if out < 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def as_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as a Python ``int`` that is at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)} ({value!r})")
    out = int(value)
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def as_hidden(value: object, name: str = "hidden") -> tuple[int, ...]:
    """Return the hidden widths ``(d_1, .., d_{H-1})`` as a non-empty tuple of ints >= 1."""
    if (isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray))
            or (isinstance(value, np.ndarray) and value.ndim != 1)):
        raise TypeError(
            f"{name} must be a sequence of positive integers (the hidden widths), "
            f"got {_describe(value)}"
        )
    widths = list(value.tolist() if isinstance(value, np.ndarray) else value)
    if len(widths) == 0:
        raise ValueError(
            f"{name} must hold at least one hidden width (H = len({name}) + 1 >= 2); "
            "got an empty sequence"
        )
    out = []
    for i, w in enumerate(widths):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral):
            raise TypeError(f"{name}[{i}] must be a positive integer, got {w!r}")
        if int(w) < 1:
            raise ValueError(f"{name}[{i}] must be a positive integer, got {int(w)}")
        if int(w) > MAX_WIDTH:
            raise ValueError(f"{name}[{i}] = {int(w)} exceeds the largest supported width "
                             f"{MAX_WIDTH} (2^31 - 1)")
        out.append(int(w))
    return tuple(out)


def check_same_samples(x_shape: tuple[int, ...], y_shape: tuple[int, ...],
                       names: str = "X and Y") -> None:
    """``ValueError`` unless inputs of ``x_shape`` and targets of ``y_shape`` have the same
    number of columns (samples)."""
    if x_shape[1] != y_shape[1]:
        raise ValueError(
            f"{names} must have the same number of samples (columns): inputs have shape "
            f"{x_shape} (d0, n), targets {y_shape} (dH, n)")


def check_callback(callback: object, name: str = "callback") -> None:
    """``TypeError`` unless ``callback`` is None or callable."""
    if callback is not None and not callable(callback):
        raise TypeError(f"{name} must be callable or None, got {type(callback).__name__}")
