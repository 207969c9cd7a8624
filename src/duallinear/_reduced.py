r"""The reduced model shared by the dual solvers, the primal and the recovery.

With the thin SVD ``X = U diag(s) V^T`` and ``A = Y V`` (``docs/math.md``, the reduction),
every quantity the library certifies is a function of ``(A, s, rho, k, residual_sq)``:

* the dual value ``D(Gamma) = 1/2 ||Y||^2 - 1/2 ||A - Gamma||_(k)^2`` at a feasible ``Gamma``,
  evaluated as ``1/2 residual_sq + <Gamma, A - Gamma/2> + 1/2 sum_{j > k} sigma_j(A - Gamma)^2``
  so that no large terms cancel (each is small when the optimum is small);
* the feasibility scaling ``Gamma -> Gamma min(1, rho / ||Gamma diag(s)||_op)``, on an upper
  bound of the norm that allows for LAPACK's error and the scaling's own rounding;
* the objective of the rank-k matrix a truncation of ``A - Gamma`` gives (an upper bound);
* numerical ranks and the relative gap between the two bounds.

Each is written once, here. :class:`Reduced` holds the data in normalised units (``s_max = 1``,
``||A||_op`` about 1), where the solvers run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._linalg import (
    UNIT_ROUNDOFF,
    LeadingSVD,
    frobenius,
    op_norm_bound,
    scaling_slack,
    sv_allowance,
    svd,
    svdvals,
    truncation_error,
)

__all__ = [
    "GAP_FLOOR",
    "PRUNE_LEVELS",
    "Reduced",
    "Rounding",
    "ball_factor",
    "certify",
    "certify_from",
    "dual_value",
    "make_feasible",
    "numerical_rank",
    "op_norm",
    "op_norm_bound",
    "pruned_ranks",
    "relative_gap",
    "scaled_norm_bound",
    "tail_sq",
    "truncation_value",
]

#: Floor of the denominator of a relative gap, as a fraction of the zero network's value
#: ``1/2 ||Y||^2``: an objective below it counts as zero (a fit residual under 1e-4 of
#: ``||Y||``). Objectives evaluated through float64 weights cannot resolve much less on
#: ill-conditioned X: measured 5e-17 of ``1/2 ||Y||^2`` for an exact fit at cond(X) = 7.5e8.
GAP_FLOOR = 1e-8

#: Relative levels below which the singular values of ``M`` are also tried dropped, both in
#: the certificate's upper bound and when ``recover`` prunes the weights: a dual point
#: accurate to rounding leaves values of order ``eps / s_min`` where the optimum has zeros.
PRUNE_LEVELS = (1e-10, 1e-8, 1e-6)


def relative_gap(upper: float, lower: float, zero_value: float) -> float:
    """``(upper - lower) / max(|upper|, GAP_FLOOR * zero_value)``; 0 when both are 0.

    Parameters
    ----------
    upper : float
        A primal objective value (upper bound on the optimum).
    lower : float
        A dual value (lower bound).
    zero_value : float >= 0
        ``1/2 ||Y||_F^2``, the objective of the zero network (sets the scale of the floor).

    Examples
    --------
    >>> relative_gap(1.0 + 1e-12, 1.0, zero_value=5.0)  # doctest: +ELLIPSIS
    1.000...e-12
    """
    for name, value in (("upper", upper), ("lower", lower), ("zero_value", zero_value)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not np.isfinite(value) and name != "upper":
            raise ValueError(f"{name} must be finite, got {value}")
        if np.isnan(value):
            raise ValueError(f"{name} must not be NaN")
    if zero_value < 0:
        raise ValueError(f"zero_value must be >= 0, got {zero_value}")
    if upper == np.inf:
        return float("inf")
    denom = max(abs(upper), GAP_FLOOR * zero_value)
    if denom == 0.0:
        return 0.0 if upper == lower else float("inf")
    return (upper - lower) / denom


def numerical_rank(s: np.ndarray, shape: tuple[int, int]) -> int:
    """Singular values above ``s_max * max(shape) * eps`` (numpy's ``matrix_rank`` rule)."""
    if s.size == 0 or s[0] <= 0.0:
        return 0
    return int(np.sum(s > s[0] * max(shape) * np.finfo(np.float64).eps))


def pruned_ranks(m: np.ndarray) -> set[int]:
    """The ranks left when the values of ``m`` below each of ``PRUNE_LEVELS`` are dropped."""
    if not m.size or m[0] <= 0:
        return set()
    return {int(np.sum(m > m[0] * level)) for level in PRUNE_LEVELS}


def op_norm(Z: np.ndarray) -> float:
    """Largest singular value (0 for an empty matrix)."""
    return float(svdvals(Z)[0]) if Z.size else 0.0


def make_feasible(Gamma: np.ndarray, s: np.ndarray, rho: float, norm: float | None = None
                  ) -> np.ndarray:
    """Scale ``Gamma`` into ``{||Gamma diag(s)||_op <= rho}`` (in exact arithmetic, for the
    float matrix returned); ``norm``: an upper bound on ``||Gamma diag(s)||_op`` known to the
    caller (else :func:`scaled_norm_bound`).

    The scaling rounds every entry (relative ``u``), which can raise the norm by
    ``u ||Gamma diag(s)||_F <= sqrt(n) u ||Gamma diag(s)||_op``: the factor is lowered by
    that much and by its own rounding, so that the matrix returned is inside the ball."""
    norm = scaled_norm_bound(Gamma, s) if norm is None else norm
    if norm <= rho:
        return Gamma
    if rho == 0.0:
        return np.zeros_like(Gamma)
    return Gamma * ball_factor(rho, norm, Gamma.shape)


def ball_factor(rho: float, norm: float, shape: tuple[int, ...]) -> float:
    """The factor that scales a float matrix of ``shape`` whose ``||. diag(s)||_op`` is at
    most ``norm`` (``> rho``) into the ball of radius ``rho``, rounding of the product
    included: ``rho / (norm (1 + (sqrt(n) + 2) u))``, ``n`` the smaller dimension."""
    return rho / (norm * (1.0 + scaling_slack(shape)))


def scaled_norm_bound(Gamma: np.ndarray, s: np.ndarray) -> float:
    """An upper bound on ``||Gamma diag(s)||_op`` in exact arithmetic: :func:`op_norm_bound`
    of the product as formed, plus the product's rounding (``u`` per entry: at most
    ``sqrt(n) u`` of the norm, ``n`` the smaller dimension)."""
    if not Gamma.size:
        return 0.0
    return op_norm_bound(Gamma * s) * (1.0 + scaling_slack(Gamma.shape))


#: :meth:`Reduced.rounding` bounds the gap's rounding terms from LAPACK's triplets instead of
#: a refined point's when the latter's exceed this multiple of its budget.
REFINED_ROUNDING = 10.0

#: From this many entries on, ``Gamma`` is remembered by a digest rather than a copy, and
#: :func:`dual_value` works a block of rows at a time (no iterate-sized temporary).
LARGE_ENTRIES = 1 << 18


def _token(Gamma: np.ndarray) -> np.ndarray | bytes:
    """What :meth:`Reduced.remember` keeps of ``Gamma``: a copy, or for large matrices a
    cryptographic digest of its shape and bytes (equal digests: equal matrices)."""
    if Gamma.size < LARGE_ENTRIES:
        return np.array(Gamma, copy=True)
    digest = hashlib.blake2b(repr((Gamma.shape, Gamma.dtype.str)).encode(), digest_size=32)
    digest.update(np.ascontiguousarray(Gamma).data)
    return digest.digest()


def _same(token: np.ndarray | bytes, Gamma: np.ndarray) -> bool:
    if isinstance(token, bytes):
        return Gamma.size >= LARGE_ENTRIES and token == _token(Gamma)
    return np.array_equal(token, Gamma)


def dual_value(A: np.ndarray, Gamma: np.ndarray, residual_sq: float, tail_sq: float) -> float:
    """``D(Gamma)`` without cancellation, given ``tail_sq = sum_{j > k} sigma_j(A - Gamma)^2``.

    ``A`` and ``Gamma`` may be matrices or, in a common singular basis, vectors.
    """
    if Gamma.ndim != 2 or Gamma.size < LARGE_ENTRIES:
        inner = float(np.vdot(Gamma, A - 0.5 * Gamma))
    else:
        rows = max(1, LARGE_ENTRIES // Gamma.shape[1])
        inner = math.fsum(
            float(np.vdot(Gamma[i:i + rows], A[i:i + rows] - 0.5 * Gamma[i:i + rows]))
            for i in range(0, Gamma.shape[0], rows))
    return 0.5 * residual_sq + inner + 0.5 * tail_sq


def tail_sq(sv: np.ndarray, k: int) -> float:
    """``sum_{j > k} sv_j^2`` for non-increasing ``sv``."""
    return float(np.dot(sv[k:], sv[k:]))


def truncation_value(A: np.ndarray, Uk: np.ndarray, sk: np.ndarray, Vtk: np.ndarray,
                     s: np.ndarray, rho: float, residual_sq: float) -> float:
    """Objective of ``N = Uk diag(sk) Vtk`` in reduced form (any such triplets: a valid upper
    bound), or of ``N`` with the smallest singular values of ``M = N diag(s)^-1`` dropped
    (:data:`PRUNE_LEVELS`), if lower.

    The reduced objective is ``1/2 ||N - A||^2 + 1/2 residual_sq + rho ||N diag(s)^-1||_*``.
    With ill-conditioned X a dual point accurate to rounding leaves values of ``M`` of order
    ``eps / s_min`` where the optimum has zeros, and their nuclear norm alone can exceed
    ``tol`` (found by the fuzzer: cond(X) = 4.5e6, gap 6e-10 unpruned, -5e-16 pruned).
    """
    Rk = sk[:, None] * Vtk
    upper = 0.5 * _fit_sq((Uk, Rk), None, A) + 0.5 * residual_sq
    if rho == 0.0 or not Rk.size:
        return upper
    Z, mu, Wt = svd(Rk / s)  # M = (Uk Z) diag(mu) Wt
    nuclear = float(np.sum(mu))
    best = upper + (rho * nuclear if nuclear else 0.0)  # (rho may be inf: zero network)
    for rank in sorted(pruned_ranks(mu) - {mu.size}, reverse=True):
        N = ((Uk @ Z[:, :rank]) * mu[:rank]) @ (Wt[:rank] * s)
        value = (0.5 * float(np.sum((N - A) ** 2)) + 0.5 * residual_sq
                 + rho * float(np.sum(mu[:rank])))
        best = min(best, value)
    return best


def certify(A: np.ndarray, Gamma: np.ndarray, s: np.ndarray, rho: float, k: int,
            residual_sq: float) -> tuple[float, float]:
    """Dual value at a feasible ``Gamma`` and the objective of ``N = trunc_k(A - Gamma)``.

    One SVD of ``A - Gamma`` serves both; the nuclear norm of ``N diag(s)^-1`` comes from the
    ``k x r`` factor ``diag(sigma_k) V_k^T diag(s)^-1`` (N has rank k).
    """
    if A.size == 0:
        return 0.5 * residual_sq, 0.5 * residual_sq
    return certify_from(A, Gamma, svd(A - Gamma), s, rho, k, residual_sq)


def certify_from(A: np.ndarray, Gamma: np.ndarray,
                 factors: tuple[np.ndarray, np.ndarray, np.ndarray], s: np.ndarray,
                 rho: float, k: int, residual_sq: float) -> tuple[float, float]:
    """:func:`certify` given ``factors``, the thin SVD of ``A - Gamma``."""
    U, sv, Vt = factors
    lower = dual_value(A, Gamma, residual_sq, tail_sq(sv, k))
    return lower, truncation_value(A, U[:, :k], sv[:k], Vt[:k], s, rho, residual_sq)


@dataclass(frozen=True)
class Rounding:
    """Terms of :meth:`Reduced.rounding` (normalised units): ``first``, the first-order shift
    of both bounds; ``dual_second`` and ``primal_second``, what remains of it in the gap of a
    pair; ``M``, the dual point's map ``trunc_k(A - Gamma) diag(s)^-1`` (``dH x r``) as two
    factors ``(L, R)`` with ``M = L @ R`` (rank k: never formed), or None."""

    first: float
    dual_second: float
    primal_second: float
    M: tuple[np.ndarray, np.ndarray] | None


@dataclass(frozen=True)
class Reduced:
    """Reduced data in normalised units: ``A / a``, ``s / b``, ``rho / (a b)``, with
    ``(a, b) = problem.scales`` (so that ``s_max = 1`` and ``||A||_op`` is about 1).

    Values scale by ``a^2``, ``Gamma`` by ``a``, and the layer weights by ``(a / b)^(1/H)``.
    """

    A: np.ndarray  # (dH, r)
    s: np.ndarray  # (r,)
    rho: float
    gamma: float
    k: int
    residual_sq: float
    zero_value: float
    a: float
    b: float
    #: ``problem.rounding / b``: how far X may be from the matrix the reduction is exact for.
    eps_x: float = 0.0
    #: Largest dropped singular value of X (normalised; 0 when none).
    s_next: float = 0.0
    #: ``problem.dropped_energy / a``.
    drop_energy: float = 0.0
    #: ``problem.dropped_load / (a b)``.
    drop_load: float = 0.0
    #: ``problem.residual_error / a^2``: how far ``1/2 residual_sq`` may be off, a shift of
    #: both bounds alike (it cancels in their gap).
    residual_err: float = 0.0
    #: The last thin SVD of ``A - Gamma`` taken, with its ``Gamma`` (a copy): the
    #: certificate at a point and the rounding bound there share one decomposition.
    _last: list = field(default_factory=list, init=False, compare=False, repr=False)

    @classmethod
    def of(cls, problem: Any) -> Reduced:
        """From a :class:`~duallinear.DeepLinearProblem` (which imports this module, hence
        not named in the annotation)."""
        a, b = problem.scales
        # Divided in turn and squared after scaling: products and squares of the user's
        # scales can leave the range of float64 where the normalised values do not.
        return cls(A=problem.A / a, s=problem.s / b, rho=problem.rho / a / b,
                   gamma=problem.gamma / a / b, k=problem.k,
                   residual_sq=(problem.residual / a) ** 2,
                   zero_value=0.5 * (problem.y_norm / a) ** 2, a=a, b=b,
                   eps_x=problem.rounding / b,
                   s_next=(float(problem.dropped_singular_values[0]) / b
                           if problem.dropped_singular_values.size else 0.0),
                   drop_energy=problem.dropped_energy / a,
                   drop_load=problem.dropped_load / a / b,
                   residual_err=problem.residual_error / a / a)

    def gap(self, upper: float, lower: float) -> float:
        """:func:`relative_gap` in these units."""
        return relative_gap(upper, lower, self.zero_value)

    def certify(self, Gamma: np.ndarray, norm: float | None = None,
                basis: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, float, float]:
        """Feasible version of ``Gamma``, its dual value and the recovered primal value
        (``norm``: an upper bound on ``||Gamma diag(s)||_op`` if the caller has one).

        ``basis``: orthonormal ``(left, right)`` (``dH x k``, ``r x k``) believed to span the
        leading singular subspaces of ``A - Gamma`` (a refined rank-k point's). The truncation
        is then taken in them (the SVD of ``left^T (A - Gamma) right``) with LAPACK's values
        of ``A - Gamma`` (no vectors): about half a full SVD. The lower bound is exact as
        always; the upper bound is the objective of the rank-k matrix so built, valid
        whatever the basis, and :meth:`rounding` bounds its distance from the exact
        truncation through its residuals, as for :meth:`certify_leading`."""
        Gamma = make_feasible(Gamma, self.s, self.rho, norm)
        if basis is not None and self.A.size and 0 < self.k < min(self.A.shape):
            left, right = basis
            B = self.A - Gamma
            Uc, _, Vct = svd(left.T @ B @ right)
            sv = svdvals(B)
            del B
            return self._certify_triplets(Gamma, (left @ Uc, sv[:self.k], Vct @ right.T), sv,
                                          refine=True)
        if self.A.size == 0:
            lower = upper = 0.5 * self.residual_sq
        else:
            lower, upper = certify_from(self.A, Gamma, self.factors(Gamma), self.s, self.rho,
                                        self.k, self.residual_sq)
        # The zero network is always feasible for the primal: never report worse than it.
        return Gamma, lower, min(upper, self.zero_value)

    def factors(self, Gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The thin SVD of ``A - Gamma``, reused when it is the last one taken.

        A kept decomposition may hold only the k leading triplets (with every singular value):
        :meth:`certify_leading` keeps what its leading triplets gave."""
        if self.knows(Gamma):
            return self._last[1]
        return self.remember(Gamma, svd(self.A - Gamma))

    def knows(self, Gamma: np.ndarray) -> bool:
        """Whether the thin SVD of ``A - Gamma`` is the one kept."""
        return bool(self._last) and _same(self._last[0], Gamma)

    def remember(self, Gamma: np.ndarray,
                 factors: tuple[np.ndarray, np.ndarray, np.ndarray], refine: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keep ``factors`` (the thin SVD of ``A - Gamma``, known to a route) for reuse;
        ``refine``: the triplets came from a refined point's subspaces, and :meth:`rounding`
        may take LAPACK's instead."""
        self._last[:] = [_token(Gamma), factors, refine]
        return factors

    def certify_leading(self, Gamma: np.ndarray, lead: LeadingSVD, norm: float | None = None
                        ) -> tuple[np.ndarray, float, float]:
        """:meth:`certify` with the truncation taken from leading triplets.

        The feasibility scaling and the dual value use every singular value (LAPACK, no
        vectors), so the lower bound is exact; the upper bound is the objective of the rank-k
        matrix built from the leading vectors and the values, valid whatever their accuracy
        (:meth:`rounding` bounds its distance from the exact truncation).
        """
        Gamma = make_feasible(Gamma, self.s, self.rho, norm)
        B = self.A - Gamma
        top = lead(B, lambda sv: self.k, start=self.k)
        if top is None:
            # A full SVD after all: it gives the values too, and stays at hand for the
            # rounding bound at this point (one decomposition instead of three).
            U, sv, Vt = self.remember(Gamma, svd(B))
            triplets = U[:, :self.k], sv[:self.k], Vt[:self.k]
            return self._certify_triplets(Gamma, triplets, sv, remember=False)
        sv = svdvals(B)
        del B  # (before the values: one iterate-sized array fewer at the peak)
        return self._certify_triplets(Gamma, (top[0][:, :self.k], sv[:self.k],
                                              top[2][:self.k]), sv)

    def _certify_triplets(self, Gamma: np.ndarray,
                          triplets: tuple[np.ndarray, np.ndarray, np.ndarray], sv: np.ndarray,
                          remember: bool = True, refine: bool = False
                          ) -> tuple[np.ndarray, float, float]:
        """The certificate at the feasible ``Gamma`` from every singular value ``sv`` of
        ``A - Gamma`` (LAPACK's) and k triplets of a rank-k matrix near its truncation
        (leading vectors with LAPACK's values, not Ritz values: the rank-k matrix of the
        upper bound is then the one the rounding bound sees, kept with every value, which
        bounds how far that matrix is from the exact truncation)."""
        if remember:
            self.remember(Gamma, (triplets[0], sv, triplets[2]), refine)
        lower = dual_value(self.A, Gamma, self.residual_sq, tail_sq(sv, self.k))
        upper = truncation_value(self.A, *triplets, self.s, self.rho, self.residual_sq)
        return Gamma, lower, min(upper, self.zero_value)

    def estimate(self, Gamma: np.ndarray, lead: LeadingSVD, lead_norm: LeadingSVD
                 ) -> tuple[np.ndarray, float, float]:
        """Cheap stand-in for :meth:`certify` from leading triplets only (not a certificate)."""
        top = lead_norm(Gamma * self.s, lambda sv: 1)
        norm = top[1][0] if top is not None else float(svdvals(Gamma * self.s)[0])
        if norm > self.rho:
            Gamma = Gamma * (self.rho / norm)
        B = self.A - Gamma
        top = lead(B, lambda sv: self.k, start=self.k)
        if top is None:
            return self.certify(Gamma)
        U, sv, Vt, _ = top
        k = self.k
        tail = max(float(np.vdot(B, B)) - float(np.dot(sv[:k], sv[:k])), 0.0)
        lower = dual_value(self.A, Gamma, self.residual_sq, tail)
        upper = truncation_value(self.A, U[:, :k], sv[:k], Vt[:k], self.s, self.rho,
                                 self.residual_sq)
        return Gamma, lower, min(upper, self.zero_value)

    def zero_is_optimal(self, partial: bool = False) -> bool:
        """``||A diag(s)||_op <= rho``: then ``Gamma = A`` is feasible and ``D(A) = P(0)``.

        With ``partial``, a few products first: a Ritz value never exceeds the largest
        singular value, so one above ``rho`` settles the question without a full SVD.
        """
        if self.A.size == 0:
            return True
        AS = self.A * self.s
        # Free lower bounds on ||AS||_op first: its largest column and row norms (compared
        # unsquared: rho may be huge).
        if np.sqrt(max(float(np.max(np.einsum("ij,ij->j", AS, AS))),
                       float(np.max(np.einsum("ij,ij->i", AS, AS))))) > self.rho:
            return False
        if partial:
            top = LeadingSVD(rtol=1e-6, values_only=True, max_steps=10)(AS, lambda sv: 1)
            if top is not None and top[1][0] > self.rho:
                return False
        return float(svdvals(AS)[0]) <= self.rho

    def rounding(self, Gamma: np.ndarray, upper: float = 0.0, budget: float = 0.0
                 ) -> Rounding:
        """How rounding in the reduction of X moves the certificate at ``Gamma`` (feasible):
        :meth:`_rounding_x`, with the error of the residual (``residual_err``) added to the
        first-order shift of both bounds."""
        out = self._rounding_x(Gamma, upper, budget)
        if self.residual_err == 0.0:
            return out
        return replace(out, first=out.first + self.residual_err)

    def _rounding_x(self, Gamma: np.ndarray, upper: float, budget: float) -> Rounding:
        """How rounding in the reduction of X moves the certificate at ``Gamma`` (feasible).

        The reduced data is exact for a matrix within ``eps_x`` of X (Frobenius). Moving X
        by ``Delta`` shifts the objective of a fixed map M by ``<M^T R, Delta>`` at first
        order (``R = M X - Y``), and the dual value at Gamma by the same amount for the M its
        truncation gives: the shift cancels in the gap of the pair and only the terms of
        second order remain there, while each bound alone must allow for the first order
        (``docs/math.md``, rounding). Every term is ``inf`` when the smallest kept singular
        value of X is not resolved (within a few ``eps_x`` of the dropped ones). When bounds
        from norms alone (``upper``: the certified upper bound there) already fit in
        ``budget``, they are returned without a decomposition (``M`` is then None), unless
        the decomposition at ``Gamma`` is already at hand (:meth:`factors`).
        """
        eps, s, A = self.eps_x, self.s, self.A
        if eps == 0.0 or not s.size:
            return Rounding(0.0, 0.0, 0.0, (np.zeros((A.shape[0], 0)), np.zeros((0, s.size))))
        gap = float(s[-1]) - self.s_next - eps
        known = self.knows(Gamma)  # (once: for large Gamma a digest of all of it)
        if budget > 0.0 and gap > 2.0 * eps and not known:
            # Bounds from norms alone first (no decomposition): with ||N||_F <= ||A - Gamma||_F,
            # ||M|| <= ||A - Gamma||_F / s_r, ||M X - Y||_F <= sqrt(2 upper), no cancellation.
            B = A - Gamma
            top = float(np.sqrt(np.vdot(B, B)))
            m = top / float(s[-1])
            first = m * float(np.sqrt(2.0 * max(upper, 0.0))) * eps
            kappa, _ = _basis_sensitivity(A, Gamma, s, self.s_next, eps, float(np.sqrt(
                self.residual_sq)))
            second = 2.0 * top * kappa + 0.5 * kappa**2 + self._dropped_cost(top)
            if first + second + 0.5 * (m * eps) ** 2 <= budget:
                return Rounding(first, second, 0.5 * (m * eps) ** 2, None)
        refine = known and self._last[2]
        U, sv, Vt = self._last[1] if known else svd(A - Gamma)
        self._last.clear()  # the last use: release the decomposition
        out = self._rounding_at(Gamma, U, sv, Vt, gap)
        if (refine and budget > 0.0
                and out.dual_second + out.primal_second > REFINED_ROUNDING * budget):
            # Triplets from a refined point's subspaces carry its stationarity residual, which
            # the distance to the exact truncation (Wedin) turns into a larger bound than
            # LAPACK's triplets give (measured on cond(X) = 1e7: 1.4e-10 relative more, on
            # Gaussian X 1e-14..1e-13): where that counts, the bound LAPACK's give.
            out = self._rounding_at(Gamma, *svd(A - Gamma), gap)
        return out

    def _rounding_at(self, Gamma: np.ndarray, U: np.ndarray, sv: np.ndarray, Vt: np.ndarray,
                     gap: float) -> Rounding:
        """:meth:`_rounding_x` from a decomposition of ``A - Gamma`` (every singular value
        ``sv``; ``U``, ``Vt`` all or the k leading triplets) and the resolved gap of X."""
        eps, s, A, k = self.eps_x, self.s, self.A, self.k
        Rk = sv[:k, None] * Vt[:k]
        # N = U_k Rk and M = N diag(s)^-1 (the end-to-end map in the basis of X), factored.
        M = (U[:, :k], Rk / s)
        # ||M||_op = ||Rk diag(s)^-1||_op (U_k has orthonormal columns); sv_1 / s for whitened X.
        m = float(sv[0]) / float(s[0]) if s[0] == s[-1] and k else op_norm(M[1])
        fit = float(np.sqrt(_fit_sq(M, s, A) + self.residual_sq))
        # The triplets are those of a nearby matrix (LAPACK's to rounding, leading ones from a
        # subspace iteration to its tolerance): the dual value's shift is that of the exact
        # truncation, within e_n of N in Frobenius norm (Wedin), e_n / s_r of M. With a tie
        # across k (the block below) the truncation may turn within the block: e_n is then
        # the distance to the nearest such truncation (Wedin at both edges of the block).
        # (Residuals computed only for kept leading triplets: LAPACK's are bounded a priori.)
        leading = U.shape[1] < min(A.shape)
        allow = sv_allowance(A.shape)
        # Vector-free bounds for the exact truncation N_x: ||M_x|| <= sigma_1 / s_r and
        # ||N_x - A||_F = ||Gamma + (B - N_x)||_F <= ||Gamma||_F + sqrt(tail).
        m_free = float(sv[0]) / float(s[-1]) * (1.0 + allow)
        fit_free = math.hypot(frobenius(Gamma) + math.sqrt(tail_sq(sv, k)),
                              math.sqrt(self.residual_sq)) * (1.0 + 8.0 * UNIT_ROUNDOFF)

        def shifts(block: tuple[int, int] | None = None) -> tuple[float, float]:
            """``first`` (|<M^T R, Delta>| <= ||M||_2 ||R||_F ||Delta||_F, for M and for the
            exact truncation's map) and what the pair with M leaves uncancelled,
            ``||M_x^T R_x - M^T R||_F <= ||M_x - M|| ||R_x|| + ||M|| ||R_x - R||``, times eps,
            for ``e_n`` the triplets' distance from the truncation (turning in ``block``)."""
            e_n = truncation_error(U[:, :k], sv, Vt[:k], A - Gamma if leading else None, block)
            if not math.isfinite(e_n):
                # No gap to apply Wedin at: ||N_x - N||_F <= ||N_x||_F + ||N||_F <= 2 ||B||_F.
                e_n = 2.0 * float(np.sqrt(np.dot(sv, sv))) * (1.0 + allow)
            e_m = e_n / float(s[-1])
            m_x, fit_x = min(m + e_m, m_free), min(fit + e_n, fit_free)
            return max(m * fit, m_x * fit_x) * eps, (e_m * fit_x + m * e_n) * eps

        primal_second = 0.5 * (m * eps) ** 2  # 1/2 ||M Delta||^2
        if gap <= 2.0 * eps:
            return Rounding(shifts()[0], float("inf"), primal_second, M)
        tau = eps / gap
        kappa, coef = _basis_sensitivity(A, Gamma, s, self.s_next, eps, float(np.sqrt(
            self.residual_sq)))
        top = float(np.sqrt(np.dot(sv[:k], sv[:k])))
        drop = self._dropped_cost(top)
        if k >= sv.size:  # ||.||_(k) is the Frobenius norm: a quadratic, smooth
            first, turn = shifts()
            return Rounding(first, top * kappa * tau + 0.5 * kappa**2 + drop + turn,
                            primal_second, M)
        # The block of singular values of A - Gamma within 2 kappa of sigma_k: a tie there
        # (usual at a dual optimum) lets the truncation turn within the block, so the first
        # order cancels only outside it.
        link = 4.0 * kappa + 4.0 * np.finfo(np.float64).eps * float(sv[0])
        lo, hi = k - 1, k - 1  # the chain of values, each within `link` of the next
        while lo > 0 and sv[lo - 1] - sv[lo] <= link:
            lo -= 1
        while hi + 1 < sv.size and sv[hi] - sv[hi + 1] <= link:
            hi += 1
        block = np.zeros(sv.size, dtype=bool)
        block[lo:hi + 1] = True
        if hi >= k:
            # Tied across k: the truncation can turn within the block, against the values
            # on either side of it.
            edges = ([float(sv[lo - 1] - sv[lo])] if lo > 0 else []) + (
                [float(sv[hi] - sv[hi + 1])] if hi + 1 < sv.size else [])
        else:
            # Not tied across k: ||.||_(k)^2 is smooth while the k leading values stay apart
            # from the rest, and only pairs across k carry curvature beyond 1 (a pair within
            # the leading k: (2 sigma_i - 2 sigma_j) / (sigma_i - sigma_j) = 2, however close).
            edges = [float(sv[k - 1] - sv[k])]
        split = min(edges) if edges else np.inf
        # Tied across k: the distance to the nearest truncation that turns in the block.
        first, turn = shifts((lo, hi) if hi >= k else None)
        if kappa >= 0.25 * split:  # a change beyond the gap around the block: no cancellation
            return Rounding(first, 2.0 * top * kappa + 0.5 * kappa**2 + drop + turn,
                            primal_second, M)
        curvature = 1.0 + 4.0 * float(sv[0]) / split if np.isfinite(split) else 1.0
        dual_second = top * kappa * tau + 0.5 * curvature * kappa**2 + drop + turn
        if block[k:].any():  # tied across k
            if Vt.shape[0] <= hi:  # (kept from leading triplets: the block needs all of it)
                Vt = svd(A - Gamma)[2]
            weight = np.sqrt(np.einsum("ij,ij->j", Vt[block], Vt[block]))
            kappa_b = min(kappa, 2.0 * eps * float(np.sqrt(np.sum((weight * coef) ** 2))))
            dual_second += 2.0 * float(sv[k - 1]) * np.sqrt(block.sum()) * kappa_b
        return Rounding(first, dual_second, primal_second, M)

    def _dropped_cost(self, top: float) -> float:
        """What the directions below the rank cut can take from the dual value: left free
        (``Gamma = 0`` there, the dual function fits them) or absorbed (``Gamma = A`` there, at
        a cost ``||A_2 S_2|| <= drop_load`` in the ball, paid by shrinking Gamma by
        ``alpha``: by concavity that costs at most ``(1 - alpha) (D(Gamma) - D(0))``, and
        ``0 <= D(0) <= D(Gamma) <= 1/2 ||Y||^2``). The cheaper of the two."""
        e = self.drop_energy
        if e == 0.0:
            return 0.0
        free = top * e + 0.5 * e * e
        load = self.drop_load
        shrink = load / (self.rho + load) if self.rho > 0 else 1.0
        absorbed = shrink * self.zero_value + top * shrink * e + 0.5 * (shrink * e) ** 2
        return min(free, absorbed)

    def weights_rounding(self, rounding: Rounding, M: tuple[np.ndarray, np.ndarray],
                         outside: float = 0.0, norm: float | None = None
                         ) -> tuple[float, float]:
        """For weights whose product has the reduced form ``M = L @ R`` (``dH x r``, the map on
        the basis ``U`` of X, given as its factors ``(L, R)``) and a part of norm ``outside``
        off that basis (normalised units): the shift of their objective (its own margin), and
        what the pair with the dual point of ``rounding`` adds to the gap: second order, plus
        the first-order terms that do not cancel because ``M`` differs from the dual point's
        map. ``norm``: ``||M||_op`` when the caller has it from a factorisation. Products of
        the factors are formed a block of rows at a time."""
        eps = self.eps_x
        if eps == 0.0:
            return self.residual_err, 0.0
        L, R = M
        m = (op_norm(L @ R) if norm is None else norm) + outside
        fit = float(np.sqrt(_fit_sq(M, self.s, self.A) + self.residual_sq))
        own = m * fit * eps + 0.5 * (m * eps) ** 2
        Mhat = rounding.M
        if Mhat is None or Mhat[1].shape[1] != R.shape[1] or Mhat[0].shape[0] != L.shape[0]:
            # Not at hand (bounded from norms): the two first-order shifts, uncancelled
            # (the residual's error is common to both: it cancels).
            mismatch = own + rounding.first - self.residual_err
        else:
            # ||M^T R - Mhat^T Rhat||_F, split into the row space of X and its complement;
            # ||M - Mhat||_F bounds the operator norm (no decomposition).
            inner, d_sq = _mismatch(M, Mhat, self.s, self.A)
            outer = (float(np.sqrt(d_sq)) + outside) * float(np.sqrt(self.residual_sq))
            mismatch = float(np.sqrt(inner**2 + outer**2)) * eps
        return (own + self.residual_err,
                rounding.dual_second + 0.5 * (m * eps) ** 2 + mismatch)


#: Row blocks are at least ``LARGE_ENTRIES`` entries and at most this many per matrix: the
#: temporaries stay an eighth of the matrix, and the products stay large enough for BLAS.
ROW_BLOCKS = 8


def _row_blocks(rows: int, cols: int) -> range:
    """Starts of the row blocks of a ``rows x cols`` matrix (one block when it is small)."""
    step = max(LARGE_ENTRIES // max(cols, 1), -(-rows // ROW_BLOCKS), 1)
    return range(0, rows, step)


def _sum_sq_by_rows(shape: tuple[int, int], block: Callable[[slice], np.ndarray]) -> float:
    """``sum ||block(rows)||_F^2`` over the row blocks of a matrix of ``shape`` (exactly
    rounded sum of the blocks' values): a product and its residual without a temporary of
    the full size."""
    starts = _row_blocks(*shape)
    step = starts.step
    return math.fsum(float(np.vdot(B, B)) for B in (block(slice(i, i + step)) for i in starts))


def _fit_sq(M: tuple[np.ndarray, np.ndarray], s: np.ndarray | None, A: np.ndarray) -> float:
    """``||L R diag(s) - A||_F^2`` for ``M = (L, R)`` (``s`` None: no ``diag(s)``), a block of
    rows at a time."""
    L, R = M
    RS = R if s is None else R * s

    def block(rows: slice) -> np.ndarray:
        B = L[rows] @ RS
        B -= A[rows]
        return B

    return _sum_sq_by_rows(A.shape, block)


def product_frobenius(L: np.ndarray, R: np.ndarray) -> float:
    """``||L @ R||_F``, a block of rows at a time."""
    return math.sqrt(_sum_sq_by_rows((L.shape[0], R.shape[1]), lambda rows: L[rows] @ R))


def _mismatch(M: tuple[np.ndarray, np.ndarray], Mhat: tuple[np.ndarray, np.ndarray],
              s: np.ndarray, A: np.ndarray) -> tuple[float, float]:
    """An upper bound on ``||M^T (M diag(s) - A) - Mhat^T (Mhat diag(s) - A)||_F`` and
    ``||M - Mhat||_F^2``, for factored ``M = L R`` and ``Mhat``.

    ``M^T (M diag(s) - A) = R^T C`` with ``C = (L^T L)(R diag(s)) - L^T A`` (``k x r``): two
    thin products instead of ``r x dH x r``. The first value is the norm of the computed
    difference plus the worst-case rounding of the products that formed it (``gamma_m
    ||P||_F ||Q||_F`` for a product ``P Q`` of inner dimension m), so it bounds the exact one.
    """
    eps = float(np.finfo(np.float64).eps)
    a_norm = frobenius(A)

    def term(L: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, float]:
        RS = R * s
        C = (L.T @ L) @ RS
        C -= L.T @ A
        l_norm, r_norm = frobenius(L), frobenius(R)
        deep = (A.shape[0] + L.shape[1] + 4) * eps  # through L^T L and L^T A
        err = r_norm * deep * l_norm * (a_norm + l_norm * frobenius(RS))
        err += (L.shape[1] + 4) * eps * r_norm * frobenius(C)  # R^T C
        return R.T @ C, err

    inner, err = term(*M)
    other, err_hat = term(*Mhat)
    inner -= other
    del other
    bound = frobenius(inner) * (1.0 + 64.0 * eps) + err + err_hat

    def block(rows: slice) -> np.ndarray:
        D = M[0][rows] @ M[1]
        D -= Mhat[0][rows] @ Mhat[1]
        return D

    return bound, _sum_sq_by_rows(A.shape, block)


def _basis_sensitivity(A: np.ndarray, Gamma: np.ndarray, s: np.ndarray, s_next: float,
                       eps: float, residual: float, block: int = 512
                       ) -> tuple[float, np.ndarray]:
    """A bound on ``||delta (A - Gamma)||_F`` when X moves by ``eps`` (Frobenius), first order,
    and the coefficient norms ``c_j`` of the columns (``||delta (A - Gamma) w|| <= 2 eps
    ||c * w||`` for column weights ``w``).

    Column j of ``A - Gamma`` is ``(Y X^T - Lambda) u_j / s_j``. An entry ``Delta'_ij`` of
    ``U^T Delta V`` turns ``u_j, v_j`` towards direction i by at most ``|Delta'_ij| / |s_i -
    s_j|``, which moves column j by that times ``||a_i|| + ||(Gamma S)_i|| / s_j``; a diagonal
    entry rescales it by ``||gamma_j|| / s_j``; the part of ``Delta`` off the kept basis turns
    ``v_j`` out of it, bringing at most ``residual / (s_j - s_next)``. Each entry of ``Delta``
    moves two columns, so by Cauchy-Schwarz the change is at most ``sqrt(2) eps max_j c_j``,
    ``c_j`` the norm of column j's coefficients. Directions closer than ``4 eps`` count as one
    cluster, whose internal rotations leave the (k) norm unchanged.
    """
    col_G = np.sqrt(np.einsum("ij,ij->j", Gamma, Gamma))
    if s.size and float(s[0] - s[-1]) <= 4.0 * eps:
        # One cluster (whitened X): no rotation between kept directions counts.
        c = np.sqrt((col_G * 5.0 / (s - eps)) ** 2 + (residual / (s - s_next - eps)) ** 2)
        return float(np.sqrt(2.0) * eps * float(np.max(c))), c
    col_A = np.sqrt(np.einsum("ij,ij->j", A, A))
    col_GS = col_G * s
    worst = 0.0
    norms = np.empty(s.size)
    for start in range(0, s.size, block):
        sj = s[start:start + block]
        dist = np.abs(s[None, :] - sj[:, None])
        far = dist > 4.0 * eps
        weight = np.where(far, 1.0 / np.where(far, dist - 2.0 * eps, 1.0), 0.0)
        coef = weight * (col_A[None, :] + col_GS[None, :] / sj[:, None])
        own = col_G[start:start + block] * 5.0 / (sj - eps)
        leak = residual / (sj - s_next - eps)
        c = np.sqrt(np.einsum("ji,ji->j", coef, coef) + own**2 + leak**2)
        norms[start:start + block] = c
        worst = max(worst, float(np.max(c)))
    return float(np.sqrt(2.0) * eps * worst), norms
