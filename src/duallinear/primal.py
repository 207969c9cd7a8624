r"""The primal problem [(1)][eq-primal]: objective, exact gradients and multi-restart local
search.

``P(W_1..W_H) = 1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i ||W_i||_{S_H}^H``; with several
branches or weight decay (``DeepLinearProblem(branches=, penalty=)``) the network is
``sum_b W_{H,b}..W_{1,b} X`` and the penalty runs over every layer of every branch
(:mod:`duallinear._network`).

Everything is evaluated on the reduced data of :mod:`duallinear.problem`:
``||W_H..W_1 X - Y||^2 = ||W_H..W_1 U diag(s) - A||^2 + residual_sq``, so one evaluation costs
``O(H d^2 r)`` whatever the number of samples.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from . import _network as network
from ._linalg import svd
from ._optional import require
from ._reduced import Reduced
from ._threads import limit_allowed, one_blas_thread
from ._validation import as_matrix, as_nonneg_scalar, as_positive_int, check_callback
from .problem import DeepLinearProblem, check_problem
from .results import ConvergenceWarning, PrimalResult

__all__ = ["objective", "gradient", "end_to_end", "solve_primal", "PRIMAL_METHODS"]

PRIMAL_METHODS = ("lbfgs", "gd")


# ------------------------------------------------------------------- value and gradient
def _schatten_power(W: np.ndarray, H: int) -> tuple[float, np.ndarray]:
    """``||W||_{S_H}^H`` and its gradient ``H U diag(s^(H-1)) V^T``."""
    if W.size == 0:
        return 0.0, np.zeros_like(W)
    if H == 2:
        return float(np.sum(W * W)), 2.0 * W
    if H == 4:
        WtW = W.T @ W
        return float(np.sum(WtW * WtW)), 4.0 * (W @ WtW)
    U, s, Vt = svd(W)
    return float(np.sum(s**H)), (U * (H * s ** (H - 1))) @ Vt


def _value_and_grad(weights: list[np.ndarray], B0: np.ndarray, A: np.ndarray, gamma: float,
                    const: float) -> tuple[float, list[np.ndarray]]:
    """Objective and gradients on reduced data ``B0 = U diag(s)`` (d0, r), ``A`` (dH, r)."""
    H = len(weights)
    Z = [B0]
    for W in weights:
        Z.append(W @ Z[-1])
    R = Z[-1] - A
    value = 0.5 * float(np.sum(R * R)) + const
    grads: list[np.ndarray] = [np.empty(0)] * H
    G = R
    for i in range(H - 1, -1, -1):
        grads[i] = G @ Z[i].T
        G = weights[i].T @ G
    if gamma > 0.0:
        for i, W in enumerate(weights):
            reg, dreg = _schatten_power(W, H)
            value += gamma * reg
            grads[i] = grads[i] + gamma * dreg
    return value, grads


def _chain_value(weights: list[np.ndarray], B0: np.ndarray, A: np.ndarray, gamma: float,
                 const: float) -> float:
    """The value of :func:`_value_and_grad` alone, with the last layer's product and its
    residual formed a block of rows at a time (no ``(dH, r)`` temporaries)."""
    H = len(weights)
    Z = B0
    for W in weights[:-1]:
        Z = W @ Z
    last = weights[-1]
    step = max(1, (1 << 18) // max(A.shape[1], 1))
    parts = []
    for i in range(0, A.shape[0], step):
        R = last[i:i + step] @ Z
        R -= A[i:i + step]
        parts.append(float(np.sum(R * R)))
    value = 0.5 * math.fsum(parts) + const
    if gamma > 0.0:
        for W in weights:
            value += gamma * _schatten_power(W, H)[0]
    return value


def _evaluate(problem: DeepLinearProblem, weights: list, const: float) -> tuple[float, list]:
    """Value and gradients at validated ``weights``, the gradients shaped like them."""
    B0 = problem.U * problem.s
    if problem.is_chain:
        return _value_and_grad(weights, B0, problem.A, problem.gamma, const)
    branches = weights if problem.branches > 1 else [weights]
    value, grads = network.value_and_grad(network.stack(branches), B0, problem.A,
                                          problem.gamma, const, problem.penalty)
    out = network.unstack(grads)
    return value, out if problem.branches > 1 else out[0]


def objective(problem: DeepLinearProblem, weights: list) -> float:
    """Objective [(1)][eq-primal] at ``weights``.

    Parameters
    ----------
    problem : DeepLinearProblem
    weights : list of ndarray, or list of lists of ndarray
        ``[W_1, .., W_H]`` with ``W_i`` of shape ``(d_i, d_{i-1})``; with ``B > 1`` branches
        a list of ``B`` such lists.

    Returns
    -------
    float
        ``1/2 ||W_H..W_1 X - Y||_F^2 + gamma sum_i ||W_i||_{S_H}^H``; with branches the
        network is ``sum_b W_{H,b}..W_{1,b} X`` and the penalty runs over all branches
        (``||W||_F^2`` in place of ``||W||_{S_H}^H`` for ``penalty="frobenius"``).

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> weights = [np.zeros((2, 4)), np.zeros((3, 2))]
    >>> bool(np.isclose(dl.objective(problem, weights), problem.zero_value))  # zero network
    True
    """
    check_problem(problem)
    weights = problem.check_weights(weights)
    with np.errstate(over="ignore", invalid="ignore"):
        if problem.is_chain:
            value = _chain_value(weights, problem.U * problem.s, problem.A, problem.gamma,
                                 0.5 * problem.residual_sq)
        else:
            value, _ = _evaluate(problem, weights, 0.5 * problem.residual_sq)
    _check_finite(value, _layers(problem, weights))
    return value


def _layers(problem: DeepLinearProblem, weights: list) -> list[np.ndarray]:
    """Every layer of every branch, in one flat list."""
    return weights if problem.branches == 1 else [W for branch in weights for W in branch]


def _check_finite(value: object, weights: list[np.ndarray]) -> None:
    if not np.all(np.isfinite(value)):
        largest = max((float(np.max(np.abs(W))) for W in weights if W.size), default=0.0)
        raise ValueError(
            f"weights: the objective or its gradient overflows float64 at these weights "
            f"(largest entry {largest:.3g}); rescale them")


def gradient(problem: DeepLinearProblem, weights: list) -> list:
    """Exact gradient of objective [(1)][eq-primal]: one array per layer (per branch), shaped
    as ``weights``.

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> [g.shape for g in dl.gradient(problem, [np.ones((2, 4)), np.ones((3, 2))])]
    [(2, 4), (3, 2)]
    """
    check_problem(problem)
    weights = problem.check_weights(weights)
    with np.errstate(over="ignore", invalid="ignore"):
        value, grads = _evaluate(problem, weights, 0.0)
    flat = _layers(problem, grads)
    _check_finite([value, *(float(np.max(np.abs(g), initial=0.0)) for g in flat)],
                  _layers(problem, weights))
    return grads


def end_to_end(weights: Sequence[object]) -> np.ndarray:
    """The end-to-end map ``M = W_H .. W_1`` of a deep linear network.

    Parameters
    ----------
    weights : sequence of array_like
        ``[W_1, .., W_H]``, ``W_i`` of shape ``(d_i, d_{i-1})`` (numpy arrays, or any array
        with ``__array__`` or ``__dlpack__``).

    Returns
    -------
    ndarray, shape (d_H, d_0)

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> dl.end_to_end([np.ones((2, 3)), np.eye(2), np.ones((1, 2))])
    array([[2., 2., 2.]])
    """
    if isinstance(weights, (str, bytes, np.ndarray)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a list of matrices [W_1, .., W_H], got "
                        f"{type(weights).__name__}")
    if len(weights) == 0:
        raise ValueError("weights must hold at least one matrix")
    M = previous = None
    for i, W in enumerate(weights):
        W = as_matrix(W, f"weights[{i}] (W_{i + 1})", allow_empty=True)
        if previous is not None and W.shape[1] != previous[0]:
            raise ValueError(
                f"weights[{i}] (W_{i + 1}) must have {previous[0]} columns to follow W_{i} "
                f"of shape {previous}, got shape {W.shape}")
        M, previous = (W if M is None else W @ M), W.shape
    return M


# ------------------------------------------------------------------ normalised problem
@dataclass(frozen=True)
class _Scaled:
    """The problem in units where ``s_max = 1`` and ``||A||_op`` is about 1.

    With ``X' = X/b``, ``Y' = Y/a``, ``gamma' = gamma/(a b)`` the optimum is ``P*/a^2`` and
    the weights are ``W_i (b/a)^(1/H)``: the optimiser then sees values and gradients of order
    one whatever the scale of the data. (Weight decay scales as ``(a/b)^(2/H) / a^2``.)
    Other than one Schatten chain (``stacked``), ``theta`` holds each layer's weights of all
    ``branches`` as one stack (:mod:`duallinear._network`).
    """

    B0: np.ndarray
    A: np.ndarray
    gamma: float
    const: float
    shapes: tuple[tuple[int, int], ...]
    a: float
    b: float
    branches: int = 1
    penalty: str = "schatten"
    stacked: bool = False

    @classmethod
    def of(cls, problem: DeepLinearProblem) -> _Scaled:
        red = Reduced.of(problem)
        if problem.is_chain:
            return cls(B0=problem.U * red.s, A=red.A, gamma=red.gamma,
                       const=0.5 * red.residual_sq, shapes=tuple(problem.weight_shapes),
                       a=red.a, b=red.b)
        gamma = (red.gamma if problem.is_schatten else
                 problem.gamma * (red.a / red.b) ** (2.0 / problem.depth) / red.a**2)
        return cls(B0=problem.U * red.s, A=red.A, gamma=gamma, const=0.5 * red.residual_sq,
                   shapes=tuple(problem.weight_shapes), a=red.a, b=red.b,
                   branches=problem.branches, penalty=problem.penalty, stacked=True)

    @property
    def layer_factor(self) -> float:
        """``W_i = W'_i * layer_factor`` maps normalised weights back."""
        return (self.a / self.b) ** (1.0 / len(self.shapes))

    def unpack(self, theta: np.ndarray) -> list[np.ndarray]:
        if self.stacked:
            out, start, B = [], 0, self.branches
            for m, n in self.shapes:
                out.append(theta[start:start + B * m * n].reshape(B, m, n))
                start += B * m * n
            return out
        out, start = [], 0
        for m, n in self.shapes:
            out.append(theta[start:start + m * n].reshape(m, n))
            start += m * n
        return out

    def pack(self, weights: list) -> np.ndarray:
        """Validated weights of the problem -> ``theta`` in these units."""
        if self.stacked:
            weights = network.stack(weights if self.branches > 1 else [weights])
        return np.concatenate([W.ravel() for W in weights]) / self.layer_factor

    def weights(self, theta: np.ndarray) -> list:
        """``theta`` -> weights of the problem, in its units and structure."""
        layers = [W * self.layer_factor for W in self.unpack(theta)]
        if not self.stacked:
            return layers
        branches = network.unstack(layers)
        return branches if self.branches > 1 else branches[0]

    def fun(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        # A diverging search may overflow: report +inf (the searches treat it as failure).
        with np.errstate(over="ignore", invalid="ignore"):
            if self.stacked:
                value, grads = network.value_and_grad(self.unpack(theta), self.B0, self.A,
                                                      self.gamma, self.const, self.penalty)
            else:
                value, grads = _value_and_grad(self.unpack(theta), self.B0, self.A,
                                               self.gamma, self.const)
            grad = np.concatenate([g.ravel() for g in grads])
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return np.inf, np.zeros_like(theta)
        return value, grad


# ----------------------------------------------------------------------- local methods
@dataclass(frozen=True)
class _Run:
    theta: np.ndarray
    value: float
    converged: bool
    iterations: int
    message: str


def _lbfgs(sc: _Scaled, theta0: np.ndarray, max_iter: int, tol: float) -> _Run:
    res = scipy.optimize.minimize(
        sc.fun, theta0, jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter, "maxfun": 4 * max_iter, "gtol": tol,
                 "ftol": 1e-15, "maxcor": 30},
    )
    msg = res.message if isinstance(res.message, str) else res.message.decode()
    return _Run(res.x, float(res.fun), bool(res.success), int(res.nit), msg)


