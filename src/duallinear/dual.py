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

from ._linalg import svd, svdvals
from ._validation import as_nonneg_scalar, as_positive_int
from .certificates import (
    _certify,
    _make_feasible,
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

    def zero_is_optimal(self) -> bool:
        """``||A diag(s)||_op <= rho``: then ``Gamma = A`` is feasible and ``D(A) = P(0)``."""
        return self.A.size == 0 or float(svdvals(self.A * self.s)[0]) <= self.rho


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

    Returns
    -------
    DualResult
        ``value`` is always the dual objective at a feasible point, hence a valid lower bound
        on the primal optimum even when ``converged`` is False.
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

    red = _Reduced.of(problem)
    t0 = time.perf_counter()
    if method == "dr":
        out = _dr(red, tol, max_iter, step, relaxation, whitened=problem.is_whitened)
    else:
        out = _cvxpy(red, tol, solver, solver_options or {})
    elapsed = time.perf_counter() - t0

    Gamma = out.Gamma * red.a
    Lambda = (Gamma * problem.s) @ problem.U.T
    result = DualResult(
        method=method, Lambda=Lambda, Gamma=Gamma, value=out.lower * red.a**2,
        converged=out.converged, iterations=out.iterations, message=out.message, time=elapsed,
        upper_bound=out.upper * red.a**2,
        relative_gap=relative_gap(out.upper, out.lower, red.zero_value), status=out.status,
        residuals=np.asarray(out.residuals), gaps=np.asarray(out.gaps),
    )
    if not result.converged:
        warnings.warn(f"solve_dual({method!r}) did not converge: {result.message}",
                      ConvergenceWarning, stacklevel=2)
    return result


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
        whitened: bool) -> _Outcome:
    if red.rho == 0.0:
        # gamma = 0: Gamma = 0 is the only feasible point (reduced-rank regression).
        return _finish(*red.certify(np.zeros_like(red.A)), "exact", 0, [], [], tol, max_iter,
                       red)
    if red.zero_is_optimal():
        # Exact: Gamma = A is feasible and attains P(0) = 1/2 ||Y||^2 (MATH.md section 6).
        Gamma, lower, upper = red.certify(red.A.copy())
        return _Outcome(Gamma, lower, upper, True, 0,
                        "zero network optimal (||Y X^T||_op <= rho): Gamma = A is exact",
                        "converged", [], [relative_gap(upper, lower, red.zero_value)])
    if whitened:
        return _dr_whitened(red, tol, max_iter, step if step else 1.0, lam)
    return _dr_product(red, tol, max_iter, step, lam)


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

    @property
    def ws(self) -> np.ndarray:
        return self.w * self.red.s

    def graph(self, z: np.ndarray) -> np.ndarray:
        """Gamma-part of the projection of ``z = (zG, zP)`` onto the graph."""
        ws = self.ws
        return (z[0] + ws * z[1]) / (1.0 + ws * ws)

    def start(self, Gamma: np.ndarray) -> np.ndarray:
        return np.stack([Gamma, self.ws * Gamma])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        red, ws = self.red, self.ws
        xG = self.graph(z)
        xP = ws * xG
        vG, vP = 2.0 * xG - z[0], 2.0 * xP - z[1]
        U, sv, Vt = svd(red.A - vG)
        yG = red.A - (U * _truncated(sv, red.k, self.t)) @ Vt
        U, sv, Vt = svd(vP)
        yP = (U * _ball(sv, self.w * red.rho)) @ Vt
        return z + self.lam * np.stack([yG - xG, yP - xP])


class _Anderson:
    """Type-II Anderson acceleration of a fixed-point map ``z -> z + f(z)``.

    Keeps the last ``memory`` differences of iterates and residuals in preallocated ring
    buffers, so a step costs two matrix-vector products with an ``(memory, size)`` array.
    """

    def __init__(self, memory: int, size: int):
        self.memory = memory
        self.dZ = np.zeros((memory, size))
        self.dF = np.zeros((memory, size))
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.prev: tuple[np.ndarray, np.ndarray] | None = None

    def step(self, z: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Next point from the current ``z`` and its residual ``f = T(z) - z`` (flat)."""
        if self.memory == 0:
            return z + f
        if self.prev is not None:
            slot = self.count % self.memory
            self.dZ[slot] = z - self.prev[0]
            self.dF[slot] = f - self.prev[1]
            self.count += 1
        self.prev = (z, f)
        m = min(self.count, self.memory)
        if m == 0:
            return z + f
        dF, dZ = self.dF[:m], self.dZ[:m]
        gram = dF @ dF.T
        gram += (1e-10 * np.trace(gram) / m + 1e-300) * np.eye(m)
        try:
            coef = np.linalg.solve(gram, dF @ f)
        except np.linalg.LinAlgError:
            self.reset()
            return z + f
        return z + f - coef @ (dZ + dF)


def _dr_product(red: _Reduced, tol: float, max_iter: int, step: float | None, lam: float,
                memory: int = 10) -> _Outcome:
    schedule = ((step, DR_SCHEDULE[0][1]),) if step else DR_SCHEDULE
    residuals: list[float] = []
    gaps: list[float] = []
    Gamma0 = np.zeros_like(red.A)
    best: tuple[np.ndarray, float, float, float] | None = None
    it, status = 0, "max_iter"
    for index, (t, c) in enumerate(schedule):
        T = _ProductSpace(red, t, c / red.rho, lam)
        last = index == len(schedule) - 1
        z = T.start(Gamma0)
        accel = _Anderson(memory, z.size)
        best_res, last_plain = np.inf, None
        since_improved = 0
        while it < max_iter:
            it += 1
            Tz = T(z)
            f = (Tz - z).ravel()
            res = float(np.linalg.norm(f))
            residuals.append(res / max(float(np.linalg.norm(z)), 1.0))
            if last_plain is not None and res > 2.0 * best_res:
                # The accelerated point made things worse: fall back to the plain iterate.
                z, last_plain = last_plain, None
                accel.reset()
                continue
            best_res = min(best_res, res)
            last_plain = Tz
            z = accel.step(z.ravel(), f).reshape(z.shape)
            if it % 5 == 0 or it == max_iter:
                Gamma, lower, upper = red.certify(T.graph(Tz))
                gaps.append(relative_gap(upper, lower, red.zero_value))
                if best is None or gaps[-1] < best[3] * 0.5:
                    since_improved = 0
                else:
                    since_improved += 5
                if best is None or gaps[-1] < best[3]:
                    best = (Gamma, lower, upper, gaps[-1])
                if _met(gaps[-1], tol):
                    return _finish(*best[:3], "converged", it, residuals, gaps, tol, max_iter,
                                   red)
                if since_improved >= 150 and (not last or residuals[-1] < STALL_RESIDUAL):
                    # No progress with this (t, w): the next one restarts from the best point
                    # (and may land on another dual optimum, which can break a tie at k).
                    status = "stalled" if last else status
                    break
            if residuals[-1] < 1e-16:
                status = "stalled" if last else status
                break
        if it >= max_iter or status == "stalled":
            break
        Gamma0 = best[0] if best is not None else T.graph(z)
    if best is None:
        best = (*red.certify(Gamma0), np.inf)
    return _finish(*best[:3], status, it, residuals, gaps, tol, max_iter, red)


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
                   "tied singular values at k, or a non-zero duality gap (recover() polishes)")
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
