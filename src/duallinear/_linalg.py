"""Dense linear algebra shared by every module: one robust thin SVD, leading triplets, and
spectral updates through the Gram matrix."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

__all__ = ["frobenius", "svd", "svdvals", "svd_driver", "SVDFailure", "LeadingSVD",
           "spectral_scale", "ritz_norm",
           "gram_spectral_change", "higham_gamma", "scaling_slack", "sv_allowance",
           "leading_by_gram", "largest_by_gram", "svd_of_product",
           "top_triplets", "truncation_error", "svd_backward_error", "SVD_BACKWARD"]


class SVDFailure(np.linalg.LinAlgError):
    """Raised only when every SVD driver failed on a finite matrix."""


def svd_driver(Z: np.ndarray, driver: str, compute_uv: bool = True):
    """One call of LAPACK's SVD driver ``driver`` (``"gesdd"`` or ``"gesvd"``) on ``Z``.

    The only place the library calls an SVD driver, so that tests can make a driver fail by
    patching this function. Raises ``numpy.linalg.LinAlgError`` when the driver fails, also
    where scipy rejects NaN entries with a ``ValueError`` (gesdd does); the numerics are
    scipy's ``svd`` unchanged.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    driver : {"gesdd", "gesvd"}
    compute_uv : bool
        False: the singular values only.

    Returns
    -------
    (U, s, Vt) as :func:`svd`, or ``s`` alone when ``compute_uv`` is False.
    """
    try:
        return scipy.linalg.svd(Z, full_matrices=False, compute_uv=compute_uv,
                                lapack_driver=driver, check_finite=False)
    except ValueError as exc:
        if np.all(np.isfinite(Z)):
            raise
        raise np.linalg.LinAlgError(f"{driver}: input with NaN or Inf entries") from exc


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
        return svd_driver(Z, "gesdd")
    except np.linalg.LinAlgError:
        pass
    if not np.all(np.isfinite(Z)):
        raise SVDFailure("SVD of a matrix with NaN or Inf entries")
    try:
        return svd_driver(Z, "gesvd")
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


#: Entries per block of :func:`frobenius` on large matrices.
FROBENIUS_BLOCK = 1 << 16


def frobenius(Z: np.ndarray) -> float:
    """``||Z||_F`` computed on ``Z / max|Z|``: no overflow or underflow of the squares.

    Matrices of more than ``FROBENIUS_BLOCK`` entries are summed a block at a time (numpy's
    pairwise sums within a block, an exactly rounded sum over the blocks): the relative
    error of the square stays within ``FROBENIUS_REL_ERROR`` whatever the size, and no copy
    of ``Z`` is made.
    """
    if not Z.size:
        return 0.0
    scale = max(float(np.max(Z)), -float(np.min(Z)))  # (no |Z| temporary)
    if scale == 0.0 or not np.isfinite(scale):
        return scale + 0.0  # (0, inf or NaN; + 0.0 turns a -0.0 from all-(-0.0) input into 0.0)
    if Z.size <= FROBENIUS_BLOCK:
        W = Z / scale
        return scale * float(np.sqrt(np.vdot(W, W)))
    flat = Z.reshape(-1)  # (a copy only when Z is not contiguous)
    parts = []
    for i in range(0, flat.size, FROBENIUS_BLOCK):
        W = flat[i:i + FROBENIUS_BLOCK] / scale
        np.multiply(W, W, out=W)
        parts.append(float(np.sum(W)))
    return scale * math.sqrt(math.fsum(parts))


def frobenius_sq_error(size: int) -> float:
    """A bound on the relative error of ``frobenius(Z)**2`` for ``Z`` of ``size`` entries.

    Above ``FROBENIUS_BLOCK`` entries: a division and a square per entry, numpy's pairwise
    sum of a block (leaves of 128 entries in 8 running sums, then ``log2(FROBENIUS_BLOCK /
    128) = 9`` levels: at most 16 + 9 additions deep), an exact sum over the blocks and the
    square root: 28 roundings, taken twice. Below, a dot product of ``size`` terms in any
    order: ``size + 4`` roundings, taken twice.
    """
    depth = 28 if size > FROBENIUS_BLOCK else size + 4
    return 2.0 * depth * float(np.finfo(np.float64).eps)


#: ``u = eps / 2``, the unit roundoff of float64.
UNIT_ROUNDOFF = 0.5 * float(np.finfo(np.float64).eps)


def sv_allowance(shape: tuple[int, ...]) -> float:
    """``4 n u`` (``n`` the smaller dimension): the relative error allowed for a singular value
    LAPACK computes (of the largest, for every one of them)."""
    return 4.0 * min(shape) * UNIT_ROUNDOFF


def scaling_slack(shape: tuple[int, ...]) -> float:
    """``(sqrt(n) + 2) u``: the relative rise of ``||Z diag(s)||_op`` that rounding a scaling
    (or a column scaling) of every entry of ``Z`` can cause, plus the rounding of the
    factor (``u ||Z||_F <= sqrt(n) u ||Z||_op``, ``n`` the smaller dimension)."""
    return (math.sqrt(min(shape)) + 2.0) * UNIT_ROUNDOFF


def higham_gamma(n: int) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)`` (``u`` the unit roundoff): the relative error of
    ``n`` roundings, e.g. ``|fl(A B) - A B| <= gamma_l |A| |B|`` for an inner dimension
    ``l``."""
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def svdvals(Z: np.ndarray) -> np.ndarray:
    """Singular values of ``Z`` (non-increasing) with the same driver fallback as :func:`svd`."""
    try:
        return svd_driver(Z, "gesdd", compute_uv=False)
    except np.linalg.LinAlgError:
        return svd(Z)[1]