def _gd(sc: _Scaled, theta0: np.ndarray, max_iter: int, tol: float, lr: float | None) -> _Run:
    theta = theta0.copy()
    value, g = sc.fun(theta)
    step = 0.1 if lr is None else lr
    for it in range(1, max_iter + 1):
        gnorm = float(np.max(np.abs(g), initial=0.0))
        if gnorm <= tol:
            return _Run(theta, value, True, it - 1, f"gradient max-norm {gnorm:.2e} <= {tol:.1e}")
        if lr is not None:
            theta = theta - lr * g
            value, g = sc.fun(theta)
            if not np.isfinite(value):
                return _Run(theta, value, False, it, f"diverged at iteration {it} (lr={lr:g})")
            continue
        # Armijo backtracking, then let the step grow again.
        gg = float(np.dot(g, g))
        while True:
            cand = theta - step * g
            v_new, g_new = sc.fun(cand)
            if np.isfinite(v_new) and v_new <= value - 0.5 * step * gg:
                break
            step *= 0.5
            if step < 1e-20:
                return _Run(theta, value, False, it, "line search failed (step below 1e-20)")
        theta, value, g = cand, v_new, g_new
        step *= 1.5
    gnorm = float(np.max(np.abs(g), initial=0.0))
    return _Run(theta, value, gnorm <= tol, max_iter,
                f"reached max_iter={max_iter}; gradient max-norm {gnorm:.2e}")


