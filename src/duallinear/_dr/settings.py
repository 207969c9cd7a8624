"""Every tuned knob of the dual solvers, as data (frozen, validated at construction).

Each default carries the measurement behind it. Pass your own through
``solve_dual(problem, settings=DRSettings(...))`` (or ``SDPSettings`` for ``"cvxpy"``);
``dataclasses.replace`` derives variants.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["DRSettings", "SDPSettings"]


def _positive(value: object, name: str, *, integer: bool = False, zero: bool = False) -> None:
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a real number'}, "
                        f"got {value!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be {'>= 0' if zero else '> 0'} and finite, "
                         f"got {value!r}")


def _flag(value: object, name: str, *, none: bool = False) -> None:
    if value is None and none:
        return
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True{', False or None' if none else ' or False'}, "
                        f"got {value!r}")


@dataclass(frozen=True)
class DRSettings:
    """Settings of the Douglas-Rachford dual solver (``solve_dual(method="dr")``).

    Examples
    --------
    >>> from duallinear import DRSettings
    >>> DRSettings(primal_refine=False, check_every=10).check_every
    10
    """

    #: DR step ``t`` in normalised units; None: 1 on whitened X, else from ``schedule``.
    step: float | None = None
    #: Over-relaxation ``lam`` in (0, 2).
    relaxation: float = 1.5
    #: Leading singular triplets instead of full SVDs inside the general-X iteration; None:
    #: from ``min(dH, rank X) >= partial_min_dim``.
    partial_svd: bool | None = None
    #: Try a certificate through a local primal refinement at the iterations ``refine_at``.
    primal_refine: bool = True

    #: (step t, c) pairs tried in turn on general X while the previous one stalls; the graph
    #: scaling is ``w = c / rho`` (normalised units), which puts the ball at radius ``c``.
    #: Chosen from a grid over t in {0.3, 1, 3}, c in {0.03, 0.1, 0.3} on Gaussian,
    #: rank-deficient and ill-conditioned X (condition numbers to 1e6) and the fuzzer's cases:
    #: (1, 0.1) converged on all of them within 145 iterations.
    schedule: tuple[tuple[float, float], ...] = (
        (1.0, 0.1), (0.3, 0.03), (3.0, 0.3), (3.0, 0.1), (1.0, 0.3), (0.3, 0.1))
    #: The general-X iteration checks its certificate every this many iterations (and at
    #: ``max_iter``); a check costs about one iteration.
    check_every: int = 5
    #: Iterations without halving the best certified gap after which a (t, w) pair counts
    #: as stalled and the next one restarts from the best point.
    stall_window: int = 150
    #: Relative fixed-point residual below which the iterate has converged to rounding
    #: level: if the certified gap then stops improving, more iterations cannot close it (the
    #: truncation is ambiguous - tied singular values at k - or the duality gap is real).
    stall_residual: float = 1e-13
    #: A converged iterate whose certified gap exceeds ``stall_far * tol`` stops the run at
    #: once (a duality gap); closer to ``tol`` the remaining (t, w) pairs are tried first.
    #: Measured on 11 instances with a duality gap: the other pairs found the same dual
    #: value to 10 digits after 2-5x more iterations.
    stall_far: float = 1e3
    #: Residual at which the iteration stops outright (nothing left to move).
    residual_floor: float = 1e-16
    #: An Anderson step whose residual exceeds this multiple of the best so far is undone
    #: (the plain iterate is taken instead and the memory cleared).
    fallback_ratio: float = 2.0

    #: Anderson memory on general X, and on iterates of more than ``anderson_large``
    #: entries: there the buffers' memory traffic outweighs the saved iterations (measured at
    #: d = 1000 and 2000: memory 5 was 1.5x faster than 10 for the same iterations).
    anderson_memory: int = 10
    anderson_memory_large: int = 5
    anderson_large: int = 2**20

    #: With ``partial_svd=None`` the general-X solver works with leading singular triplets
    #: once ``min(dH, r)`` reaches this size. Measured with the primal refinement certifying
    #: at the 2nd iteration (benchmarks/wide.py, rank-20 targets, one BLAS thread), full SVDs
    #: against leading triplets: 0.36 s vs 0.48 s at d = 600, 1.24 vs 1.61 at 1000, 4.07 vs
    #: 3.79 at 1500, 11.6 vs 7.3 at 2000.
    partial_min_dim: int = 1500
    #: Largest block of leading triplets, as a fraction of ``min(dH, r)``, before a proximal
    #: map falls back to a full SVD (beyond it subspace iteration costs more than LAPACK).
    partial_max_fraction: float = 0.25
    #: With leading triplets a check first estimates the gap from them, until the triplets
    #: have failed this many times in a row (the estimate would then cost extra).
    estimate_max_failures: int = 3
    #: Smallest ``min(dH, r)`` at which the general-X maps use an eigendecomposition of the
    #: Gram matrix instead of a full SVD (about half the cost at d = 200; per-call overhead
    #: dominates on small matrices).
    gram_min_dim: int = 64

    #: Iterations at which the primal refinement is tried (general X), until one succeeds.
    #: Measured at d = 100 and 200 (Gaussian X, square and 200 x 400, seeds 0-9: 40
    #: instances): from the 2nd iterate it certified 31; 7 more from the 6th, the first
    #: iterate whose own free block certifies them (the attempts before found the optimal
    #: M: see ``refine_mix``, which certifies 5 of them at the 3rd or 4th), where
    #: (2, 10, 70) took them to iteration 10 (DR alone needs 105-140 iterations for 1e-10).
    #: Since the first failed attempt is held and revisited through the 6th iterate, a fresh
    #: attempt at the 6th certified nothing more: without it, 100 Gaussian instances (d = 100,
    #: 150, 200; square and 200 x 400) and the 24 of ``duality_gap_survey.py`` ran with the
    #: same iterations and statuses, and one attempt less on the 24 + 10 that reached it
    #: (0.77-1.09 of the time, 0.96 in total).
    refine_at: tuple[int, ...] = (2, 70)
    #: From this ``min(dH, r)`` on, a refinement from ``Gamma = 0`` (the truncation of A) is
    #: tried before the first iteration when A has a gap at k: its k leading triplets settle
    #: to 1e-6 within 12 products and ``sigma_k >= refine_start_gap * sigma_{k+1}`` (targets of
    #: rank about k plus noise). Measured on benchmarks/cost_curve.py (rank-32 targets,
    #: k = 32; A's ratio about 4.8): from zero it certified d = 500..2000 to 4e-16 in 15-25
    #: evaluations, where DR's two iterations cost 0.5-0.8 SVDs of X and five iterate-sized
    #: buffers (and Anderson's). Gaussian targets at d = 200 have no gap at k (ratio about 1)
    #: and from zero never certified there (50-400 SVD-equivalents): those skip it.
    refine_start_min_dim: int = 500
    refine_start_gap: float = 2.0
    #: The refinement's preconditioner treats the curvature of entry (j, i) of R as
    #: ``refine_curvature * s_j^2 m_i + rho`` (m: the start's singular values). Measured on
    #: the 9 instances: 0.3-1 best, about 40 evaluations at d = 100 where a scale per row
    #: needed 50-75 and none 80-250.
    refine_curvature: float = 0.5
    #: The refinement's L-BFGS stops on these relative decreases in turn (warm-started)
    #: until its point is certified: the loose stop suffices on most Gaussian X (about 150
    #: evaluations -> 100 at d = 200), the second is rounding level.
    refine_ftol: tuple[float, ...] = (1e-13, 1e-16)
    #: A stage whose best certified gap is still above this (relative) ends the attempt: the
    #: later, tighter stages only polish a point already in its basin. Measured at d = 100
    #: and 200 (Gaussian X, 22 instances, refinements at iterations 1-12): the second stage
    #: certified from first-stage gaps of at most 1e-9; from 5e-5 and above (mostly the
    #: iterate's free block, not ``M``: see ``refine_mix``) it never changed the gap's first
    #: digit, at 8-26 evaluations and a certificate each time.
    refine_far: float = 1e-6
    #: Gradient tolerance and evaluation cap of each refinement L-BFGS run, and its memory.
    refine_gtol: float = 1e-9
    refine_max_eval: int = 3000
    refine_memory: int = 5
    #: A refined ``M`` whose smallest singular values fall below this fraction of the
    #: largest is taken to have lower rank than k (the rank bound inactive). On the survey's
    #: structured instances any value from 1e-6 to 1e-2 gave the same results.
    refine_drop: float = 1e-4
    #: Gradient-only quasi-Newton steps after the low-rank route's L-BFGS: its dual point
    #: ``A - N`` moves to first order with ``N``, and values alone resolve ``N`` only to about
    #: sqrt(eps). Measured: certified gaps 1e-9..1e-11 without, 1e-13..1e-16 with. (On the
    #: main route the same steps bought digits that were not needed, for 10-30% time.)
    refine_polish: int = 30
    #: When an attempt with ``M`` of rank k does not certify, the cause measured on Gaussian
    #: X was its dual point's free block, not ``M``: the failed attempts at the 2nd iterate
    #: of d = 200 square seeds 1, 3 and 200 x 400 seed 2 had the optimum's ``M`` to 1e-15 in
    #: value. So free blocks mixing the iterate's own (weight 1, the one tried first) with
    #: the one the truncation side gives (weight 0), with the weights ``refine_mix``, are
    #: tried too, each only when *ready*: it keeps the truncation's k-th value
    #: ``refine_ready`` (relative) above the rest (see ``_dr/refine.py``, :class:`Held`).
    #: The first failed attempt's ``M`` is then kept for ``refine_revisit`` iterations, at
    #: each of which the current iterate's mixed blocks are tested (norms only) and the
    #: readiest resumes the attempt from its point. Measured on those three: weight 0.75 was
    #: ready from the 4th, 5th and 3rd iterate, the iterate's own from the 6th, 6th and 3rd,
    #: 0.5 and below later or not by the 6th on two of them; each weight tested costs about
    #: 0.6 of an SVD per iterate. ``refine_mix=()`` keeps the iterate's block alone.
    refine_mix: tuple[float, ...] = (0.75,)
    #: The truncation's margin a ready block keeps. With the certificate's truncation taken
    #: in the refined point's subspaces (not LAPACK's of ``A - Gamma``) a margin of 5e-5
    #: certified as 1e-4 did, to 3e-11 at worst (Gaussian X, d = 100, 150, 200, seeds 0-19);
    #: below it the certified gap grows (a near tie: 1e-10 at 1e-5).
    refine_ready: float = 5e-5
    #: When no weight of ``refine_mix`` is ready but the readiest is within ``refine_near``
    #: (relative) of ready, the weight ``refine_near_mix`` is tested too: the readiest weight
    #: moves between 0.6 and 0.9 from one iterate to the next (measured on the 120 instances
    #: above, where 0.75 alone and 0.85 alone each came ready later than the other on some),
    #: and the second test costs about 0.5 of an SVD where it is made (10 of 253 tests
    #: there). ``refine_near = 0`` tests ``refine_mix`` alone.
    refine_near: float = 5e-4
    refine_near_mix: float = 0.9
    refine_revisit: int = 4
    #: Gradient-only steps (as ``refine_polish``) when a revisit resumes a held point: the
    #: certified gap grows with the stationarity residual of ``M`` over the ready margin.
    #: Measured at d = 200 with LAPACK's truncation of ``A - Gamma`` (three instances):
    #: gaps 1.2e-10 with none, 9e-12 with 6. With the truncation taken in the refined
    #: point's subspaces (Gaussian X, d = 100, 150, 200, seeds 0-19): the largest gap of a
    #: revisit 2.7e-12 with none, 3.5e-13 with 1, 3.1e-13 with 3 or 6, at 20-30, 10 and 6
    #: fewer evaluations than 6 took (any steps lift the gradient stop); with none the
    #: rounding bound took a second SVD on one more instance (d = 200 square seed 3).
    refine_revisit_polish: int = 1
    #: On the two-sided track, one refinement at the first check whose shadow ``N`` has at
    #: most ``k`` moving values (the relaxation looks tight there), besides ``refine_at``.
    #: Measured on square Gaussian X (d = 100, 150, 200; seeds 0-19): on the five instances
    #: without a duality gap that no refinement at 2 or 6 certified, the attempt there
    #: certified at iterations 30-45 instead of 50-65 (0.65-0.87 of the time); the other 55
    #: (19 with a gap, whose rank stays above k) ran exactly as before.
    refine_on_rank: bool = True
    #: Certify a refined candidate with a bound on its norm in the ball (through the free
    #: block's Gram bound and the factors of ``M``: ``_dr.refine.candidate_norm``, about 1e-12
    #: above the norm) instead of all its singular values. Measured on the Gaussian instances
    #: of ``benchmarks/svd_equivalents.py`` at d = 200 (the seven without a duality gap):
    #: 0.97-0.99 of the time (best of 5, interleaved; 0.97-1.01 best of 3 with
    #: ``--against refine_norm_bound=False``); on 120 Gaussian
    #: instances (d = 100, 150, 200; seeds 0-19) the same iterations, statuses and
    #: evaluations, certified gaps within 1e-12 of the exact norm's.
    refine_norm_bound: bool = True

    #: Bound the dual optimum from both sides on general X once ``two_sided_from`` iterations
    #: passed without a certificate, and stop with status ``"duality_gap"`` when the interval
    #: meets ``tol`` while the relaxed minimiser has rank above k (see ``_dr/twosided.py``).
    two_sided: bool = True
    #: First iteration of the two-sided track: after the refinement at 2 and its revisits
    #: through the 6th, which certify most Gaussian instances that have no duality gap (38 of
    #: 40 at d = 100 and 200). From 7 instead of 10, the 6 instances with a gap at d = 200
    #: (seeds 0-9) were decided at the same iteration or 5 earlier.
    two_sided_from: int = 7
    #: (step t, c) of the two-sided track, warm-started from the current primal-dual pair, and
    #: its Anderson memory (iterates above ``anderson_large`` entries keep
    #: ``anderson_memory_large``); None keeps the current pair. Measured on the square Gaussian
    #: instances with a duality gap at d = 200 (seeds 0, 2), pairs of t in {0.1, .., 1} and
    #: c in {0.03, .., 0.3}, memory 10 or 20: (0.3, 0.07) with memory 20 pinned D* to 1e-9
    #: after 70 iterations from zero, (1, 0.1) only to 1e-7 after 120.
    two_sided_pair: tuple[float, float] | None = (0.3, 0.07)
    two_sided_memory: int = 20
    #: Singular values of the relaxed minimiser below this fraction of the largest do not
    #: count in the rank signal (its rank above k).
    relaxed_drop: float = 1e-4

    def __post_init__(self) -> None:
        if self.step is not None:
            _positive(self.step, "step")
        _positive(self.relaxation, "relaxation")
        if not 0.0 < self.relaxation < 2.0:
            raise ValueError(f"relaxation must lie in (0, 2), got {self.relaxation}")
        _flag(self.partial_svd, "partial_svd", none=True)
        _flag(self.primal_refine, "primal_refine")
        _flag(self.two_sided, "two_sided")
        _flag(self.refine_on_rank, "refine_on_rank")
        _flag(self.refine_norm_bound, "refine_norm_bound")
        if self.two_sided_pair is not None:
            pair = self.two_sided_pair
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"two_sided_pair must be a pair (step, c) or None, got {pair!r}")
            _positive(pair[0], "two_sided_pair[0] (step)")
            _positive(pair[1], "two_sided_pair[1] (c)")
        if not isinstance(self.schedule, tuple) or not self.schedule:
            raise TypeError("schedule must be a non-empty tuple of (step, c) pairs, got "
                            f"{self.schedule!r}")
        for i, pair in enumerate(self.schedule):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"schedule[{i}] must be a pair (step, c), got {pair!r}")
            _positive(pair[0], f"schedule[{i}][0] (step)")
            _positive(pair[1], f"schedule[{i}][1] (c)")
        for name in ("check_every", "stall_window", "anderson_memory", "anderson_memory_large",
                     "anderson_large", "partial_min_dim", "estimate_max_failures",
                     "gram_min_dim", "refine_max_eval", "refine_memory", "two_sided_from",
                     "refine_start_min_dim",
                     "two_sided_memory"):
            _positive(getattr(self, name), name, integer=True)
        _positive(self.refine_polish, "refine_polish", integer=True, zero=True)
        for name in ("stall_residual", "stall_far", "fallback_ratio", "partial_max_fraction",
                     "refine_curvature", "refine_drop", "relaxed_drop", "refine_start_gap",
                     "refine_far"):
            _positive(getattr(self, name), name)
        for name in ("residual_floor", "refine_gtol"):
            _positive(getattr(self, name), name, zero=True)
        if not isinstance(self.refine_at, tuple):
            raise TypeError(f"refine_at must be a tuple of iterations, got {self.refine_at!r}")
        for i, it in enumerate(self.refine_at):
            _positive(it, f"refine_at[{i}]", integer=True)
        if not isinstance(self.refine_mix, tuple):
            raise TypeError(f"refine_mix must be a tuple of weights, got {self.refine_mix!r}")
        for i, mix in enumerate(self.refine_mix):
            _positive(mix, f"refine_mix[{i}]", zero=True)
            if mix > 1.0:
                raise ValueError(f"refine_mix[{i}] must lie in [0, 1], got {mix}")
        _positive(self.refine_ready, "refine_ready", zero=True)
        _positive(self.refine_near, "refine_near", zero=True)
        _positive(self.refine_near_mix, "refine_near_mix", zero=True)
        if self.refine_near_mix > 1.0:
            raise ValueError(f"refine_near_mix must lie in [0, 1], got {self.refine_near_mix}")
        if self.refine_ready >= 1.0:
            raise ValueError(f"refine_ready must lie in [0, 1), got {self.refine_ready}")
        _positive(self.refine_revisit, "refine_revisit", integer=True, zero=True)
        _positive(self.refine_revisit_polish, "refine_revisit_polish", integer=True, zero=True)
        if not isinstance(self.refine_ftol, tuple) or not self.refine_ftol:
            raise TypeError(f"refine_ftol must be a non-empty tuple, got {self.refine_ftol!r}")
        for i, ftol in enumerate(self.refine_ftol):
            _positive(ftol, f"refine_ftol[{i}]", zero=True)

    def anderson_memory_for(self, size: int) -> int:
        """Anderson memory for an iterate of ``size`` entries."""
        return self.anderson_memory if size <= self.anderson_large else self.anderson_memory_large

    def uses_partial(self, min_dim: int) -> bool:
        """Whether leading triplets replace full SVDs for ``min(dH, r) = min_dim``."""
        return bool(self.partial_svd) if self.partial_svd is not None else (
            min_dim >= self.partial_min_dim)


@dataclass(frozen=True)
class SDPSettings:
    """Settings of the CVXPY reference path (``solve_dual(method="cvxpy")``)."""

    #: CVXPY solver name.
    solver: str = "SCS"
    #: Extra keyword arguments for ``cvxpy.Problem.solve``.
    solver_options: dict = field(default_factory=dict)
    #: Certified relative gap a CVXPY answer must reach (besides the solver's "optimal"
    #: status) to count as converged; SCS typically certifies 1e-9 to 1e-11 here.
    certified: float = 1e-6

    def __post_init__(self) -> None:
        if not isinstance(self.solver, str):
            raise TypeError("solver must be a CVXPY solver name (str), got "
                            f"{type(self.solver).__name__}")
        if not isinstance(self.solver_options, dict):
            raise TypeError("solver_options must be a dict, got "
                            f"{type(self.solver_options).__name__}")
        _positive(self.certified, "certified")


def field_names(cls: type) -> tuple[str, ...]:
    """Names of a settings class's fields."""
    return tuple(f.name for f in fields(cls))
