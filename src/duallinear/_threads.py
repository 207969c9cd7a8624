"""One BLAS thread for the library's dense work on small and medium matrices.

Measured on the 2-core machine of ``benchmarks/README-performance.md``
(``benchmarks/blas_threads.py``): with OpenBLAS's default two threads and no limit,
``solve_dual`` on Gaussian X took 4.2x as long at d = 100, 16x at d = 200 and 2.8x at d = 700
as with it (the work is many small or skinny products and decompositions, where waking
threads costs more than it saves). At d = 2000 the caller's threads help: a full SVD of
2000 x 2000 took 1.3 s on two threads and 2.3 s on one.

The limit is process-wide, so callers running in threads (joblib's threading or Dask
backends) share one: the first to enter sets it and the last to leave restores what was
there. A plain ``threadpool_limits`` per call would let one thread restore the default while
another is still inside, which changed results mid-run.

threadpoolctl (from 3.8) lets only one "controlling" thread change OpenBLAS's process-wide
pool and silently ignores the others, and a thread keeps control until it exits or leaves a
``with`` block. The first and last users here may be different threads, so each takes control
explicitly (``clear_controlling_thread(force=True)``, the documented way for another thread to
take over) before it sets or restores the limit, and gives it back afterwards. Measured
without this: a worker thread's limit was ignored while the main thread held control.
"""

from __future__ import annotations

import contextlib
import os
import threading

import threadpoolctl
from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread", "one_blas_thread_for", "limit_allowed", "SINGLE_THREAD_MAX_DIM",
           "LIMIT_ENV"]

#: ``solve_dual`` and ``recover`` run BLAS on one thread while ``min(dH, rank X)`` is below
#: this (see the module docstring); larger problems keep the caller's setting.
SINGLE_THREAD_MAX_DIM = 1000

#: Environment variable that turns the limit off when set to ``0`` (read at each call), for
#: callers who manage BLAS threads themselves and for measuring what the limit buys.
LIMIT_ENV = "DUALLINEAR_BLAS_LIMIT"

_LOCK = threading.Lock()
_USERS = 0
_LIMITER = None
_CONTROLLER: ThreadpoolController | None = None


@contextlib.contextmanager
def one_blas_thread(active: bool = True):
    """BLAS limited to one thread inside the block (a no-op when ``active`` is False)."""
    global _USERS, _LIMITER, _CONTROLLER
    if not active:
        yield
        return
    with _LOCK:
        if _USERS == 0:
            # A controller is built once (it inspects every loaded library, about 1 ms);
            # limiting through it costs about 10 us. It knows the libraries loaded by then,
            # which include numpy's and scipy's BLAS, the only ones this library calls.
            if _CONTROLLER is None:
                _CONTROLLER = ThreadpoolController()
            _free_control()  # this thread takes control by setting the limit...
            _LIMITER = _CONTROLLER.limit(limits=1, user_api="blas")
            _free_control()  # ...and gives it back
        _USERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS -= 1
            if _USERS == 0 and _LIMITER is not None:
                _free_control()
                _LIMITER.restore_original_limits()
                _free_control()
                _LIMITER = None


def limit_allowed() -> bool:
    """False when ``DUALLINEAR_BLAS_LIMIT=0`` is set (read at each call)."""
    return os.environ.get(LIMIT_ENV, "1").strip() != "0"


def one_blas_thread_for(shape: tuple[int, ...], active: bool = True):
    """:func:`one_blas_thread` for work on reduced data of ``shape``: active while
    ``min(shape) < SINGLE_THREAD_MAX_DIM``, unless ``DUALLINEAR_BLAS_LIMIT=0`` or ``active``
    is False (the solvers' ``blas_limit=False``)."""
    return one_blas_thread(active and min(shape) < SINGLE_THREAD_MAX_DIM and limit_allowed())


def _free_control() -> None:
    """No thread controls OpenBLAS's pool: the next one to set a limit takes control."""
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:  # threadpoolctl < 3.8 has no controlling thread
        clear(force=True)