def _run_restart(sc: _Scaled, theta0: np.ndarray, method: str, max_iter: int, tol: float,
                 lr: float | None, limit: bool = True) -> _Run:
    """One local search from ``theta0`` (a top-level function so joblib can ship it).

    BLAS runs on one thread inside a restart (unless ``limit`` is False): the products here
    are small, threads only add overhead (and oversubscribe the cores when restarts run in
    parallel), and a fixed summation order makes every restart's result independent of
    ``n_jobs``.
    """
    with one_blas_thread(limit):
        run = (_lbfgs(sc, theta0, max_iter, tol) if method == "lbfgs"
               else _gd(sc, theta0, max_iter, tol, lr))
    if not np.isfinite(run.value) and run.converged:
        # The search met only overflowing values: an infinite value with the zero gradient
        # reported for it would otherwise read as converged.
        return _Run(run.theta, run.value, False, run.iterations,
                    "the objective overflowed float64 (not finite) at the start or along the "
                    "search")
    return run


def _random_start(sc: _Scaled, rng: np.random.Generator, init_scale: float) -> np.ndarray:
    # Each layer with operator norm of order one in normalised units, so that the product
    # starts at the scale of the data and away from the degenerate saddle at zero.
    if sc.stacked:
        # B branches: each scaled by B^(-1/(2H)) so that their sum has the scale of one.
        scale = init_scale * sc.branches ** (-0.5 / len(sc.shapes))
        return np.concatenate([rng.standard_normal(sc.branches * m * n) *
                               (scale / np.sqrt(max(m, n))) for m, n in sc.shapes])
    parts = [rng.standard_normal(m * n) * (init_scale / np.sqrt(max(m, n)))
             for m, n in sc.shapes]
    return np.concatenate(parts)