class LeadingSVD:
    """Leading singular triplets of a sequence of slowly changing matrices.

    Block subspace iteration with a Rayleigh-Ritz step, warm-started from the right Ritz
    vectors of the previous call. A call on ``B`` (shape ``(m, n)``) works on a block of
    ``p`` vectors and asks ``needed(s)`` how many leading triplets matter, given the current
    Ritz values ``s`` (length ``p``, non-increasing). It returns once that count ``c`` is
    below ``p``, the first ``c`` triplets have residuals ``||B v_j - s_j u_j|| <= rtol * s_1``,
    and the count stays ``c`` when every Ritz value is raised by its residual (a true singular
    value lies within that distance). The block grows to ``c + oversample`` whenever it is
    smaller. Past ``max_fraction * min(m, n)`` vectors or ``max_steps`` products it gives up
    and returns None: the caller then takes a full SVD; it also gives up when fewer than
    ``oversample`` vectors would remain beyond the needed ones under that limit, and when the
    residuals shrink by less than a factor 0.3 over five products (no usable spectral gap).
    After three failures in a row it skips the next 10 calls, then 20, 40, .. up to 160.

    Ritz values never exceed the true ones, and a direction the block has not seen can be
    missed; callers must therefore check their final answer with exact quantities (the dual
    solver's certificate uses full singular values).

    Parameters
    ----------
    oversample : int
        Vectors kept beyond the needed count.
    rtol : float
        Residual tolerance relative to the largest Ritz value.
    max_steps : int
        Products with ``B`` (and ``B^T``) allowed per call.
    max_fraction : float
        Largest block, as a fraction of ``min(m, n)``.
    seed : int
        Seed of the random start block (reproducible results).
    values_only : bool
        Settle the needed singular values only: stop once they change by at most
        ``rtol * s_1`` from one product to the next (values converge much faster than
        vectors inside a cluster of equal singular values).
    """

    def __init__(self, oversample: int = 8, rtol: float = 1e-12, max_steps: int = 30,
                 max_fraction: float = 0.25, seed: int = 0, values_only: bool = False):
        self.values_only = values_only
        self.oversample = oversample
        self.rtol = rtol
        self.max_steps = max_steps
        self.max_fraction = max_fraction
        self.rng = np.random.default_rng(seed)
        self.V: np.ndarray | None = None
        self.calls = 0
        self.steps = 0
        self.fallbacks = 0
        self.failures_in_row = 0
        self.skip_until = 0

    def warm_start(self, V: np.ndarray) -> None:
        """Start the next call from the columns of ``V`` (shape ``(n, p)``, orthonormal): right
        singular vectors of a matrix close to the next one."""
        self.V = V

    def _extend(self, V: np.ndarray | None, n: int, p: int) -> np.ndarray:
        fresh = self.rng.standard_normal((n, p - (0 if V is None else V.shape[1])))
        block = fresh if V is None else np.hstack([V, fresh])
        return np.linalg.qr(block)[0]

    def __call__(self, B: np.ndarray, needed, start: int = 1):
        """Leading triplets of ``B``, or None if a full SVD should be used instead.

        Parameters
        ----------
        B : ndarray, shape (m, n)
        needed : callable
            ``needed(s) -> int``, the number of leading triplets that matter.
        start : int
            Needed count to size the first block when there is no warm start.

        Returns
        -------
        (U, s, Vt, c) or None
            ``U`` of shape ``(m, p)``, ``s`` of shape ``(p,)``, ``Vt`` of shape ``(p, n)``;
            the first ``c`` triplets are the needed ones (converged), the rest are not
            guaranteed.
        """
        self.calls += 1
        if self.calls < self.skip_until:
            # Failing in a row (no spectral gap to exploit): back off before trying again.
            self.fallbacks += 1
            return None
        m, n = B.shape
        full = int(self.max_fraction * min(m, n)) >= min(m, n)
        limit = min(int(self.max_fraction * min(m, n)), min(m, n))
        V = self.V if self.V is not None and self.V.shape[0] == n else None
        p = V.shape[1] if V is not None else start + self.oversample
        if p > limit:
            V, p = (V[:, :limit] if V is not None else None), limit
        if start >= limit or p < 1:
            return self._give_up()
        if V is None:
            V = self._extend(None, n, p)
        U = s = previous = None
        worst: list[float] = []
        for _ in range(self.max_steps):
            self.steps += 1
            W = B @ V
            if s is not None and self.values_only:
                c = int(needed(s))
                if previous is not None and c < p and np.all(
                        np.abs(s[:c] - previous[:c]) <= self.rtol * s[0]):
                    self.V = V
                    return U, s, V.T, c
                previous = s
            elif s is not None:
                c = int(needed(s))
                if c >= limit or (c + self.oversample > limit and not full):
                    # Too few vectors beyond the needed ones for subspace iteration to settle
                    # them (unless the block is the whole space: then one step is exact).
                    return self._give_up()
                if c + self.oversample > p < limit:
                    # Keep `oversample` vectors beyond the needed ones (as many as the limit
                    # allows): their gap drives the convergence of the needed triplets.
                    p = min(c + self.oversample, limit)
                    V = self._extend(V, n, p)
                    W = B @ V
                else:
                    res = np.linalg.norm(W - U * s, axis=0)
                    # Each Ritz value lies within its residual of a true singular value: the
                    # count must not change when every value moves up by its residual.
                    if (np.all(res[:c] <= self.rtol * max(s[0], np.finfo(float).tiny))
                            and int(needed(np.sort(s + res)[::-1])) == c):
                        self.V = V[:, : min(p, c + 2 * self.oversample)]
                        self.failures_in_row = 0
                        return U, s, V.T, c
                    # (The needed triplets only: the next one may sit in a cluster without
                    # a gap and never settle, which must not count as slow convergence.)
                    worst.append(float(np.max(res[: max(c, 1)])))
                    if len(worst) > 8 and worst[-1] > 0.3 * worst[-6]:
                        return self._give_up()  # converging too slowly to pay off
            Q = np.linalg.qr(W)[0]
            Ut, s, Vt = svd((B.T @ Q).T)
            U, V = Q @ Ut, Vt.T
        return self._give_up()

    def _give_up(self):
        self.fallbacks += 1
        self.failures_in_row += 1
        if self.failures_in_row >= 3:
            # Skip 10, 20, 40, .. (at most 160) calls after the third failure in a row.
            self.skip_until = self.calls + 1 + min(10 * 2 ** (self.failures_in_row - 3), 160)
        self.V = None
        return None


