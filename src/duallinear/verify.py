r"""An exact check a user can run: the certificate re-evaluated on the original data.

:func:`verify` evaluates, in ``digits``-digit arithmetic (mpmath) on the original ``X`` and
``Y`` - no float64 SVD, no reduced coordinates -

* the objective of the given weights, ``P(W) = 1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i
  ||W_i||_{S_H}^H``, from their exact float64 entries;
* the dual value ``D(Lambda) = min_{rank M <= k} 1/2 ||M X - Y||^2 + <Lambda, M>`` of a dual
  point built from the given one with the exact singular triplets ``(U, S, V)`` of ``X``
  (from the eigendecomposition of ``X X^T``, exact to the working precision): ``Lambda``
  restricted to the ``r`` leading directions (``r = problem.rank``), where ``Gamma = Lambda
  U S^-1``; on the weaker non-zero directions either nothing or ``Gamma = Y V`` (absorbed);
  scaled into ``||Lambda||_op <= rho``; the better of the two. Then ``D = 1/2 ||Y||^2 - 1/2
  ||Y V - Gamma||_(k)^2``.

Weak duality makes ``D(Lambda) <= P* <= P(W)``, so the verified gap bounds the distance of the
weights from the global optimum of the problem as given, whatever rounding happened in the
library. The cost grows as ``d0^2 n + dH d0 n + H d^3`` operations of mpmath numbers (pure
Python): a 12 x 40 problem takes about 0.1 s, d = 50 with n = 100 a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._optional import require
from ._reduced import GAP_FLOOR
from ._validation import as_matrix, check_same_samples
from .certificates import check_dual
from .problem import DeepLinearProblem, check_chain
from .results import DualResult

__all__ = ["VerifiedCertificate", "verify"]


@dataclass(frozen=True)
class VerifiedCertificate:
    """Bounds re-evaluated in extended precision on the original data (see :func:`verify`).

    Attributes
    ----------
    primal : float
        ``P(weights)``, rounded to float64 from the exact value.
    dual : float
        ``D(Lambda)`` of the dual point (projected onto the range of X and made feasible).
    gap : float
        ``primal - dual``, computed before rounding: an upper bound on ``P(weights) - P*``.
    relative_gap : float
        ``gap / max(|primal|, GAP_FLOOR * 1/2 ||Y||^2)``, the library's definition.
    digits : int
        Working precision (decimal digits).
    time : float
        Seconds.
    """

    primal: float
    dual: float
    gap: float
    relative_gap: float
    digits: int
    time: float


def verify(problem: DeepLinearProblem, weights: list[np.ndarray], dual: DualResult | np.ndarray,
           *, X: np.ndarray | None = None, Y: np.ndarray | None = None,
           digits: int = 50) -> VerifiedCertificate:
    """Re-evaluate a certificate exactly (to ``digits`` digits) on the original data.

    Parameters
    ----------
    problem : DeepLinearProblem
        Supplies ``hidden`` and ``gamma`` (and ``X``, ``Y`` unless given).
    weights : list of ndarray
        ``[W_1, .., W_H]``, shapes ``(d_i, d_{i-1})``.
    dual : DualResult or ndarray of shape (dH, d0)
        A dual result of ``problem``, or a dual point ``Lambda`` directly.
    X, Y : ndarray, optional
        The original data, shapes ``(d0, n)`` and ``(dH, n)``. Required when the problem was
        built from statistics or Dask arrays (its ``X`` and ``Y`` are then None).
    digits : int
        Decimal digits of the working precision (at least 30).

    Returns
    -------
    VerifiedCertificate

    Notes
    -----
    Needs mpmath (``pip install "duallinear[verify]"``).

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((3, 6)), rng.standard_normal((2, 6)),
    ...                                hidden=(1,), gamma=0.2)
    >>> dual = dl.solve_dual(problem)
    >>> exact = dl.verify(problem, dl.recover_weights(problem, dual), dual)
    >>> bool(exact.relative_gap <= 1e-9)
    True
    """
    mpmath = require("mpmath", "duallinear.verify")
    check_chain(problem)
    weights = problem.check_weights(weights)
    if isinstance(dual, DualResult):
        Lambda = check_dual(problem, dual).Lambda
    else:
        Lambda = as_matrix(dual, "dual", allow_empty=True)
        if Lambda.shape != (problem.dH, problem.d0):
            raise ValueError(f"dual must be a DualResult or a Lambda of shape (dH, d0) = "
                             f"{(problem.dH, problem.d0)}, got {Lambda.shape}")
    X = problem.X if X is None else as_matrix(X, "X")
    Y = problem.Y if Y is None else as_matrix(Y, "Y")
    if X is None or Y is None:
        raise ValueError("X and Y: the problem was built from statistics; pass the original "
                         "data as verify(..., X=X, Y=Y)")
    check_same_samples(X.shape, Y.shape)
    if X.shape[0] != problem.d0 or Y.shape[0] != problem.dH:
        raise ValueError(f"X and Y must have d0 = {problem.d0} and dH = {problem.dH} rows, got "
                         f"{X.shape} and {Y.shape}")
    if isinstance(digits, (bool, np.bool_)) or not isinstance(digits, (int, np.integer)):
        raise TypeError(f"digits must be an integer, got {digits!r}")
    if digits < 30:
        raise ValueError(f"digits must be at least 30, got {digits}")
    t0 = time.perf_counter()
    with mpmath.workdps(int(digits)):
        primal = _primal(mpmath, X, Y, weights, problem.gamma)
        dual_value = _dual(mpmath, X, Y, Lambda, problem.rho, problem.k, problem.rank,
                           int(digits))
        gap = primal - dual_value
        y2 = _frob_sq(mpmath, mpmath.matrix(Y.tolist()))
        denom = max(abs(primal), GAP_FLOOR * y2 / 2)
        rel = gap / denom if denom else (mpmath.mpf(0) if gap == 0 else mpmath.inf)
        out = VerifiedCertificate(primal=float(primal), dual=float(dual_value), gap=float(gap),
                                  relative_gap=float(rel), digits=int(digits),
                                  time=time.perf_counter() - t0)
    return out


def _frob_sq(mp, M) -> object:
    return mp.fsum(M[i, j] ** 2 for i in range(M.rows) for j in range(M.cols))


def _primal(mp, X: np.ndarray, Y: np.ndarray, weights: list[np.ndarray], gamma: float):
    Z = mp.matrix(X.tolist())
    for W in weights:
        Z = mp.matrix(W.tolist()) * Z if W.size else mp.zeros(W.shape[0], Z.cols)
    R = Z - mp.matrix(Y.tolist())
    value = _frob_sq(mp, R) / 2
    H = len(weights)
    if gamma:
        reg = mp.mpf(0)
        for W in weights:
            if not W.size:
                continue
            Wm = mp.matrix(W.tolist())
            if H % 2 == 0:  # ||W||_{S_H}^H = tr((W^T W)^(H/2)): no eigenvalues needed
                G = Wm.T * Wm if Wm.cols <= Wm.rows else Wm * Wm.T
                P = G
                for _ in range(H // 2 - 1):
                    P = P * G
                reg += mp.fsum(P[i, i] for i in range(P.rows))
            else:
                reg += mp.fsum(s ** H for s in _singular_values(mp, Wm))
        value += mp.mpf(gamma) * reg
    return value


def _singular_values(mp, M) -> list:
    """Singular values of ``M`` from the eigenvalues of its smaller Gram matrix."""
    G = M * M.T if M.rows <= M.cols else M.T * M
    return [mp.sqrt(max(w, 0)) for w in mp.eigsy(G, eigvals_only=True)]


def _dual(mp, X: np.ndarray, Y: np.ndarray, Lambda: np.ndarray, rho: float, k: int,
          rank: int, digits: int):
    """The dual value of ``Lambda`` for the exact ``X``: on the ``rank`` leading singular
    directions ``Gamma = Lambda u_j / s_j``; on the weaker non-zero ones (below the library's
    rank cut) either nothing (the dual function fits them) or ``Gamma = A`` (absorbed, its
    share of the ball paid by scaling); the better of the two valid dual points."""
    Xm, Ym, Lm = mp.matrix(X.tolist()), mp.matrix(Y.tolist()), mp.matrix(Lambda.tolist())
    w, Q = mp.eigsy(Xm * Xm.T)
    order = sorted(range(len(w)), key=lambda i: -w[i])
    top = w[order[0]] if order else mp.mpf(0)
    # The column space of X: eigenvalues of X X^T above the working precision's noise.
    nonzero = [i for i in order if top > 0 and w[i] > top * mp.mpf(10) ** (-(digits - 8))]
    y2 = _frob_sq(mp, Ym)
    if not nonzero:
        return y2 / 2
    d0 = Xm.rows
    U = mp.matrix(d0, len(nonzero))
    for c, i in enumerate(nonzero):
        for r in range(d0):
            U[r, c] = Q[r, i]
    s = [mp.sqrt(w[i]) for i in nonzero]
    kept = min(rank, len(nonzero))
    GS = Lm * U  # Gamma S on every direction, before the choice below
    AS = Ym * (Xm.T * U)  # A S
    best = None
    for absorb in ((False, True) if kept < len(nonzero) else (False,)):
        C = mp.matrix(Ym.rows, len(nonzero))  # the dual point's Gamma S
        for c in range(len(nonzero)):
            for r in range(Ym.rows):
                if c < kept:
                    C[r, c] = GS[r, c]
                elif absorb:
                    C[r, c] = AS[r, c]
        norm = max(_singular_values(mp, C)) if C.rows and C.cols else mp.mpf(0)
        scale = min(mp.mpf(1), mp.mpf(rho) / norm) if norm > 0 else mp.mpf(1)
        B = mp.matrix(Ym.rows, len(nonzero))
        for c in range(len(nonzero)):
            for r in range(Ym.rows):
                B[r, c] = (AS[r, c] - scale * C[r, c]) / s[c]  # A - Gamma
        sv2 = sorted((v ** 2 for v in _singular_values(mp, B)), reverse=True)
        value = y2 / 2 - mp.fsum(sv2[:k]) / 2
        best = value if best is None or value > best else best
    return best