def solve_primal(
    problem: DeepLinearProblem,
    *,
    restarts: int = 10,
    method: str = "lbfgs",
    seed: int | None = None,
    max_iter: int | None = None,
    tol: float = 1e-10,
    init: list[np.ndarray] | None = None,
    init_scale: float = 1.0,
    lr: float | None = None,
    n_jobs: int | None = None,
    callback: Callable[[int, float, bool], object] | None = None,
    blas_limit: bool = True,
) -> PrimalResult:
    """Minimise objective [(1)][eq-primal] by local search from random starts; keep the best.

    Parameters
    ----------
    problem : DeepLinearProblem
    restarts : int >= 1
        Number of independent local searches.
    method : {"lbfgs", "gd"}
        ``"lbfgs"``: scipy's L-BFGS-B with exact gradients. ``"gd"``: plain gradient descent,
        with a fixed learning rate ``lr`` if given, else an Armijo backtracking step.
    seed : int or numpy.random.Generator, optional
        Seed of the random starts; restart ``j`` draws from the ``j``-th child of
        ``numpy.random.SeedSequence(seed)``, so results do not depend on ``n_jobs``. A
        ``Generator`` gives the seed: one integer drawn from it (so it advances), reported
        as ``result.seed``, with which the same starts can be drawn again.
    max_iter : int, optional
        Iterations per restart (default 20000 for L-BFGS, 10000 for GD).
    tol : float
        Stopping tolerance on the largest gradient entry, in normalised units (data scaled to
        ``s_max(X) = 1``, ``||A||_op`` about 1).
    init : list of ndarray, optional
        Start of the first restart instead of a random point (e.g. to polish given weights).
    init_scale : float
        Scale of the random starts relative to the data (normalised units).
    lr : float, optional
        Fixed learning rate for ``"gd"`` in normalised units.
    n_jobs : int, optional
        Run restarts in parallel through joblib (``None`` or 1: sequentially; -1: all cores).
        Each restart uses one BLAS thread, so results do not depend on ``n_jobs`` (bit for bit
        with worker processes; to rounding when restarts share a process through threads);
        inside ``joblib.parallel_backend("dask")`` the restarts run on a Dask cluster.
        Needs joblib (``pip install "duallinear[cli]"``).
    callback : callable, optional
        ``callback(restart, value, converged)`` for each restart in order, with its final
        objective [(1)][eq-primal]: as each finishes, or, with ``n_jobs``, once all have.
    blas_limit : bool
        Each restart runs BLAS on one thread (default). ``False`` keeps the caller's
        threads, as does ``DUALLINEAR_BLAS_LIMIT=0`` in the environment; results may then
        depend on ``n_jobs`` to rounding.

    Returns
    -------
    PrimalResult

    Examples
    --------
    >>> import numpy as np, duallinear as dl
    >>> rng = np.random.default_rng(0)
    >>> problem = dl.DeepLinearProblem(rng.standard_normal((4, 10)), rng.standard_normal((3, 10)),
    ...                                hidden=(2,), gamma=0.1)
    >>> primal = dl.solve_primal(problem, restarts=3, seed=0)
    >>> primal.values.shape, bool(primal.value <= problem.zero_value)
    ((3,), True)
    """
    check_problem(problem)
    restarts = as_positive_int(restarts, "restarts")
    if method not in PRIMAL_METHODS:
        raise ValueError(f"method must be one of {PRIMAL_METHODS}, got {method!r}")
    if isinstance(seed, np.random.Generator):
        # One draw from the caller's generator: reported, and enough to redraw the starts.
        seed = int(seed.integers(2**63))
    elif seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got "
                            f"{type(seed).__name__} ({seed!r})")
        seed = as_positive_int(seed, "seed", minimum=0)
    check_callback(callback)
    if not isinstance(blas_limit, (bool, np.bool_)):
        raise TypeError(f"blas_limit must be a bool, got {type(blas_limit).__name__}")
    limit = bool(blas_limit) and limit_allowed()
    max_iter = as_positive_int(
        max_iter if max_iter is not None else (20000 if method == "lbfgs" else 10000),
        "max_iter")
    tol = as_nonneg_scalar(tol, "tol")
    init_scale = as_nonneg_scalar(init_scale, "init_scale")
    if lr is not None:
        lr = as_nonneg_scalar(lr, "lr")
        if lr == 0.0:
            raise ValueError("lr must be > 0")
    if n_jobs is not None:
        n_jobs = as_positive_int(n_jobs, "n_jobs", minimum=-1)
        if n_jobs == 0:
            raise ValueError("n_jobs must be >= 1, or -1 for all cores; got 0")
    sc = _Scaled.of(problem)
    children = np.random.SeedSequence(seed).spawn(restarts)
    starts = [_random_start(sc, np.random.default_rng(c), init_scale) for c in children]
    if init is not None:
        starts[0] = sc.pack(problem.check_weights(init, "init"))

    t0 = time.perf_counter()
    if n_jobs is None or n_jobs == 1:
        finished = (_run_restart(sc, x0, method, max_iter, tol, lr, limit) for x0 in starts)
    else:
        # A plain list: joblib 1.3's Dask backend rejects return_as="generator".
        joblib = require("joblib", "solve_primal(n_jobs=...)")
        finished = joblib.Parallel(n_jobs=n_jobs)(
            joblib.delayed(_run_restart)(sc, x0, method, max_iter, tol, lr, limit)
            for x0 in starts)
    runs = []
    for run in finished:
        runs.append(run)
        if callback is not None:
            callback(len(runs) - 1, run.value * sc.a**2, run.converged)
    elapsed = time.perf_counter() - t0

    values = np.array([r.value for r in runs]) * sc.a**2
    finite = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(finite))
    run = runs[best]
    weights = sc.weights(run.theta)
    value = objective(problem, weights) if np.isfinite(values[best]) else float(values[best])
    n_conv = sum(r.converged for r in runs)
    message = (f"best of {restarts} {method} restart(s) (#{best}): {run.message}; "
               f"{n_conv}/{restarts} restarts met the tolerance")
    if not run.converged:
        warnings.warn(f"solve_primal: best restart did not converge: {run.message}",
                      ConvergenceWarning, stacklevel=2)
    return PrimalResult(
        method=method, weights=weights, value=value, converged=run.converged,
        iterations=run.iterations, message=message, time=elapsed, values=values,
        restart_converged=np.array([r.converged for r in runs]), best_restart=best, seed=seed,
    )