#: ``gram_spectral_change`` declines when a singular value it would change is below this
#: fraction of the largest: squaring in the Gram matrix costs it about ``eps (s_1 / s_j)``
#: of relative accuracy, 1e-14 at most at this bound.
GRAM_MIN_RATIO = 1e-2


def gram_spectral_change(B: np.ndarray, amount) -> np.ndarray | None:
    """``U diag(amount(s)) V^T`` for ``B = U diag(s) V^T``, from the smaller Gram matrix.

    An eigendecomposition of ``B^T B`` (or ``B B^T``) costs about half a full SVD; the change
    is rebuilt from the eigenvectors of the entries that move, as
    ``B V_c diag(amount / s) V_c^T``. Returns None (use :func:`svd`) when an entry that moves
    has ``s_j < GRAM_MIN_RATIO * s_1``, where the squared values lose too much accuracy, or
    when the eigensolver fails.

    Parameters
    ----------
    B : ndarray, shape (m, n)
    amount : callable
        ``amount(s) -> ndarray`` of the same length as ``s`` (non-increasing singular
        values; the small ones are inaccurate, so ``amount`` must be zero there).

    Returns
    -------
    ndarray of shape (m, n), or None
    """
    m, n = B.shape
    left = m < n
    try:
        w, Q = scipy.linalg.eigh(B @ B.T if left else B.T @ B, check_finite=False,
                                 driver="evd")
    except (np.linalg.LinAlgError, ValueError):
        return None
    w, Q = w[::-1], Q[:, ::-1]
    sv = np.sqrt(np.clip(w, 0.0, None))
    change = np.asarray(amount(sv), dtype=float)
    moving = np.flatnonzero(change)
    if moving.size == 0:
        return np.zeros_like(B)
    if sv[moving].min() < GRAM_MIN_RATIO * sv[0]:
        return None
    Qc = Q[:, moving]
    ratio = change[moving] / sv[moving]
    if left:
        return (Qc * ratio) @ (Qc.T @ B)
    return ((B @ Qc) * ratio) @ Qc.T


