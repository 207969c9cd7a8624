r"""The convex dual problem (5), by Douglas-Rachford splitting or through CVXPY.

In reduced coordinates (MATH.md section 5) the dual reads

    maximise  D(Gamma) = 1/2 ||Y||^2 - 1/2 ||A - Gamma||_(k)^2   s.t.  ||Gamma diag(s)||_op <= rho,

i.e. minimise ``f(Gamma) + g(Gamma diag(s))`` with ``f(Gamma) = 1/2 ||A - Gamma||_(k)^2`` and
``g`` the indicator of the operator-norm ball of radius ``rho``.

Douglas-Rachford (MATH.md section 9):

* whitened X (``s = c 1``): one variable, ``G = proj(Z)``, ``F = prox_{t f}(2G - Z)``,
  ``Z += lam (F - G)``. Both maps are spectral and, started from ``Z = 0``, every iterate
  shares the singular vectors of ``A``: after one SVD of ``A`` the iteration runs on vectors
  of singular values, exactly (not an approximation).
* general X: product space ``(Gamma, Phi)`` with the graph constraint ``Phi = w Gamma diag(s)``,
  whose projection is closed form column by column, against ``f(Gamma) + ball(Phi)``.

Solvers run in normalised units (``||A||_op = s_max = 1``) and stop on the *certified*
relative gap between the weights recovered from the current iterate and its dual value.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dposv

from ._lbfgs import lbfgs
from ._linalg import (
    LeadingSVD,
    gram_spectral_change,
    svd,
    svd_of_product,
    svdvals,
    top_triplets,
)
from ._threads import SINGLE_THREAD_MAX_DIM, one_blas_thread
from ._validation import as_nonneg_scalar, as_positive_int
from .certificates import (
    _certify,
    _dual_value,
    _make_feasible,
    _truncation_value,
    relative_gap,
)
from .problem import DeepLinearProblem, check_problem
from .prox import _ball, _truncated
from .results import ConvergenceWarning, DualResult

__all__ = ["solve_dual", "DUAL_METHODS"]

DUAL_METHODS = ("dr", "cvxpy")

#: Certified relative gap a CVXPY answer must reach (besides the solver's "optimal" status)
#: to count as converged; SCS typically certifies 1e-9 to 1e-11 here.
CVXPY_CERTIFIED = 1e-6

#: Relative fixed-point residual below which the DR iterate has converged to rounding level.
#: If the certified gap then stops improving, more iterations cannot close it: the truncation
#: recovery is ambiguous (tied singular values at k) or the duality gap is real.
STALL_RESIDUAL = 1e-13

#: A converged iterate whose certified gap exceeds ``STALL_FAR * tol`` stops the run at once
#: (a duality gap); closer to ``tol``, DR tries its remaining (t, w) pairs first.
STALL_FAR = 1e3

#: With ``partial_svd=None`` the general-X solver works with leading singular triplets
#: (:class:`~duallinear._linalg.LeadingSVD`) once ``min(dH, r)`` reaches this size. Measured
#: with the primal refinement certifying at the 2nd iteration (benchmarks/wide.py, rank-20
#: targets, one BLAS thread), full SVDs against leading triplets: 0.36 s vs 0.48 s at
#: d = 600, 1.24 vs 1.61 at 1000, 4.07 vs 3.79 at 1500, 11.6 vs 7.3 at 2000.
PARTIAL_MIN_DIM = 1500

#: Smallest ``min(dH, r)`` at which the general-X maps use an eigendecomposition of the Gram
#: matrix instead of a full SVD (about half the cost at d = 200; per-call overhead dominates
#: on small matrices).
GRAM_MIN_DIM = 64

#: Certificate through the primal (general X): tried at these DR iterations. Measured at
#: d = 100 and 200 (Gaussian X, 9 instances): from the 2nd iterate it certified all but one
#: square instance (which certified from the 10th), where DR alone needs 105-140 iterations
#: for 1e-10.
REFINE_AT = (2, 10, 70)

#: The refinement's preconditioner treats the curvature of entry (j, i) of R as
#: ``REFINE_CURVATURE * s_j^2 m_i + rho`` (m: the start's singular values). Measured on the
#: 9 instances: 0.3-1 best, about 40 evaluations at d = 100 where a scale per row only
#: needed 50-75 and none 80-250.
REFINE_CURVATURE = 0.5

#: The refinement's L-BFGS stops on these relative decreases in turn (warm-started), until
#: the point it gives is certified: the loose stop suffices on most Gaussian X (about 150
#: evaluations -> 100 at d = 200), the second is rounding level.
REFINE_FTOL = (1e-13, 1e-16)

#: A refined ``M`` whose smallest singular values fall below this fraction of the largest is
#: taken to have lower rank than k (the rank bound inactive; see ``_refine_low_rank``). On the
#: survey's structured instances any value from 1e-6 to 1e-2 gave the same results.
REFINE_DROP = 1e-4

#: Gradient-only quasi-Newton steps after the low-rank route's L-BFGS (``lbfgs(polish=)``):
#: its dual point ``A - N`` moves to first order with ``N``, and values alone resolve ``N``
#: only to about sqrt(eps). Measured: certified gaps 1e-9..1e-11 without, 1e-13..1e-16 with.
#: (On the main route the same steps bought digits that were not needed, for 10-30% time.)
REFINE_POLISH = 30

#: Largest block of leading triplets, as a fraction of ``min(dH, r)``, before a proximal map
#: falls back to a full SVD (beyond it subspace iteration costs more than LAPACK).
PARTIAL_MAX_FRACTION = 0.25


@dataclass(frozen=True)
class _Reduced:
    """Reduced dual data in normalised units (see ``DeepLinearProblem.scales``)."""

    A: np.ndarray  # (dH, r)
    s: np.ndarray  # (r,)
    rho: float
    k: int
    residual_sq: float
    zero_value: float
    a: float
    b: float

    @classmethod
    def of(cls, problem: DeepLinearProblem) -> _Reduced:
        a, b = problem.scales
        return cls(A=problem.A / a, s=problem.s / b, rho=problem.rho / (a * b), k=problem.k,
                   residual_sq=problem.residual_sq / a**2,
                   zero_value=problem.zero_value / a**2, a=a, b=b)

    def certify(self, Gamma: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Feasible version of ``Gamma``, its dual value and the recovered primal value."""
        Gamma = _make_feasible(Gamma, self.s, self.rho)
        lower, upper = _certify(self.A, Gamma, self.s, self.rho, self.k, self.residual_sq)
        # The zero network is always feasible for the primal: never report worse than it.
        return Gamma, lower, min(upper, self.zero_value)

    def certify_leading(self, Gamma: np.ndarray, lead: LeadingSVD
                        ) -> tuple[np.ndarray, float, float]:
        """:meth:`certify` with the truncation taken from leading triplets.

        The feasibility scaling and the dual value use every singular value (LAPACK, no
        vectors), so the lower bound is exact; the upper bound is the objective of the rank-k
        matrix built from the triplets, valid whatever their accuracy.
        """
        Gamma = _make_feasible(Gamma, self.s, self.rho)
        B = self.A - Gamma
        lower = _dual_value(self.A, Gamma, self.k, self.residual_sq, svdvals(B))
        upper = _truncation_value(self.A, *top_triplets(B, self.k, lead), self.s, self.rho,
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
        lower = 0.5 * self.residual_sq + float(np.vdot(Gamma, self.A - 0.5 * Gamma)) + 0.5 * tail
        upper = _truncation_value(self.A, U[:, :k], sv[:k], Vt[:k], self.s, self.rho,
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
        # Free lower bounds on ||AS||_op first: its largest column and row norms.
        if max(float(np.max(np.einsum("ij,ij->j", AS, AS))),
               float(np.max(np.einsum("ij,ij->i", AS, AS)))) > self.rho**2:
            return False
        if partial:
            top = LeadingSVD(rtol=1e-6, values_only=True, max_steps=10)(AS, lambda sv: 1)
            if top is not None and top[1][0] > self.rho:
                return False
        return float(svdvals(AS)[0]) <= self.rho


# ----------------------------------------------------------------------------- public
def solve_dual(
    problem: DeepLinearProblem,
    *,
    method: str = "dr",
    tol: float = 1e-10,
    max_iter: int = 5000,
    step: float | None = None,
    relaxation: float = 1.5,
    solver: str = "SCS",
    solver_options: dict | None = None,
    partial_svd: bool | None = None,
    primal_refine: bool = True,
) -> DualResult:
    """Solve the convex dual (5).

    Parameters
    ----------
    problem : DeepLinearProblem
    method : {"dr", "cvxpy"}
        ``"dr"``: Douglas-Rachford splitting on spectral proximal operators.
        ``"cvxpy"``: the SDP of MATH.md section 10 through CVXPY (reference path).
    tol : float >= 0
        ``"dr"`` stops once the certified relative gap is at most ``tol``; ``tol = 0`` runs
        all ``max_iter`` iterations and reports ``converged=False``. Passed to the conic
        solver as its ``eps`` (SCS) for ``"cvxpy"`` unless ``solver_options`` sets it.
    max_iter : int
        Iteration cap for ``"dr"``.
    step : float, optional
        DR step ``t`` in normalised units (default chosen from the data).
    relaxation : float in (0, 2)
        DR over-relaxation ``lam``.
    solver : str
        CVXPY solver name for ``"cvxpy"`` (default SCS).
    solver_options : dict, optional
        Extra keyword arguments for ``cvxpy.Problem.solve``.
    partial_svd : bool, optional
        ``"dr"`` on general X: replace the full SVDs inside the iteration by the leading
        singular triplets that the proximal maps change (warm-started subspace iteration,
        falling back to a full SVD when it cannot settle them). ``None`` (default) does so when
        ``min(dH, rank X) >= PARTIAL_MIN_DIM``. The stopping test stays exact: an estimate
        from the triplets only decides when to compute the certificate, whose dual value uses
        every singular value. Ignored for whitened X and for ``"cvxpy"``.
    primal_refine : bool
        ``"dr"`` on general X: at the 2nd, 10th and 70th iterations, until one succeeds, try a
        certificate through the primal: a local search on the factored rank-k problem started
        from the current iterate, and the dual point its optimality conditions give (see
        ``docs/math.md``). It is certified exactly like any other point; the message says when
        it was used. ``False``: plain DR.

    Returns
    -------
    DualResult
        ``value`` is always the dual objective at a feasible point, hence a valid lower bound
        on the primal optimum even when ``converged`` is False.

    Notes
    -----
    ``"dr"`` runs BLAS on one thread while ``min(dH, rank X) < 1000`` (process-wide, restored
    afterwards; see :mod:`duallinear._threads` for the measurements).
    """
    check_problem(problem)
    if method not in DUAL_METHODS:
        raise ValueError(f"method must be one of {DUAL_METHODS}, got {method!r}")
    tol = as_nonneg_scalar(tol, "tol")
    max_iter = as_positive_int(max_iter, "max_iter")
    relaxation = as_nonneg_scalar(relaxation, "relaxation")
    if not 0.0 < relaxation < 2.0:
        raise ValueError(f"relaxation must lie in (0, 2), got {relaxation}")
    if step is not None:
        step = as_nonneg_scalar(step, "step")
        if step == 0.0:
            raise ValueError("step must be > 0")
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a CVXPY solver name (str), got {type(solver).__name__}")
    if method == "cvxpy":
        import cvxpy as cp

        if solver.upper() not in cp.installed_solvers():
            raise ValueError(
                f"solver {solver!r} is not an installed CVXPY solver; installed: "
                f"{', '.join(cp.installed_solvers())}")
    if solver_options is not None and not isinstance(solver_options, dict):
        raise TypeError(f"solver_options must be a dict, got {type(solver_options).__name__}")
    if partial_svd is not None and not isinstance(partial_svd, (bool, np.bool_)):
        raise TypeError(f"partial_svd must be True, False or None, got {partial_svd!r}")
    if not isinstance(primal_refine, (bool, np.bool_)):
        raise TypeError(f"primal_refine must be True or False, got {primal_refine!r}")

    with one_blas_thread(method == "dr" and min(problem.A.shape) < SINGLE_THREAD_MAX_DIM):
        result = _solve(problem, method, tol, max_iter, step, relaxation, solver,
                        solver_options, partial_svd, primal_refine)
    if not result.converged:
        warnings.warn(f"solve_dual({method!r}) did not converge: {result.message}",
                      ConvergenceWarning, stacklevel=2)
    return result


def _solve(problem: DeepLinearProblem, method: str, tol: float, max_iter: int,
           step: float | None, relaxation: float, solver: str, solver_options: dict | None,
           partial_svd: bool | None, primal_refine: bool) -> DualResult:
    """:func:`solve_dual` after validation (its BLAS limit already in place)."""
    red = _Reduced.of(problem)
    t0 = time.perf_counter()
    if method == "dr":
        if partial_svd is None:
            partial_svd = min(red.A.shape) >= PARTIAL_MIN_DIM
        out = _dr(red, tol, max_iter, step, relaxation, whitened=problem.is_whitened,
                  partial=bool(partial_svd), refine=bool(primal_refine))
    else:
        out = _cvxpy(red, tol, solver, solver_options or {})
    elapsed = time.perf_counter() - t0

    Gamma = out.Gamma * red.a
    Lambda = (Gamma * problem.s) @ problem.U.T
    return DualResult(
        method=method, Lambda=Lambda, Gamma=Gamma, value=out.lower * red.a**2,
        converged=out.converged, iterations=out.iterations, message=out.message, time=elapsed,
        upper_bound=out.upper * red.a**2,
        relative_gap=relative_gap(out.upper, out.lower, red.zero_value), status=out.status,
        residuals=np.asarray(out.residuals), gaps=np.asarray(out.gaps),
    )


@dataclass
class _Outcome:
    Gamma: np.ndarray
    lower: float
    upper: float
    converged: bool
    iterations: int
    message: str
    status: str
    residuals: list
    gaps: list


# ------------------------------------------------------------------ Douglas-Rachford
def _dr(red: _Reduced, tol: float, max_iter: int, step: float | None, lam: float,
        whitened: bool, partial: bool = False, refine: bool = True) -> _Outcome:
    if red.rho == 0.0:
        # gamma = 0: Gamma = 0 is the only feasible point (reduced-rank regression).
        return _finish(*red.certify(np.zeros_like(red.A)), "exact", 0, [], [], tol, max_iter,
                       red)
    if red.zero_is_optimal(partial and not whitened):
        # Exact: Gamma = A is feasible and attains P(0) = 1/2 ||Y||^2 (MATH.md section 6).
        Gamma, lower, upper = red.certify(red.A.copy())
        return _Outcome(Gamma, lower, upper, True, 0,
                        "zero network optimal (||Y X^T||_op <= rho): Gamma = A is exact",
                        "converged", [], [relative_gap(upper, lower, red.zero_value)])
    if whitened:
        return _dr_whitened(red, tol, max_iter, step if step else 1.0, lam)
    return _dr_product(red, tol, max_iter, step, lam, partial=partial, refine=refine)


def _sv_prox_f(alpha: np.ndarray, v: np.ndarray, k: int, t: float) -> np.ndarray:
    """``prox_{t f}`` on signed coordinates in the singular basis of A (whitened path)."""
    w = alpha - v
    return alpha - np.sign(w) * _truncated(np.abs(w), k, t)


def _dr_whitened(red: _Reduced, tol: float, max_iter: int, t: float, lam: float) -> _Outcome:
    P, alpha, Qt = svd(red.A)
    c = red.s[0]
    radius = red.rho / c
    k = red.k
    z = np.zeros_like(alpha)
    residuals, gaps = [], []

    def certify(g: np.ndarray) -> tuple[float, float]:
        b = alpha - g
        mag = np.abs(b)
        order = np.argsort(-mag, kind="stable")
        keep = np.zeros_like(b)
        keep[order[:k]] = b[order[:k]]
        tail = mag[order[k:]]
        lower = (0.5 * red.residual_sq + float(np.dot(g, alpha - 0.5 * g))
                 + 0.5 * float(np.dot(tail, tail)))
        upper = (0.5 * red.residual_sq + 0.5 * float(np.sum((keep - alpha) ** 2))
                 + radius * float(np.sum(np.abs(keep))))
        return lower, upper

    status, it = "max_iter", 0
    while it < max_iter:
        it += 1
        g = np.clip(z, -radius, radius)
        f = _sv_prox_f(alpha, 2.0 * g - z, k, t)
        dz = lam * (f - g)
        z = z + dz
        residuals.append(float(np.linalg.norm(dz)) / max(float(np.linalg.norm(z)), 1.0))
        lower, upper = certify(np.clip(z, -radius, radius))
        gaps.append(relative_gap(upper, lower, red.zero_value))
        if _met(gaps[-1], tol):
            status = "converged"
            break
        if residuals[-1] < 1e-16:
            status = "stalled"
            break
    g = np.clip(z, -radius, radius)
    lower, upper = certify(g)
    Gamma = (P * g) @ Qt
    return _finish(Gamma, lower, upper, status, it, residuals, gaps, tol, max_iter, red)


#: (step t, c) pairs tried in turn on general X while the previous one stalls; the graph
#: scaling is ``w = c / rho`` (normalised units), which puts the ball ``||Phi||_op <= w rho``
#: at radius ``c``. Chosen from a grid over t in {0.3, 1, 3}, c in {0.03, 0.1, 0.3} on
#: Gaussian, rank-deficient and ill-conditioned X (condition numbers to 1e6) and the cases the
#: fuzzer found: (1, 0.1) converged on all of them within 145 iterations.
DR_SCHEDULE = ((1.0, 0.1), (0.3, 0.03), (3.0, 0.3), (3.0, 0.1), (1.0, 0.3), (0.3, 0.1))


@dataclass(frozen=True)
class _ProductSpace:
    """One Douglas-Rachford map on ``(Gamma, Phi)`` with ``Phi = w Gamma diag(s)``."""

    red: _Reduced
    t: float
    w: float
    lam: float
    #: Leading-triplet solvers for the two proximal maps (f, ball), or None: full SVDs.
    leads: tuple[LeadingSVD, LeadingSVD] | None = None

    @property
    def ws(self) -> np.ndarray:
        return self.w * self.red.s

    @property
    def gram(self) -> bool:
        """Spectral maps through the Gram matrix (below GRAM_MIN_DIM a full SVD is cheaper)."""
        return min(self.red.A.shape) >= GRAM_MIN_DIM

    def graph(self, z: np.ndarray) -> np.ndarray:
        """Gamma-part of the projection of ``z = (zG, zP)`` onto the graph."""
        ws = self.ws
        out = ws * z[1]
        out += z[0]
        out /= 1.0 + ws * ws
        return out

    def start(self, Gamma: np.ndarray) -> np.ndarray:
        return np.stack([Gamma, self.ws * Gamma])

    def __call__(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``z + lam (prox_h1(2 x - z) - x)`` with ``x`` the graph projection of ``z``."""
        # In-place arithmetic throughout: at d = 2000 every temporary is 32 MB.
        red, ws = self.red, self.ws
        k, t, radius = red.k, self.t, self.w * red.rho
        xG = self.graph(z)
        xP = ws * xG
        vG = 2.0 * xG
        vG -= z[0]
        vP = 2.0 * xP
        vP -= z[1]
        # Both maps move only leading triplets: prox_{t f}(vG) = vG + the change of
        # A - vG, and the ball projection of vP = vP - the change of vP.
        lead_f, lead_ball = self.leads if self.leads is not None else (None, None)
        yG = vG
        yG += _spectral_change(red.A - vG, lambda sv: sv - _truncated(sv, k, t), lead_f,
                               self.gram, start=k)
        yP = vP
        if float(np.vdot(vP, vP)) > radius * radius:
            # (||vP||_F <= radius: no singular value exceeds it, nothing to project; always
            # so on the first iteration from zero.)
            yP -= _spectral_change(vP, lambda sv: sv - _ball(sv, radius), lead_ball, self.gram)
        if out is None:
            out = np.empty_like(z)
        for i, (y, x) in enumerate(((yG, xG), (yP, xP))):
            np.subtract(y, x, out=out[i])
            out[i] *= self.lam
            out[i] += z[i]
        return out


def _spectral_change(B: np.ndarray, amount, lead: LeadingSVD | None, gram: bool,
                     start: int = 1) -> np.ndarray:
    """``U diag(amount(s)) V^T`` for ``B = U diag(s) V^T`` (``amount`` is zero past the leading
    values): from leading triplets if ``lead`` settles them, else through the Gram matrix if
    ``gram`` and accurate, else from a full SVD."""
    if lead is not None:
        top = lead(B, lambda sv: int(np.count_nonzero(amount(sv))), start=start)
        if top is not None:
            U, sv, Vt, c = top
            return (U[:, :c] * amount(sv)[:c]) @ Vt[:c]
    change = gram_spectral_change(B, amount) if gram else None
    if change is None:
        U, sv, Vt = svd(B)
        change = (U * amount(sv)) @ Vt
    return change


class _Anderson:
    """Type-II Anderson acceleration of a fixed-point map ``z -> z + f(z)``.

    The step is ``z + f - sum_i c_i (dz_i + df_i)`` with ``c`` the least-squares coefficients
    of ``f`` on the last ``memory`` residual differences ``df_i``. The buffers hold ``df_i``
    and ``dz_i + df_i`` (ring buffers) and the Gram matrix of the ``df_i`` is updated one row
    at a time, so a step costs three matrix-vector products with the buffers (on large
    problems it is bound by memory traffic, not arithmetic). Nothing of the size of ``z`` is
    allocated after construction: fresh large arrays cost page faults on every step.
    """

    def __init__(self, memory: int, size: int):
        self.memory = memory
        self.dF = np.zeros((memory, size))
        self.dG = np.zeros((memory, size))  # dz_i + df_i
        self.gram = np.zeros((memory, memory))
        self.prev_z = np.zeros(size)
        self.prev_f = np.zeros(size)
        self.work = np.zeros(size)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.has_prev = False

    def step(self, z: np.ndarray, f: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Next point, written to ``out``, from ``z`` and its residual ``f = T(z) - z``."""
        np.add(z, f, out=out)
        if self.memory == 0:
            return out
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
        gram += (1e-10 * np.trace(gram) / m + 1e-300) * np.eye(m)
        try:
            coef = np.linalg.solve(gram, self.dF[:m] @ f)
        except np.linalg.LinAlgError:
            self.reset()
            return out
        out -= np.dot(coef, self.dG[:m], out=self.work)
        return out


#: Anderson memory on general X, and on iterates of more than ``ANDERSON_LARGE`` entries:
#: there the buffers' memory traffic outweighs the saved iterations (measured at d = 1000 and
#: 2000: memory 5 was 1.5x faster than 10 for the same number of iterations).
ANDERSON_MEMORY, ANDERSON_MEMORY_LARGE, ANDERSON_LARGE = 10, 5, 2**20


def _dr_product(red: _Reduced, tol: float, max_iter: int, step: float | None, lam: float,
                memory: int | None = None, partial: bool = False, refine: bool = True
                ) -> _Outcome:
    schedule = ((step, DR_SCHEDULE[0][1]),) if step else DR_SCHEDULE
    fraction = PARTIAL_MAX_FRACTION
    leads = ((LeadingSVD(max_fraction=fraction), LeadingSVD(max_fraction=fraction))
             if partial else None)
    if partial:
        lead_cert = LeadingSVD(max_fraction=fraction)
        # ||Gamma S||_op sits in a cluster of up to k equal values at rho: cover it (when that
        # block is small; otherwise the estimate takes the exact norm).
        cheap = red.k + 4 <= fraction * min(red.A.shape) / 2
        lead_norm = LeadingSVD(oversample=red.k + 4, rtol=1e-10, values_only=True,
                               max_fraction=fraction if cheap else 0.0)
    else:
        lead_cert = None

    def certify(Gamma: np.ndarray) -> tuple[np.ndarray, float, float]:
        return red.certify_leading(Gamma, lead_cert) if partial else red.certify(Gamma)

    def check(Gamma: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        # Exact certificate; with leading triplets, only once their estimate meets tol (and
        # straight away while the triplets keep failing: the estimate would cost extra).
        if partial and lead_cert.failures_in_row < 3:
            Gamma, lower, upper = red.estimate(Gamma, lead_cert, lead_norm)
            if not _met(relative_gap(upper, lower, red.zero_value), tol):
                return Gamma, lower, upper, relative_gap(upper, lower, red.zero_value)
        Gamma, lower, upper = certify(Gamma)
        return Gamma, lower, upper, relative_gap(upper, lower, red.zero_value)

    def top_k(B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return top_triplets(B, red.k, lead_cert)

    refined = {"attempts": 0, "nfev": 0, "used": False}
    pending = sorted(REFINE_AT) if refine else []

    def done(outcome: _Outcome) -> _Outcome:
        if refined["used"]:
            outcome.message += (f"; certified through a primal refinement from the dual "
                                f"iterate (L-BFGS on the factored rank-k problem, "
                                f"{refined['nfev']} evaluations in {refined['attempts']} "
                                "attempt(s))")
        if leads is not None:
            calls = sum(lead.calls for lead in leads)
            full = sum(lead.fallbacks for lead in leads)
            outcome.message += (f"; {calls - full} of {calls} proximal maps from leading "
                                f"triplets, {full} by a full eigen- or singular value "
                                "decomposition")
        return outcome

    residuals: list[float] = []
    gaps: list[float] = []
    Gamma0 = np.zeros_like(red.A)
    best: tuple[np.ndarray, float, float, float] | None = None
    it, status = 0, "max_iter"
    for index, (t, c) in enumerate(schedule):
        T = _ProductSpace(red, t, c / red.rho, lam, leads)
        last = index == len(schedule) - 1
        z = T.start(Gamma0)
        if memory is None:
            memory = ANDERSON_MEMORY if z.size <= ANDERSON_LARGE else ANDERSON_MEMORY_LARGE
        accel = _Anderson(memory, z.size)
        # Four iterate-sized buffers, swapped rather than reallocated (see _Anderson).
        Tz, f, z_next, plain = (np.empty_like(z) for _ in range(4))
        best_res, have_plain = np.inf, False
        since_improved = 0
        while it < max_iter:
            it += 1
            T(z, out=Tz)
            np.subtract(Tz, z, out=f)
            res = float(np.linalg.norm(f))
            residuals.append(res / max(float(np.linalg.norm(z)), 1.0))
            if have_plain and res > 2.0 * best_res:
                # The accelerated point made things worse: fall back to the plain iterate.
                z, plain, have_plain = plain, z, False
                accel.reset()
                continue
            best_res = min(best_res, res)
            plain, Tz, have_plain = Tz, plain, True
            accel.step(z.ravel(), f.ravel(), out=z_next.ravel())
            z, z_next = z_next, z
            refine_now = bool(pending) and it >= pending[0]
            check_now = it % 5 == 0 or it == max_iter
            current = T.graph(plain) if refine_now or check_now else None
            if refine_now:
                # Before the regular check, which a certified refinement makes unnecessary.
                while pending and pending[0] <= it:
                    pending.pop(0)
                refined["attempts"] += 1
                attempt = _refine(red, current, top_k, certify, tol)
                if attempt is not None:
                    refined["nfev"] += attempt[3]
                    best = _better(best, attempt[:3], red)
                    if _met(best[3], tol):
                        refined["used"] = True
                        gaps.append(best[3])
                        return done(_finish(*best[:3], "converged", it, residuals, gaps, tol,
                                            max_iter, red))
            if check_now:
                Gamma, lower, upper, gap = check(current)
                gaps.append(gap)
                if best is None or gaps[-1] < best[3] * 0.5:
                    since_improved = 0
                else:
                    since_improved += 5
                if best is None or gaps[-1] < best[3]:
                    best = (Gamma, lower, upper, gaps[-1])
                if _met(gaps[-1], tol):
                    return done(_finish(*best[:3], "converged", it, residuals, gaps, tol,
                                        max_iter, red))
                if since_improved >= 150 and (not last or residuals[-1] < STALL_RESIDUAL):
                    # No progress with this (t, w): the next one restarts from the best
                    # point, and may land on another dual optimum whose truncation certifies
                    # (a fuzzed case stalled at 1.2e-10 - 2.6e-10 and converged that way).
                    # A converged iterate far from tol is a real duality gap: there the
                    # other pairs found the same dual value to 10 digits on 11 instances,
                    # after 2-5x more iterations, so stop.
                    hopeless = residuals[-1] < STALL_RESIDUAL and best[3] > STALL_FAR * tol
                    status = "stalled" if last or hopeless else status
                    break
            if residuals[-1] < 1e-16:
                status = "stalled" if last else status
                break
        if it >= max_iter or status == "stalled":
            break
        Gamma0 = best[0] if best is not None else T.graph(z)
    if best is None:
        best = (*red.certify(Gamma0), np.inf)
    elif partial:
        best = (*certify(best[0]), np.inf)  # estimates are not bounds
    if status == "stalled":
        # The iterate has converged: it is the dual optimum, whatever the truncation makes of
        # it. Report it when its lower bound beats the point of smallest gap (measured: 2.7e-7
        # relative higher, at SCS's value, on an ill-conditioned instance at d = 81).
        final = certify(T.graph(plain))
        if final[1] > best[1]:
            best = (*final, np.inf)
    return done(_finish(*best[:3], status, it, residuals, gaps, tol, max_iter, red))


def _refine(red: _Reduced, Gamma: np.ndarray, top_k, certify, tol: float
            ) -> tuple[np.ndarray, float, float, int] | None:
    """A certificate through the primal, started from the dual point ``Gamma``.

    1. ``N = trunc_k(A - Gamma)``, factored as ``M = N diag(s)^-1 = L R^T`` (balanced).
    2. L-BFGS on the factored rank-k primal (in reduced, normalised units)
       ``1/2 ||L R^T diag(s) - A||^2 + rho/2 (||L||^2 + ||R||^2)``, whose minimum over
       ``L R^T = M`` is ``P(M) = 1/2 ||M diag(s) - A||^2 + rho ||M||_*`` (MATH.md section 3),
       with ``L`` eliminated (see :func:`_projected_primal`).
    3. With ``M = P diag(m) Q^T`` (its non-zero part), the optimality conditions say
       ``Gamma* diag(s) = rho P Q^T + W`` with ``W`` orthogonal to ``P`` and ``Q`` and
       ``||W||_op <= rho``. ``W`` is taken from the current ``Gamma`` (its block orthogonal to
       ``P`` and ``Q``, scaled into the ball), which need not be accurate: it only has to
       keep the truncation of ``A - Gamma`` on ``N``.
    4. The new point is certified exactly (``certify``), like any other.

    When that fails and the refined ``M`` has fewer than k significant singular values, the
    rank bound is inactive: see :func:`_refine_low_rank`.

    Returns the best certified ``(Gamma, lower, upper)`` and the number of function
    evaluations, or None if the local search diverged.
    """
    A, s, rho, k = red.A, red.s, red.rho, red.k
    Uk, sk, Vtk = top_k(A - Gamma)
    P0, m0, Qt0 = svd_of_product(Uk, (sk[:, None] * Vtk / s).T)
    fun, left, scale, x = _projected_primal(A, s, rho, m0[:k], Qt0[:k])
    GS = Gamma * s
    best, nfev = None, 0
    for ftol in REFINE_FTOL:
        # A loose stop first; resume (warm) at rounding level only if that did not certify.
        out = lbfgs(fun, x, memory=5, ftol=ftol, gtol=1e-9, max_eval=3000)
        nfev += out.nfev
        if out.status == "non-finite":
            break
        x = out.x
        R = x.reshape(scale.shape) * scale
        P, m, Qt = svd_of_product(left(R), R)
        rank = int(np.sum(m > m[0] * 1e-12)) if m.size and m[0] > 0 else 0
        P, Q = P[:, :rank], Qt[:rank].T
        # W: the current iterate's block orthogonal to the refined M, scaled into the ball.
        W = GS - P @ (P.T @ GS)
        W -= (W @ Q) @ Q.T
        norm = float(svdvals(W)[0]) if W.size else 0.0
        if norm > rho:
            W *= rho / norm
        W += rho * (P @ Q.T)
        best = _better(best, certify(W / s), red)
        if _met(best[3], tol):
            break
        if m.size and m[-1] < REFINE_DROP * m[0]:
            low, evaluations = _refine_low_rank(red, m, Qt, int(np.sum(m >= REFINE_DROP * m[0])),
                                                certify)
            nfev += evaluations
            if low is not None:
                best = _better(best, low, red)
                if _met(best[3], tol):
                    break
    return None if best is None else (*best[:3], nfev)


def _better(best, candidate: tuple[np.ndarray, float, float], red: _Reduced):
    """The one of ``best`` (with its gap) and ``candidate`` with the smaller certified gap."""
    gap = relative_gap(candidate[2], candidate[1], red.zero_value)
    return (*candidate, gap) if best is None or gap < best[3] else best


def _refine_low_rank(red: _Reduced, m: np.ndarray, Qt: np.ndarray, rank: int, certify
                     ) -> tuple[tuple[np.ndarray, float, float] | None, int]:
    """The refinement when the rank bound is inactive: ``rank < k`` significant values.

    Then the primal is the convex problem ``min 1/2 ||M diag(s) - A||^2 + rho ||M||_*``, whose
    optimality conditions give the dual point directly: ``Gamma* = A - N*``, with
    ``||Gamma* diag(s)||_op <= rho``. The columns of ``R`` beyond ``rank`` only shrink slowly
    under L-BFGS, so they are dropped and the rest refined to rounding level (L-BFGS, then
    ``REFINE_POLISH`` gradient-only steps). The dual point is ``A - N`` with the singular
    values of ``(A - N) diag(s)`` clipped at ``rho``: that changes it only where the refined
    ``N`` is off (scaling the whole point into the ball instead cost 10-100x in certified gap
    on the survey's structured instances).

    Returns the certified ``(Gamma, lower, upper)`` (None if the search diverged) and the
    number of function evaluations.
    """
    A, s, rho = red.A, red.s, red.rho
    fun, left, scale, x = _projected_primal(A, s, rho, m[:rank], Qt[:rank])
    out = lbfgs(fun, x, memory=5, ftol=REFINE_FTOL[-1], gtol=0.0, max_eval=3000,
                polish=REFINE_POLISH)
    if out.status == "non-finite":
        return None, out.nfev
    R = out.x.reshape(scale.shape) * scale
    U, sv, Vt = svd((A - left(R) @ (R * s[:, None]).T) * s)
    return certify(((U * np.minimum(sv, rho)) @ Vt) / s), out.nfev


def _projected_primal(A: np.ndarray, s: np.ndarray, rho: float, m: np.ndarray, Qt: np.ndarray):
    r"""The factored primal with ``L`` minimised out (variable projection), in ``R`` alone.

    For fixed ``R`` (r x c), ``1/2 ||L R^T S - A||^2 + rho/2 ||L||^2`` is least squares in
    ``L``, minimised by ``L(R) = C G^-1`` with ``C = A S R`` and ``G = R^T S^2 R + rho I``,
    with value ``1/2 ||A||^2 - 1/2 <C, L(R)>``. So

        g(R) = 1/2 ||A||^2 - 1/2 <C, L(R)> + rho/2 ||R||^2,
        grad g(R) = S^2 R L(R)^T L(R) - S A^T L(R) + rho R

    (the gradient in ``R`` of the joint objective at ``L(R)``: the ``L``-gradient vanishes
    there). Minimising ``g`` by L-BFGS took about half the evaluations of L-BFGS on
    ``(L, R)`` jointly, each cheaper (two products with ``A`` instead of three of that size).

    The start is the balanced ``R = Q diag(m)^(1/2)`` for ``M = P diag(m) Q^T`` (``m``: c
    values, ``Qt``: c x r). Entry ``(j, i)`` of ``R`` has curvature about ``s_j^2 m_i + rho``,
    so the variable is ``R / scale`` flattened, with
    ``scale = (REFINE_CURVATURE s_j^2 m_i + rho)^(-1/2)`` (a diagonal preconditioner).

    Returns ``fun(x) -> (g, gradient)``, ``left(R) -> L(R)``, ``scale`` (r x c) and the start.
    """
    s2 = (s * s)[:, None]
    half = 0.5 * float(np.vdot(A, A))
    scale = 1.0 / np.sqrt(REFINE_CURVATURE * np.outer(s * s, m) + rho)
    scale /= scale.max() if scale.size else 1.0
    eye = np.eye(m.size)

    def left_and_c(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        C = A @ (R * s[:, None])
        G = (R * s2).T @ R
        G += rho * eye
        if not G.size:
            return np.zeros_like(C), C
        # G >= rho I is positive definite: Cholesky through LAPACK directly (numpy's solve
        # costs more than the products at d = 100).
        _, L_t, info = dposv(G, C.T)
        return (L_t if info == 0 else np.linalg.solve(G, C.T)).T, C

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        R = x.reshape(scale.shape) * scale
        L, C = left_and_c(R)
        value = half - 0.5 * float(np.vdot(C, L)) + 0.5 * rho * float(np.vdot(R, R))
        grad = (R @ (L.T @ L)) * s2
        grad -= (A.T @ L) * s[:, None]
        grad += rho * R
        grad *= scale
        return value, grad.ravel()

    start = (Qt.T * np.sqrt(m) / scale).ravel()
    return fun, lambda R: left_and_c(R)[0], scale, start


def _met(gap: float, tol: float) -> bool:
    """The stopping test; ``tol = 0`` asks for the full ``max_iter`` (nothing meets it)."""
    return tol > 0.0 and gap <= tol


def _finish(Gamma, lower, upper, status, it, residuals, gaps, tol, max_iter, red) -> _Outcome:
    gap = relative_gap(upper, lower, red.zero_value)
    converged = _met(gap, tol)
    if converged:
        status = "converged"
        message = f"certified relative gap {gap:.2e} <= tol {tol:.1e} after {it} iterations"
    elif status == "exact":
        message = (f"the dual point is exact but the weights recovered by truncation reach only "
                   f"relative gap {gap:.2e} > tol {tol:.1e} (tied singular values at k?)")
    elif status == "stalled":
        message = (f"the dual iterate converged (fixed-point residual below "
                   f"{STALL_RESIDUAL:g}) after {it} iterations, but the weights recovered by "
                   f"truncation are certified only to relative gap {gap:.2e} > tol {tol:.1e}: "
                   "tied singular values at k, or a non-zero duality gap (recover() polishes); "
                   "of the converged iterate and the point of smallest gap, the one with the "
                   "higher dual value is reported")
    else:
        message = (f"reached max_iter={max_iter} with certified relative gap {gap:.2e} "
                   f"> tol {tol:.1e}")
    return _Outcome(Gamma, lower, upper, converged, it, message, status, residuals, gaps)


# ------------------------------------------------------------------------ CVXPY / SDP
def _cvxpy(red: _Reduced, tol: float, solver: str, options: dict) -> _Outcome:
    import cvxpy as cp

    A, s = red.A, red.s
    dH, r = A.shape
    k = min(red.k, dH, r)  # beyond min(m, n) the (k) norm is the Frobenius norm
    # ||Z||_(k)^2 = ||Z^T||_(k)^2: put the smaller side in the semidefinite block.
    transpose = dH > r
    Gamma = cp.Variable((dH, r))
    Z = (A - Gamma).T if transpose else A - Gamma
    m, n = Z.shape
    Pm = cp.Variable((m, m), symmetric=True)
    q = cp.Variable()
    lmi = cp.bmat([[Pm + q * np.eye(m), Z], [Z.T, np.eye(n)]])
    constraints = [0.5 * (lmi + lmi.T) >> 0, Pm >> 0,
                   cp.sigma_max(Gamma @ np.diag(s)) <= red.rho]
    prob = cp.Problem(cp.Minimize(k * q + cp.trace(Pm)), constraints)
    opts = dict(options)
    if solver.upper() == "SCS":
        opts.setdefault("eps", max(tol, 1e-12))
        opts.setdefault("max_iters", 100000)
    status, iterations = "error", -1
    try:
        prob.solve(solver=solver, **opts)
        status = str(prob.status)
        stats = prob.solver_stats
        if stats is not None and stats.num_iters is not None:
            iterations = int(stats.num_iters)
        detail = ""
    except cp.error.SolverError as exc:
        detail = f": {exc}"
    G = Gamma.value if Gamma.value is not None else np.zeros_like(A)
    G, lower, upper = red.certify(np.asarray(G, dtype=np.float64))
    gap = relative_gap(upper, lower, red.zero_value)
    # A conic solver's "optimal" bounds residuals, not the objective: trust it only when the
    # point it returned is also certified.
    converged = status == cp.OPTIMAL and gap <= max(tol, CVXPY_CERTIFIED)
    message = (f"{solver} status {status!r}{detail}; certified relative gap {gap:.2e} "
               "at the returned point (made feasible)")
    if status == cp.OPTIMAL and not converged:
        message += (f" exceeds {max(tol, CVXPY_CERTIFIED):.0e}: the solver's accuracy is not "
                    "enough for this instance (its optimum is small against 1/2 ||Y||^2?)")
    return _Outcome(G, lower, upper, converged, iterations, message, status, [], [])
