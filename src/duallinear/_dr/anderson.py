"""Type-II Anderson acceleration of a fixed-point iteration (generic: arrays in, arrays out).

For a map ``T`` with residual ``f(z) = T(z) - z``, the accelerated step is
``z + f - sum_i c_i (dz_i + df_i)``, with ``c`` the least-squares coefficients of ``f`` on the
last ``memory`` residual differences ``df_i`` (Walker and Ni, "Anderson acceleration for
fixed-point iterations", SIAM J. Numer. Anal. 49, 2011; the type-II form of Fang and Saad,
"Two classes of multisecant methods for nonlinear acceleration", 2009).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Anderson"]


class Anderson:
    """Type-II Anderson acceleration with ring buffers and an incrementally updated Gram matrix.

    The buffers hold ``df_i`` and ``dz_i + df_i`` and the Gram matrix of the ``df_i`` is
    updated one row at a time, so a step costs three matrix-vector products with the buffers
    (on large problems it is bound by memory traffic, not arithmetic). Nothing of the size of
    ``z`` is allocated after construction: fresh large arrays cost page faults on every step.

    Parameters
    ----------
    memory : int >= 1
        Number of past differences used.
    size : int
        Length of the (flattened) iterate.
    ridge : float
        Tikhonov regularisation of the least-squares problem, relative to the mean diagonal
        of its Gram matrix.

    Examples
    --------
    >>> import numpy as np
    >>> acc = Anderson(memory=3, size=2)
    >>> z = np.ones(2)
    >>> for _ in range(20):  # z -> 0.5 z + 1 has the fixed point 2
    ...     z = acc.step(z, (0.5 * z + 1.0) - z, out=np.empty(2))
    >>> bool(np.allclose(z, 2.0))
    True
    """

    def __init__(self, memory: int, size: int, ridge: float = 1e-10):
        if memory < 1:
            raise ValueError(f"memory must be >= 1, got {memory}")
        self.memory = memory
        self.ridge = ridge
        self.dF = np.zeros((memory, size))
        self.dG = np.zeros((memory, size))  # dz_i + df_i
        self.gram = np.zeros((memory, memory))
        self.prev_z = np.zeros(size)
        self.prev_f = np.zeros(size)
        self.work = np.zeros(size)
        self.reset()

    def reset(self) -> None:
        """Forget the history (the next step is a plain fixed-point step)."""
        self.count = 0
        self.has_prev = False

    def step(self, z: np.ndarray, f: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Next point, written to ``out``, from ``z`` and its residual ``f = T(z) - z``."""
        np.add(z, f, out=out)
        if not self.has_prev:
            np.copyto(self.prev_z, z)
            np.copyto(self.prev_f, f)
            self.has_prev = True
            return out
        slot = self.count % self.memory
        np.subtract(f, self.prev_f, out=self.dF[slot])
        np.subtract(z, self.prev_z, out=self.dG[slot])
        self.dG[slot] += self.dF[slot]
        np.copyto(self.prev_z, z)
        np.copyto(self.prev_f, f)
        self.count += 1
        m = min(self.count, self.memory)
        row = self.dF[:m] @ self.dF[slot]
        self.gram[slot, :m] = row
        self.gram[:m, slot] = row
        gram = self.gram[:m, :m].copy()
        gram += (self.ridge * np.trace(gram) / m + 1e-300) * np.eye(m)
        try:
            coef = np.linalg.solve(gram, self.dF[:m] @ f)
        except np.linalg.LinAlgError:
            self.reset()
            return out
        out -= np.dot(coef, self.dG[:m], out=self.work)
        return out
