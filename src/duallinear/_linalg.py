"""Dense linear algebra shared by every module: one robust thin SVD."""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["svd", "svdvals", "SVDFailure"]


class SVDFailure(np.linalg.LinAlgError):
    """Raised only when every SVD driver failed on a finite matrix."""


def svd(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``Z = U diag(s) Vt`` with a fallback chain of LAPACK drivers.

    The divide-and-conquer driver (``gesdd``) is fast but occasionally reports
    non-convergence on perfectly finite matrices; we then retry with the QR-iteration driver
    (``gesvd``) and finally with an eigendecomposition of the smaller Gram matrix.

    Parameters
    ----------
    Z : ndarray, shape (m, n)

    Returns
    -------
    U : ndarray, shape (m, p)
    s : ndarray, shape (p,), non-increasing, ``p = min(m, n)``
    Vt : ndarray, shape (p, n)
    """
    try:
        return scipy.linalg.svd(Z, full_matrices=False, lapack_driver="gesdd",
                                check_finite=False)
    except np.linalg.LinAlgError:
        pass
    if not np.all(np.isfinite(Z)):
        raise SVDFailure("SVD of a matrix with NaN or Inf entries")
    try:
        return scipy.linalg.svd(Z, full_matrices=False, lapack_driver="gesvd",
                                check_finite=False)
    except np.linalg.LinAlgError:
        pass
    return _svd_by_eigh(Z)


def _svd_by_eigh(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Last resort: rescale, then eigendecompose the smaller Gram matrix and orthonormalise.
    m, n = Z.shape
    scale = np.max(np.abs(Z)) if Z.size else 0.0
    if scale == 0.0:
        p = min(m, n)
        return np.eye(m, p), np.zeros(p), np.eye(p, n)
    Zs = Z / scale
    transpose = m < n
    B = Zs.T if transpose else Zs  # tall: (big, small)
    try:
        w, V = scipy.linalg.eigh(B.T @ B, check_finite=False)
    except np.linalg.LinAlgError as exc:  # pragma: no cover - would need a broken LAPACK
        raise SVDFailure(f"all SVD drivers failed: {exc}") from exc
    order = np.argsort(w)[::-1]
    V = V[:, order]
    s = np.sqrt(np.clip(w[order], 0.0, None))
    BV = B @ V
    Q, R = np.linalg.qr(BV)
    # Signs so that Q's columns match B v_j / s_j.
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    Q = Q * signs
    s = np.abs(np.diag(R))
    order = np.argsort(s)[::-1]
    Q, s, V = Q[:, order], s[order], V[:, order]
    if transpose:
        return V, s * scale, Q.T
    return Q, s * scale, V.T


def svdvals(Z: np.ndarray) -> np.ndarray:
    """Singular values of ``Z`` (non-increasing) with the same driver fallback as :func:`svd`."""
    try:
        return scipy.linalg.svdvals(Z, check_finite=False)
    except np.linalg.LinAlgError:
        return svd(Z)[1]