def leading_by_gram(B: np.ndarray, k: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``k`` leading singular triplets of ``B`` from the smaller Gram matrix (LAPACK's
    ``syevd``; measured on the refinement's matrices at 200 x 200: 0.55 of a full SVD, where
    ``syevr`` for the k = 40 largest pairs alone took 0.72).

    For a start, not for a bound: the squared values cost about ``eps (s_1 / s_k)`` of
    relative accuracy, so None (use :func:`svd`) when ``s_k < GRAM_MIN_RATIO * s_1``, when
    ``k`` is not below both dimensions, or when the eigensolver fails.

    Parameters
    ----------
    B : ndarray, shape (m, n)
    k : int

    Returns
    -------
    U : ndarray, shape (m, k), s : ndarray, shape (k,), Vt : ndarray, shape (k, n); or None
    """
    m, n = B.shape
    small = min(m, n)
    if not 0 < k < small:
        return None
    left = m <= n
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        G = B @ B.T if left else B.T @ B
    if not np.all(np.isfinite(G)):
        return None  # (overflow in the square)
    try:
        w, Q = scipy.linalg.eigh(G, check_finite=False, driver="evd")
    except (np.linalg.LinAlgError, ValueError):
        return None
    w, Q = w[:-k - 1:-1], Q[:, :-k - 1:-1]
    if not np.all(np.isfinite(w)) or w[-1] <= 0.0 or w[-1] < GRAM_MIN_RATIO ** 2 * w[0]:
        return None
    sv = np.sqrt(w)
    if left:
        return Q, sv, (Q.T @ B) / sv[:, None]
    return (B @ Q) / sv, sv, Q.T


def smaller_gram(Z: np.ndarray) -> np.ndarray | None:
    """``Z Z^T`` or ``Z^T Z``, whichever is smaller; None when it overflows."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        G = Z @ Z.T if Z.shape[0] <= Z.shape[1] else Z.T @ Z
    return G if np.all(np.isfinite(G)) else None


def gram_norm_below(G: np.ndarray, level: float) -> bool:
    """Whether ``||Z||_op < level`` for the ``Z`` whose smaller Gram matrix is ``G``
    (:func:`smaller_gram`): a Cholesky factorisation of ``level^2 I - G`` succeeds exactly
    when that matrix is positive definite (``n^3 / 3`` flops, about a tenth of
    :func:`largest_by_gram` at 200 x 200). A decision, not a bound: the Gram product's
    rounding (``gamma_l ||Z||_F^2``) and the factorisation's (``gamma_(n+1) level^2``) can
    move it where ``||Z||_op`` is within about ``l ||Z||_F^2 / level^2`` eps (relative) of
    ``level``, 1e-11 for a 200 x 200 matrix with its values near the level. For filters."""
    if not G.size:
        return level > 0.0
    M = -G
    M[np.diag_indices_from(M)] += level * level
    _, info = scipy.linalg.lapack.dpotrf(M, lower=1, overwrite_a=1, clean=0)
    return info == 0


def op_norm_bound(Z: np.ndarray) -> float:
    """An upper bound on ``||Z||_op`` for the float matrix ``Z`` (exact arithmetic): LAPACK's
    largest singular value taken within ``4 n u`` of the exact one (relative; ``u`` the unit
    roundoff, ``n = min(Z.shape)``, :func:`sv_allowance`), the allowance of
    :func:`~duallinear._dr.refine.structured_norm`."""
    if not Z.size:
        return 0.0
    return float(svdvals(Z)[0]) * (1.0 + sv_allowance(Z.shape))


def largest_by_gram(Z: np.ndarray, bound: bool = False) -> float:
    """An estimate of ``||Z||_op`` from the largest eigenvalue of the smaller Gram matrix
    (``syevr``, that value only): about 0.2 of a full SVD at 200 x 200, against 0.4 for every
    singular value. Off by about ``min(m, n) eps`` relative (the Gram product's rounding);
    0 for an empty matrix.

    With ``bound``, an upper bound on ``||Z||_op`` (exact arithmetic) instead: the Gram
    matrix ``G`` as computed is within ``gamma_l ||Z||_F^2`` of the exact one in the 2-norm
    (``|fl(Z^T Z) - Z^T Z| <= gamma_l |Z|^T |Z|`` entrywise, ``l`` the inner dimension), and
    the computed eigenvalue is taken to be within ``8 n eps`` (relative, ``n`` the order of
    ``G``) of ``G``'s largest, the allowance :func:`~duallinear._dr.refine.structured_norm`
    makes for LAPACK's singular values. That is about ``l rank(Z) eps / 2`` above the norm:
    2e-12 relative for a 200 x 200 matrix with 160 values near its norm.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    bound : bool
    """
    if not Z.size:
        return 0.0
    small, inner = min(Z.shape), max(Z.shape)
    G = smaller_gram(Z)
    value = math.nan
    if G is not None:
        try:
            value = float(scipy.linalg.eigh(G, check_finite=False, eigvals_only=True,
                                            subset_by_index=[small - 1, small - 1],
                                            driver="evr")[-1])
        except (np.linalg.LinAlgError, ValueError):
            pass
    if not math.isfinite(value) or value < np.finfo(np.float64).tiny:
        # Overflow or underflow in the square, or the eigensolver failed (syevr reports an
        # internal error on a Gram matrix with every eigenvalue equal): LAPACK's largest
        # singular value, with its allowance for a bound.
        return op_norm_bound(Z) if bound else float(svdvals(Z)[0])
    if not bound:
        return math.sqrt(value)
    u = UNIT_ROUNDOFF
    fro_sq = frobenius(Z) ** 2 * (1.0 + frobenius_sq_error(Z.size)) * (1.0 + 4.0 * u)
    if not math.isfinite(fro_sq):
        return op_norm_bound(Z) if bound else float(svdvals(Z)[0])
    square = value * (1.0 + 8.0 * small * u) + higham_gamma(inner) * fro_sq
    return math.sqrt(square) * (1.0 + 4.0 * u)


#: Multiple of ``eps sqrt(max(m, n)) ||X||_F`` taken as the backward error of a float64
#: SVD (with the non-orthogonality of its factors): measured ``||X - U S V^T||_F`` up to
#: 11.5 eps sqrt(max(m, n)) ||X||_F (exactly, in 40 digits) over 200 graded X up to 12 x 40.
SVD_BACKWARD = 32.0


def svd_backward_error(shape: tuple[int, int], x_norm: float) -> float:
    """A bound on ``||X - U diag(s) V^T||_F`` for the float64 SVD of ``X`` of ``shape``
    (``x_norm = ||X||_F``)."""
    return SVD_BACKWARD * np.finfo(np.float64).eps * float(np.sqrt(max(shape))) * x_norm


def truncation_error(Uk: np.ndarray, sv: np.ndarray, Vtk: np.ndarray,
                     B: np.ndarray | None = None,
                     block: tuple[int, int] | None = None) -> float:
    """An upper bound on ``||trunc_k(B) - Uk diag(sv[:k]) Vtk||_F`` (``k`` the columns of
    ``Uk``), for triplets that are only approximately singular: leading ones from a subspace
    iteration (``B`` given: their residuals are computed), or LAPACK's (``B`` None).

    With the residuals ``R = B V - U S`` and ``T = B^T U - V S`` (``S = diag(sv[:k])``) and
    ``sv`` the singular values of ``B``, Wedin's theorem bounds the angles between ``U`` and
    the exact leading left singular vectors by ``||sin Phi||_F <= sqrt(||R||^2 + ||T||^2) /
    delta``, ``delta = sv[k-1] - sv[k]`` (less LAPACK's allowance ``4 n u sv[0]``). Then
    ``trunc_k(B) - U S V^T = (P_k - U U^T) B + U T^T`` with ``||P_k - U U^T||_F = sqrt(2)
    ||sin Phi||_F``. Without a gap (a tie at k: the truncation is not unique) it is ``inf``;
    for ``k`` at least a dimension of ``B`` it is ``||R||_F`` or ``||T||_F`` (then
    ``trunc_k(B) = B``). ``U`` and ``V`` are taken orthonormal (to rounding). Computed
    residuals carry their own rounding; for LAPACK's triplets ``||R||_F, ||T||_F <= ||B - U S
    V^T||_F``, bounded by :func:`svd_backward_error` without a product.

    ``block = (lo, hi)``: positions ``lo..hi`` (0-based, ``lo <= k - 1 < hi``) are a block of
    values tied across k, within which a truncation may turn. The bound is then on the
    distance to the nearest ``P B``, ``P`` the projector on the exact leading ``lo`` left
    vectors plus a ``(k - lo)``-dimensional subspace of the block's. Wedin's theorem at each
    edge of the block (it holds for a reference subspace of any dimension ``>= k``): ``U`` has
    at most ``a = res / (sv[k-1] - sv[hi+1])`` (Frobenius) outside the leading ``hi + 1``
    exact vectors, and its first ``lo`` columns ``U_1`` are within the angles ``b = res_1 /
    (sv[lo-1] - sv[lo])`` of the leading ``lo`` (``res_1`` from their residuals). The other
    columns ``U_2`` (orthogonal to ``U_1``) lie within ``e = sqrt(2) b + a`` of the block, so
    ``P`` = (the leading ``lo``) + (the span of ``U_2`` projected on the block) is within
    ``sqrt(2) b + sqrt(2) e / (1 - e)`` of ``U U^T`` in Frobenius norm. When the block's
    values are too small for the gap below it (a rank below k at rounding level), the columns
    above the block are compared as above and the rest of both matrices is bounded by its
    size: ``||sv[lo:k]|| + sqrt(k - lo) sigma_lo``.

    Parameters
    ----------
    Uk : ndarray, shape (m, k)
    sv : ndarray, shape (min(m, n),), non-increasing
    Vtk : ndarray, shape (k, n)
    B : ndarray, shape (m, n), optional
    block : (int, int), optional
    """
    k = Uk.shape[1]
    if k == 0:
        return 0.0
    u, sk = UNIT_ROUNDOFF, sv[:k]
    shape = (Uk.shape[0], Vtk.shape[1])
    allowance = sv_allowance(shape) * float(sv[0])
    lo = 0 if block is None else block[0]
    if B is None:
        r_norm = t_norm = r_lo = t_lo = svd_backward_error(shape, float(np.sqrt(np.dot(sv, sv))))
    else:
        R = B @ Vtk.T
        R -= Uk * sk
        T = B.T @ Uk
        T -= Vtk.T * sk
        b_norm = frobenius(B)

        def rounded(Z: np.ndarray, cols: int, inner: int) -> float:
            # |fl(B V) - B V| <= gamma_n |B| |V| (Frobenius <= gamma_n ||B||_F ||V||_F), the
            # subtraction one more rounding of each entry.
            scale = math.sqrt(cols) * (b_norm + float(np.sqrt(np.dot(sk[:cols], sk[:cols]))))
            return frobenius(Z) * (1.0 + 4.0 * u) + higham_gamma(inner + 1) * scale

        r_norm, t_norm = rounded(R, k, shape[1]), rounded(T, k, shape[0])
        r_lo, t_lo = rounded(R[:, :lo], lo, shape[1]), rounded(T[:, :lo], lo, shape[0])
    if k >= shape[1]:  # V square: B - U S V^T = R V^T
        return r_norm
    if k >= shape[0]:  # U square: B - U S V^T = U T^T
        return t_norm
    top = float(sv[0]) + allowance
    if block is None:
        delta = float(sv[k - 1] - sv[k]) - allowance
        if not delta > 0.0:
            return math.inf
        turn = math.sqrt(2.0) * math.hypot(r_norm, t_norm) / delta
        return (top * turn + t_norm) * (1.0 + 4.0 * u)
    hi = block[1]
    b = 0.0
    if lo > 0:
        delta_lo = float(sv[lo - 1] - sv[lo]) - allowance
        if not delta_lo > 0.0:
            return math.inf
        b = math.hypot(r_lo, t_lo) / delta_lo
    # Without the gap below the block: the leading lo as above (the untied
    # argument for the first lo columns), and the rest of both matrices bounded by its size:
    # ||P_Z B||_F <= sqrt(k - lo) sigma_lo for any (k - lo)-dimensional Z in the block.
    rest = float(np.sqrt(np.dot(sk[lo:], sk[lo:])))
    best = (math.sqrt(2.0) * top * b + t_lo + rest
            + math.sqrt(k - lo) * (float(sv[lo]) + allowance)) * (1.0 + 8.0 * u)
    if hi + 1 < sv.size or max(shape) > sv.size:
        # (Beyond the last value: the null space of the longer side, at singular value 0.)
        below = float(sv[hi + 1]) if hi + 1 < sv.size else 0.0
        delta_up = float(sv[k - 1]) - below - allowance
        if not delta_up > 0.0:
            return best
        a = math.hypot(r_norm, t_norm) / delta_up
    else:
        a = 0.0
    e = math.sqrt(2.0) * b + a
    if not e < 0.5:
        return best
    turn = math.sqrt(2.0) * b + math.sqrt(2.0) * e / (1.0 - e)
    return min(best, (top * turn + t_norm) * (1.0 + 8.0 * u))


def svd_of_product(L: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of ``L R^T`` from its factors, without forming the product.

    With ``L = Q1 R1`` and ``R = Q2 R2`` (QR), ``L R^T = Q1 (R1 R2^T) Q2^T`` and only the
    ``k x k`` core is decomposed: O((m + n) k^2) instead of an SVD of the ``m x n`` product,
    and the small singular values carry no cancellation error from forming it.

    Parameters
    ----------
    L : ndarray, shape (m, k)
    R : ndarray, shape (n, k)

    Returns
    -------
    P : ndarray, shape (m, p)
    s : ndarray, shape (p,), non-increasing, ``p = min(m, n, k)``
    Qt : ndarray, shape (p, n)
    """
    Q1, R1 = np.linalg.qr(L)
    Q2, R2 = np.linalg.qr(R)
    p, s, qt = svd(R1 @ R2.T)
    return Q1 @ p, s, qt @ Q2.T


#: From this ``min(m, n)`` on, :func:`spectral_scale` estimates instead of computing every
#: singular value (measured on benchmarks/cost_curve.py's A: 2.0 s for all values at
#: d = 2000, where subspace iteration to 1e-13 could not settle the clustered top values
#: within 30 products and fell back to them).
SPECTRAL_SCALE_MIN_DIM = 1000


def spectral_scale(Z: np.ndarray, steps: int = 8, block: int = 8, seed: int = 0) -> float:
    """A scale for ``Z``: ``sigma_1(Z)`` on small matrices, and on large ones the largest Ritz
    value after ``steps`` products with ``Z^T Z`` on a seeded block of ``block`` vectors
    (never above ``sigma_1``; close to it, not equal). For units, not for bounds.

    Parameters
    ----------
    Z : ndarray, shape (m, n), non-empty
    steps, block : int
        Power steps and block size on large matrices.
    seed : int
        Seed of the start block (reproducible).
    """
    if min(Z.shape) < SPECTRAL_SCALE_MIN_DIM:
        return float(svdvals(Z)[0])
    return ritz_norm(Z, np.random.default_rng(seed).standard_normal((Z.shape[1], block)),
                     steps)[0]


def ritz_norm(Z: np.ndarray, V: np.ndarray, steps: int) -> tuple[float, np.ndarray]:
    """The largest Ritz value of ``Z`` after ``steps`` products with ``Z^T Z`` on the block
    ``V``, and the block reached (orthonormal: a warm start for a nearby matrix).

    The value is ``||Z V'||_op`` for an orthonormal ``V'``, so never above ``sigma_1(Z)``
    (up to rounding): an estimate from below, cheap against any decomposition of ``Z``.

    Parameters
    ----------
    Z : ndarray, shape (m, n)
    V : ndarray, shape (n, b)
    steps : int >= 0
    """
    V = np.linalg.qr(V)[0]
    for _ in range(steps):
        ZV = Z @ V
        # (Rescaled between the two products: Z^T Z would overflow from ||Z|| near 1e154
        # and underflow below 1e-162.)
        top = float(np.max(np.abs(ZV), initial=0.0))
        if 0.0 < top < np.inf:
            ZV /= top
        V = np.linalg.qr(Z.T @ ZV)[0]
    return float(svdvals(Z @ V)[0]), V


def top_triplets(B: np.ndarray, k: int, lead: LeadingSVD | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` leading singular triplets of ``B`` (fewer if ``B`` is smaller).

    From ``lead`` when it settles them, otherwise from a full SVD.

    Returns
    -------
    U : ndarray, shape (m, k')
    s : ndarray, shape (k',)
    Vt : ndarray, shape (k', n)
    """
    top = lead(B, lambda sv: k, start=k) if lead is not None else None
    U, s, Vt = svd(B) if top is None else top[:3]
    return U[:, :k], s[:k], Vt[:k]
