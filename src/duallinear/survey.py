"""The duality-gap survey behind ``duallinear gaps``: random small instances, their verdicts.

Instances: H = 2, ``X = Q1 diag(sv) Q2^T`` of size 3 x 3 with singular values 1, ``1 / cond``
and one drawn log-uniformly between them, and Haar-random orthogonal ``Q1``, ``Q2``; Gaussian
``Y`` (3 x 3), a bottleneck ``k`` and ``gamma = frac * ||Y X^T||_op / H`` (``frac`` of the
value from which the zero network is optimal). Each instance is solved by
:func:`duallinear.solve_dual`; when its weights are not certified,
:func:`duallinear.prove_gap` decides (zero / gap / undecided).

The rows also carry the quantities the paper's hypothesis for strong duality (its Theorem 2,
"gamma below a minimal non-zero singular value") may refer to: the smallest non-zero singular
values of ``X``, ``Y``, ``Y X^T`` and of the least-squares map ``Y X^+``.

Pure functions returning dicts, plus the plot (matplotlib, imported lazily): this module is
part of the edge, like :mod:`duallinear.cli`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np

from .dual import solve_dual
from .gaps import prove_gap
from .problem import DeepLinearProblem
from .results import ConvergenceWarning, RecoveryWarning

__all__ = ["instance", "gap_row", "summarise", "plot", "SUMMARY_KEYS"]

#: Columns that define a group of the summary.
SUMMARY_KEYS = ("k", "cond", "frac")


def _haar(rng: np.random.Generator, d: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def instance(seed: int, *, k: int = 2, cond: float = 100.0, frac: float = 0.01,
             d: int = 3) -> DeepLinearProblem:
    """The survey's instance for ``seed`` (see the module docstring); ``cond = 1`` is whitened X.

    Examples
    --------
    >>> problem = instance(0, k=2, cond=100.0, frac=0.01)
    >>> problem.dims, round(float(problem.s[0] / problem.s[-1]), 6)
    ((3, 2, 3), 100.0)
    """
    rng = np.random.default_rng(seed)
    # Largest 1, smallest 1 / cond, the others log-uniform in between.
    sv = np.sort(np.concatenate(([1.0, 1.0 / cond],
                                 cond ** -rng.uniform(0.0, 1.0, d - 2))))[::-1]
    X = (_haar(rng, d) * sv) @ _haar(rng, d).T
    Y = rng.standard_normal((d, d))
    threshold = float(np.linalg.norm(Y @ X.T, 2)) / 2
    return DeepLinearProblem(X, Y, (k,), frac * threshold)


def _smallest_nonzero(M: np.ndarray) -> float:
    sv = np.linalg.svd(M, compute_uv=False)
    keep = sv[sv > sv[0] * max(M.shape) * np.finfo(float).eps] if sv.size and sv[0] > 0 else sv
    return float(keep[-1]) if keep.size else 0.0


def gap_row(seed: int, *, k: int = 2, cond: float = 100.0, frac: float = 0.01,
            time_limit: float = 20.0) -> dict:
    """Solve one instance and decide its duality gap; one row of the survey.

    Returns
    -------
    dict
        The instance (``seed``, ``k``, ``cond``, ``frac``, ``gamma``, ``rho``), the dual
        (``dual_status``, ``dual_value``, ``dual_upper``, ``dual_width`` relative,
        ``relaxed_rank``), the verdict (``verdict``, ``route``, ``primal_lower``,
        ``primal_upper``, ``proved_gap`` relative, ``apparent_gap``: ``(primal_upper -
        dual_upper) / primal_upper``), the work (``cells``, ``dual_time``, ``proof_time``) and
        the singular values the paper's hypothesis may refer to (``smin_x``, ``smin_y``,
        ``smin_yxt``, ``smin_ls``).
    """
    problem = instance(seed, k=k, cond=cond, frac=frac)
    X, Y = problem.X, problem.Y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RecoveryWarning)
        t0 = time.perf_counter()
        dual = solve_dual(problem)
        dual_time = time.perf_counter() - t0
        proof = prove_gap(problem, dual, time_limit=time_limit)
    scale = max(abs(proof.primal_upper), 1e-300)
    return {
        "seed": seed, "k": k, "cond": cond, "frac": frac, "gamma": problem.gamma,
        "rho": problem.rho,
        "dual_status": dual.status, "dual_value": dual.value, "dual_upper": dual.dual_upper,
        "dual_width": (dual.dual_upper - dual.value) / max(abs(dual.value), 1e-300),
        "relaxed_rank": dual.diagnostics.relaxed_rank,
        "verdict": proof.verdict, "route": proof.route, "primal_lower": proof.primal_lower,
        "primal_upper": proof.primal_upper, "proved_gap": proof.relative_gap,
        "apparent_gap": (proof.primal_upper - proof.dual_upper) / scale,
        "cells": proof.cells, "dual_time": dual_time, "proof_time": proof.time,
        "smin_x": _smallest_nonzero(X), "smin_y": _smallest_nonzero(Y),
        "smin_yxt": _smallest_nonzero(Y @ X.T),
        "smin_ls": _smallest_nonzero(Y @ np.linalg.pinv(X)),
    }


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Counts per ``(k, cond, frac)``: instances, verdicts, DR's ``"duality_gap"`` statuses,
    and the largest proved gap."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in SUMMARY_KEYS), []).append(row)
    out = []
    for key in sorted(groups):
        sel = groups[key]
        proved = [r["proved_gap"] for r in sel if r["verdict"] == "gap"]
        out.append({
            **dict(zip(SUMMARY_KEYS, key, strict=True)), "instances": len(sel),
            "zero": sum(r["verdict"] == "zero" for r in sel),
            "gap": len(proved),
            "undecided": sum(r["verdict"] == "undecided" for r in sel),
            "dr_duality_gap": sum(r["dual_status"] == "duality_gap" for r in sel),
            "max_proved_gap": max(proved, default=0.0),
            "max_apparent_gap": max((r["apparent_gap"] for r in sel if r["verdict"] == "gap"),
                                    default=0.0),
        })
    return out


def plot(summary: Sequence[dict], path) -> None:
    """Fraction of instances with a proved gap (and undecided) against ``frac``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, cond in sorted({(r["k"], r["cond"]) for r in summary}):
        sel = sorted((r for r in summary if (r["k"], r["cond"]) == (k, cond)),
                     key=lambda r: r["frac"])
        fracs = [r["frac"] for r in sel]
        line, = ax.semilogx(fracs, [100.0 * r["gap"] / r["instances"] for r in sel], "o-",
                            label=f"k={k}, cond(X)={cond:g}: gap proved")
        undecided = [100.0 * r["undecided"] / r["instances"] for r in sel]
        if any(undecided):
            ax.semilogx(fracs, undecided, "x:", color=line.get_color(),
                        label=f"k={k}, cond(X)={cond:g}: undecided")
    ax.set_xlabel("gamma / zero-network threshold ||Y X^T||_op / H")
    ax.set_ylabel("% of instances")
    ax.set_title("Non-zero duality gaps on random 3 x 3 instances (H = 2)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
