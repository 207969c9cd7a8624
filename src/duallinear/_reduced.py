r"""The reduced model shared by the dual solvers, the primal and the recovery.

With the thin SVD ``X = U diag(s) V^T`` and ``A = Y V`` (``docs/math.md``, the reduction),
every quantity the library certifies is a function of ``(A, s, rho, k, residual_sq)``:

* the dual value ``D(Gamma) = 1/2 ||Y||^2 - 1/2 ||A - Gamma||_(k)^2`` at a feasible ``Gamma``,
  evaluated as ``1/2 residual_sq + <Gamma, A - Gamma/2> + 1/2 sum_{j > k} sigma_j(A - Gamma)^2``
  so that no large terms cancel (each is small when the optimum is small);
* the feasibility scaling ``Gamma -> Gamma min(1, rho / ||Gamma diag(s)||_op)``;
* the objective of the rank-k matrix a truncation of ``A - Gamma`` gives (an upper bound);
* numerical ranks and the relative gap between the two bounds.

Each is written once, here. :class:`Reduced` holds the data in normalised units (``||A||_op =
s_max = 1``), where the solvers run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._linalg import LeadingSVD, svd, svdvals, top_triplets

__all__ = [
    "GAP_FLOOR",
    "PRUNE_LEVELS",
    "Reduced",
    "certify",
    "dual_value",
    "make_feasible",
    "numerical_rank",
    "op_norm",
    "pruned_ranks",
    "relative_gap",
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


def make_feasible(Gamma: np.ndarray, s: np.ndarray, rho: float) -> np.ndarray:
    """Scale ``Gamma`` into ``{||Gamma diag(s)||_op <= rho}``."""
    norm = op_norm(Gamma * s)
    if norm <= rho:
        return Gamma
    if rho == 0.0:
        return np.zeros_like(Gamma)
    return Gamma * (rho / norm)


def dual_value(A: np.ndarray, Gamma: np.ndarray, residual_sq: float, tail_sq: float) -> float:
    """``D(Gamma)`` without cancellation, given ``tail_sq = sum_{j > k} sigma_j(A - Gamma)^2``.

    ``A`` and ``Gamma`` may be matrices or, in a common singular basis, vectors.
    """
    return 0.5 * residual_sq + float(np.vdot(Gamma, A - 0.5 * Gamma)) + 0.5 * tail_sq


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
    upper = 0.5 * float(np.sum((Uk @ Rk - A) ** 2)) + 0.5 * residual_sq
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
    U, sv, Vt = svd(A - Gamma)
    lower = dual_value(A, Gamma, residual_sq, tail_sq(sv, k))
    return lower, truncation_value(A, U[:, :k], sv[:k], Vt[:k], s, rho, residual_sq)


@dataclass(frozen=True)
class Reduced:
    """Reduced data in normalised units: ``A / a``, ``s / b``, ``rho / (a b)``, with
    ``(a, b) = problem.scales`` (so that ``||A||_op = s_max = 1``).

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
                   zero_value=0.5 * (problem.y_norm / a) ** 2, a=a, b=b)

    def gap(self, upper: float, lower: float) -> float:
        """:func:`relative_gap` in these units."""
        return relative_gap(upper, lower, self.zero_value)

    def certify(self, Gamma: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Feasible version of ``Gamma``, its dual value and the recovered primal value."""
        Gamma = make_feasible(Gamma, self.s, self.rho)
        lower, upper = certify(self.A, Gamma, self.s, self.rho, self.k, self.residual_sq)
        # The zero network is always feasible for the primal: never report worse than it.
        return Gamma, lower, min(upper, self.zero_value)

    def certify_leading(self, Gamma: np.ndarray, lead: LeadingSVD
                        ) -> tuple[np.ndarray, float, float]:
        """:meth:`certify` with the truncation taken from leading triplets.

        The feasibility scaling and the dual value use every singular value (LAPACK, no
        vectors), so the lower bound is exact; the upper bound is the objective of the rank-k
        matrix built from the triplets, valid whatever their accuracy.
        """
        Gamma = make_feasible(Gamma, self.s, self.rho)
        B = self.A - Gamma
        lower = dual_value(self.A, Gamma, self.residual_sq, tail_sq(svdvals(B), self.k))
        upper = truncation_value(self.A, *top_triplets(B, self.k, lead), self.s, self.rho,
                                 self.residual_sq)
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
