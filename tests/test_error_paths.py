"""Every public function and class rejects bad input with a clear, named error.

``ERROR_CASES`` maps each public name (of ``duallinear.__all__`` and of the ``__all__`` of every
public submodule listed there, such as ``duallinear.prox``) to calls that must raise
``TypeError`` or ``ValueError`` whose message names the offending argument. The table is
checked against ``__all__``: a new public name without an error-path case fails
``test_every_public_name_has_an_error_case``.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

import duallinear as dl
from duallinear import branches, distributed, prox

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 6))
Y = RNG.standard_normal((3, 6))
P = dl.DeepLinearProblem(X, Y, (2, 2), 0.1)
OTHER = dl.DeepLinearProblem(RNG.standard_normal((5, 6)), Y, (2,), 0.1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dl.ConvergenceWarning)
    DUAL = dl.solve_dual(P, max_iter=50)
    DUAL_OTHER = dl.solve_dual(OTHER, max_iter=50)
    warnings.simplefilter("ignore", dl.RecoveryWarning)
    REC = dl.recover(P, DUAL, polish=False)
W_OK = [np.zeros(s) for s in P.weight_shapes]
SOLUTION = dl.solve(P)
P2 = dl.DeepLinearProblem(X, Y, (2, 2), 0.1, branches=2)  # two branches
PF = dl.DeepLinearProblem(X, Y, (2, 2), 0.1, penalty="frobenius")  # weight decay, H = 3
PW = dl.DeepLinearProblem(np.eye(3), Y[:, :3], (1, 1), 0.0, penalty="frobenius")  # X = I
Z = RNG.standard_normal((3, 4))
S = np.array([3.0, 2.0, 1.0])
XXT, YXT, YY = X @ X.T, Y @ X.T, float(np.sum(Y * Y))


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    # Bad input must be rejected up front, not half-solved.
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.ConvergenceWarning)
        yield


Case = tuple[Callable[[], object], type | tuple[type, ...], str]


def _problem(**kw) -> dl.DeepLinearProblem:
    args = {"X": X, "Y": Y, "hidden": (2, 2), "gamma": 0.1}
    args.update(kw)
    return dl.DeepLinearProblem(**args)


def _stats(**kw) -> dl.DeepLinearProblem:
    args = {"XXt": XXT, "YXt": YXT, "YY": YY, "hidden": (2,), "gamma": 0.1}
    args.update(kw)
    return dl.DeepLinearProblem.from_statistics(**args)


NOT_A_PROBLEM = {"X": X, "Y": Y}

ERROR_CASES: dict[str, list[Case]] = {
    "DeepLinearProblem": [
        (lambda: _problem(X=None), TypeError, "X"),
        (lambda: _problem(X="abc"), TypeError, "X"),
        (lambda: _problem(X=X.astype(complex)), TypeError, "X"),
        (lambda: _problem(X=X[0]), ValueError, "X"),
        (lambda: _problem(X=np.zeros((0, 6))), ValueError, "X"),
        (lambda: _problem(X=np.where(X > 1, np.nan, X)), ValueError, "X"),
        (lambda: _problem(Y=np.array([["a"] * 6])), TypeError, "Y"),
        (lambda: _problem(Y=np.full((3, 6), np.inf)), ValueError, "Y"),
        (lambda: _problem(Y=Y[:, :5]), ValueError, "samples"),
        (lambda: _problem(hidden=()), ValueError, "hidden"),
        (lambda: _problem(hidden=3), TypeError, "hidden"),
        (lambda: _problem(hidden=(2, 0)), ValueError, r"hidden\[1\]"),
        (lambda: _problem(hidden=(2.5,)), TypeError, r"hidden\[0\]"),
        (lambda: _problem(gamma=-0.1), ValueError, "gamma"),
        (lambda: _problem(gamma=float("nan")), ValueError, "gamma"),
        (lambda: _problem(gamma="0.1"), TypeError, "gamma"),
        (lambda: _problem(gamma=True), TypeError, "gamma"),
        (lambda: _stats(XXt=XXT[:, :3]), ValueError, "XXt"),
        (lambda: _stats(XXt=XXT + np.triu(np.ones((4, 4)), 1)), ValueError, "XXt"),
        (lambda: _stats(XXt=-np.eye(4)), ValueError, "XXt"),
        (lambda: _stats(YXt=YXT[:, :3]), ValueError, "YXt"),
        (lambda: _stats(YY=-1.0), ValueError, "YY"),
        (lambda: _stats(YY=1e-3), ValueError, "YY"),
        (lambda: _stats(n=0), ValueError, "n"),
        (lambda: _stats(hidden=[]), ValueError, "hidden"),
        (lambda: P.with_gamma(-1.0), ValueError, "gamma"),
        (lambda: P.check_weights(np.zeros((2, 2))), TypeError, "weights"),
        (lambda: P.check_weights(W_OK[:2]), ValueError, "weights"),
        (lambda: P.check_weights([W_OK[0].T, *W_OK[1:]]), ValueError, r"weights\[0\]"),
        (lambda: _problem(branches=0), ValueError, "branches"),
        (lambda: _problem(branches=2.0), TypeError, "branches"),
        (lambda: _problem(penalty="l1"), ValueError, "penalty"),
        (lambda: _problem(penalty=None), TypeError, "penalty"),
        (lambda: _stats(branches=-1), ValueError, "branches"),
        (lambda: P2.check_weights(W_OK), ValueError, "branches"),
        (lambda: P2.check_weights(np.zeros((2, 2))), TypeError, "branches"),
        (lambda: P2.check_weights([W_OK, W_OK[:2]]), ValueError, r"weights\[1\]"),
        (lambda: P2.check_weights([W_OK, [W_OK[0].T, *W_OK[1:]]]), ValueError,
         r"weights\[1\]\[0\]"),
    ],
    "objective": [
        (lambda: dl.objective(NOT_A_PROBLEM, W_OK), TypeError, "problem"),
        (lambda: dl.objective(P2, W_OK), ValueError, "branches"),
        (lambda: dl.objective(P, W_OK[:-1]), ValueError, "weights"),
        (lambda: dl.objective(P, [*W_OK[:-1], np.zeros((3, 3))]), ValueError, r"weights\[2\]"),
        (lambda: dl.objective(P, [W_OK[0], None, W_OK[2]]), TypeError, r"weights\[1\]"),
    ],
    "gradient": [
        (lambda: dl.gradient(NOT_A_PROBLEM, W_OK), TypeError, "problem"),
        (lambda: dl.gradient(P, tuple(W_OK[:1])), ValueError, "weights"),
        (lambda: dl.gradient(P, "weights"), (TypeError, ValueError), "weights"),
        (lambda: dl.gradient(P2, [W_OK, W_OK, W_OK]), ValueError, "branches"),
    ],
    "solve_primal": [
        (lambda: dl.solve_primal(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: dl.solve_primal(P, restarts=0), ValueError, "restarts"),
        (lambda: dl.solve_primal(P, restarts=2.0), TypeError, "restarts"),
        (lambda: dl.solve_primal(P, method="newton"), ValueError, "method"),
        (lambda: dl.solve_primal(P, seed=-1), ValueError, "seed"),
        (lambda: dl.solve_primal(P, seed=1.5), TypeError, "seed"),
        (lambda: dl.solve_primal(P, max_iter=0), ValueError, "max_iter"),
        (lambda: dl.solve_primal(P, tol=-1.0), ValueError, "tol"),
        (lambda: dl.solve_primal(P, init=W_OK[:1]), ValueError, "init"),
        (lambda: dl.solve_primal(P2, init=W_OK), ValueError, "init"),
        (lambda: dl.solve_primal(P, init_scale=-1.0), ValueError, "init_scale"),
        (lambda: dl.solve_primal(P, method="gd", lr=0.0), ValueError, "lr"),
        (lambda: dl.solve_primal(P, n_jobs=0), ValueError, "n_jobs"),
        (lambda: dl.solve_primal(P, n_jobs=-2), ValueError, "n_jobs"),
        (lambda: dl.solve_primal(P, seed="0"), TypeError, "seed"),
        (lambda: dl.solve_primal(P, seed=True), TypeError, "seed"),
        (lambda: dl.solve_primal(P, callback=3), TypeError, "callback"),
        (lambda: dl.solve_primal(P, blas_limit="no"), TypeError, "blas_limit"),
    ],
    "solve_dual": [
        (lambda: dl.solve_dual(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: dl.solve_dual(P2), ValueError, "branches"),
        (lambda: dl.solve_dual(PF), ValueError, "penalty"),
        (lambda: dl.solve_dual(P, method="admm"), ValueError, "method"),
        (lambda: dl.solve_dual(P, tol=-1e-3), ValueError, "tol"),
        (lambda: dl.solve_dual(P, max_iter=0), ValueError, "max_iter"),
        (lambda: dl.solve_dual(P, max_iter=10.5), TypeError, "max_iter"),
        (lambda: dl.solve_dual(P, step=0.0), ValueError, "step"),
        (lambda: dl.solve_dual(P, step=-1.0), ValueError, "step"),
        (lambda: dl.solve_dual(P, relaxation=2.0), ValueError, "relaxation"),
        (lambda: dl.solve_dual(P, relaxation=0.0), ValueError, "relaxation"),
        (lambda: dl.solve_dual(P, solver_options=[("eps", 1)]), TypeError, "solver_options"),
        (lambda: dl.solve_dual(P, method="cvxpy", solver=3), TypeError, "solver"),
        (lambda: dl.solve_dual(P, partial_svd="auto"), TypeError, "partial_svd"),
        (lambda: dl.solve_dual(P, partial_svd=1), TypeError, "partial_svd"),
        (lambda: dl.solve_dual(P, primal_refine="yes"), TypeError, "primal_refine"),
        (lambda: dl.solve_dual(P, method="cvxpy", solver="NO_SUCH_SOLVER"), ValueError,
         "solver"),
        (lambda: dl.solve_dual(P, settings=dl.SDPSettings()), TypeError, "settings"),
        (lambda: dl.solve_dual(P, method="cvxpy", settings=dl.DRSettings()), TypeError,
         "settings"),
        (lambda: dl.solve_dual(P, callback="print"), TypeError, "callback"),
        (lambda: dl.solve_dual(P, blas_limit=1), TypeError, "blas_limit"),
    ],
    "verify": [
        (lambda: dl.verify(NOT_A_PROBLEM, [], DUAL), TypeError, "problem"),
        (lambda: dl.verify(P, [np.zeros((1, 1))], DUAL), ValueError, "weights"),
        (lambda: dl.verify(P, dl.recover_weights(P, DUAL), np.zeros((1, 1))), ValueError,
         "dual"),
        (lambda: dl.verify(P, dl.recover_weights(P, DUAL), DUAL, digits=10), ValueError,
         "digits"),
        (lambda: dl.verify(P, dl.recover_weights(P, DUAL), DUAL, digits=40.5), TypeError,
         "digits"),
        (lambda: dl.verify(P, dl.recover_weights(P, DUAL), DUAL, X=np.ones((2, 3))),
         ValueError, "X and Y"),
    ],
    "VerifiedCertificate": [
        (lambda: dl.VerifiedCertificate(1.0), TypeError, "dual"),
    ],
    "DRSettings": [
        (lambda: dl.DRSettings(relaxation=2.5), ValueError, "relaxation"),
        (lambda: dl.DRSettings(check_every=0), ValueError, "check_every"),
        (lambda: dl.DRSettings(check_every=2.5), TypeError, "check_every"),
        (lambda: dl.DRSettings(schedule=[(1.0, 0.1)]), TypeError, "schedule"),
        (lambda: dl.DRSettings(schedule=((1.0, -0.1),)), ValueError, "schedule"),
        (lambda: dl.DRSettings(refine_at=(2, 0)), ValueError, "refine_at"),
        (lambda: dl.DRSettings(refine_start_gap=0.0), ValueError, "refine_start_gap"),
        (lambda: dl.DRSettings(refine_mix=[0.75]), TypeError, "refine_mix"),
        (lambda: dl.DRSettings(refine_mix=(1.0, 1.5)), ValueError, r"refine_mix\[1\]"),
        (lambda: dl.DRSettings(refine_mix=("0.5",)), TypeError, r"refine_mix\[0\]"),
        (lambda: dl.DRSettings(refine_mix=(-0.5,)), ValueError, r"refine_mix\[0\]"),
        (lambda: dl.DRSettings(refine_ready=1.0), ValueError, "refine_ready"),
        (lambda: dl.DRSettings(refine_near=-1e-4), ValueError, "refine_near"),
        (lambda: dl.DRSettings(refine_near="0"), TypeError, "refine_near"),
        (lambda: dl.DRSettings(refine_near_mix=1.5), ValueError, "refine_near_mix"),
        (lambda: dl.DRSettings(refine_revisit=-1), ValueError, "refine_revisit"),
        (lambda: dl.DRSettings(refine_revisit=2.0), TypeError, "refine_revisit"),
        (lambda: dl.DRSettings(refine_start_min_dim=1.5), TypeError, "refine_start_min_dim"),
        (lambda: dl.DRSettings(partial_max_fraction=float("nan")), ValueError,
         "partial_max_fraction"),
        (lambda: dl.DRSettings(primal_refine=None), TypeError, "primal_refine"),
        (lambda: dl.DRSettings(refine_on_rank=1), TypeError, "refine_on_rank"),
        (lambda: dl.DRSettings(refine_norm_bound=None), TypeError, "refine_norm_bound"),
        (lambda: setattr(dl.DRSettings(), "step", 1.0), FrozenInstanceError, "step"),
    ],
    "SDPSettings": [
        (lambda: dl.SDPSettings(solver=1), TypeError, "solver"),
        (lambda: dl.SDPSettings(solver_options=[("eps", 1)]), TypeError, "solver_options"),
        (lambda: dl.SDPSettings(certified=0.0), ValueError, "certified"),
    ],
    "DualDiagnostics": [
        (lambda: setattr(DUAL.diagnostics, "maps_svd", 1), FrozenInstanceError, "maps_svd"),
    ],
    "recover": [
        (lambda: dl.recover(NOT_A_PROBLEM, DUAL), TypeError, "problem"),
        (lambda: dl.recover(P2, DUAL), ValueError, "branches"),
        (lambda: dl.recover(P, "dual"), TypeError, "dual"),
        (lambda: dl.recover(P, DUAL_OTHER), ValueError, "dual"),
        (lambda: dl.recover(P, DUAL, tol=-1.0), ValueError, "tol"),
        (lambda: dl.recover(P, DUAL, polish="yes"), TypeError, "polish"),
        (lambda: dl.recover(P, DUAL, blas_limit=None), TypeError, "blas_limit"),
    ],
    "Recovery": [
        (lambda: dl.Recovery(weights=W_OK), TypeError, "value"),
        (lambda: setattr(REC, "value", 0.0), FrozenInstanceError, "value"),
    ],
    "DeepLinearRegressor": [
        (lambda: dl.DeepLinearRegressor((2,), 0.1, penalty="frobenius").fit(X.T, Y.T),
         ValueError, "penalty"),
        (lambda: dl.DeepLinearRegressor((), 0.1).fit(X.T, Y.T), ValueError, "hidden"),
        (lambda: dl.DeepLinearRegressor((2,), -1.0).fit(X.T, Y.T), ValueError, "gamma"),
        (lambda: dl.DeepLinearRegressor((2,), 0.1).fit(X.T, Y.T[:5]), ValueError, "samples"),
        (lambda: dl.DeepLinearRegressor((2,), 0.1).fit(X.T, Y.T).predict(X), ValueError,
         "features"),
    ],
    "end_to_end": [
        (lambda: dl.end_to_end(np.zeros((2, 2))), TypeError, "weights"),
        (lambda: dl.end_to_end("W"), TypeError, "weights"),
        (lambda: dl.end_to_end([]), ValueError, "weights"),
        (lambda: dl.end_to_end([np.zeros((2, 3)), np.zeros((2, 3))]), ValueError,
         r"weights\[1\]"),
        (lambda: dl.end_to_end([None]), TypeError, r"weights\[0\]"),
        (lambda: dl.end_to_end([np.full((2, 2), np.nan)]), ValueError, r"weights\[0\]"),
    ],
    # duallinear.distributed
    "statistics": [
        (lambda: distributed.statistics(X, Y[:, :5]), ValueError, "samples"),
        (lambda: distributed.statistics(None, Y), TypeError, "X"),
    ],
    "statistics_from_chunks": [
        (lambda: distributed.statistics_from_chunks(3), TypeError, "chunks"),
        (lambda: distributed.statistics_from_chunks([(X, Y[:, :5])]), ValueError, "chunks"),
    ],
    "problem_from_dask": [
        (lambda: distributed.problem_from_dask(X, Y, (0,), 0.1), ValueError, "hidden"),
        (lambda: distributed.problem_from_dask(X, Y, (2,), -1.0), ValueError, "gamma"),
    ],
    "problem_from_chunks": [
        (lambda: distributed.problem_from_chunks([(X, Y * np.nan)], (2,), 0.1), ValueError,
         "Y_chunk"),
        (lambda: distributed.problem_from_chunks([(X, Y)], (2,), float("nan")), ValueError,
         "gamma"),
    ],
    "Statistics": [
        (lambda: distributed.Statistics(XXT, YXT, YY, -1), ValueError, "n"),
        (lambda: distributed.Statistics(XXT, YXT, -1.0, 6), ValueError, "YY"),
    ],
    "recover_weights": [
        (lambda: dl.recover_weights(NOT_A_PROBLEM, DUAL), TypeError, "problem"),
        (lambda: dl.recover_weights(P, None), TypeError, "dual"),
        (lambda: dl.recover_weights(OTHER, DUAL), ValueError, "dual"),
    ],
    "balanced_factors": [
        (lambda: dl.balanced_factors(None, (4, 2, 3)), TypeError, "M"),
        (lambda: dl.balanced_factors(Z[0], (4, 2, 3)), ValueError, "M"),
        (lambda: dl.balanced_factors(Z, (4, 3)), ValueError, "dims"),
        (lambda: dl.balanced_factors(Z, (5, 2, 3)), ValueError, "dims"),
        (lambda: dl.balanced_factors(Z, (4, 0, 3)), ValueError, "dims"),
        (lambda: dl.balanced_factors(Z, "dims"), TypeError, "dims"),
        # rank(Z) = 3 cannot pass through a width-1 layer.
        (lambda: dl.balanced_factors(Z, (4, 1, 3)), ValueError, "rank"),
    ],
    "duality_gap": [
        (lambda: dl.duality_gap(NOT_A_PROBLEM, W_OK, DUAL), TypeError, "problem"),
        (lambda: dl.duality_gap(P2, [W_OK, W_OK], DUAL), ValueError, "branches"),
        (lambda: dl.duality_gap(P, W_OK, "dual"), TypeError, "dual"),
        (lambda: dl.duality_gap(P, W_OK, DUAL_OTHER), ValueError, "dual"),
        (lambda: dl.duality_gap(P, W_OK[:2], DUAL), ValueError, "weights"),
    ],
    "dual_value": [
        (lambda: dl.dual_value(NOT_A_PROBLEM, DUAL.Lambda), TypeError, "problem"),
        (lambda: dl.dual_value(PF, DUAL.Lambda), ValueError, "penalty"),
        (lambda: dl.dual_value(P, DUAL.Lambda.T), ValueError, "Lambda"),
        (lambda: dl.dual_value(P, None), TypeError, "Lambda"),
        (lambda: dl.dual_value(P, np.full((3, 4), np.nan)), ValueError, "Lambda"),
    ],
    "relative_gap": [
        (lambda: dl.relative_gap("1.0", 0.5, 1.0), TypeError, "upper"),
        (lambda: dl.relative_gap(1.0, None, 1.0), TypeError, "lower"),
        (lambda: dl.relative_gap(float("nan"), 0.5, 1.0), ValueError, "upper"),
        (lambda: dl.relative_gap(1.0, 0.5, -1.0), ValueError, "zero_value"),
    ],
    "closed_form": [
        (lambda: dl.closed_form(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: dl.closed_form(PF), ValueError, "penalty"),
        (lambda: dl.closed_form(P), ValueError, "whitened"),
    ],
    "PrimalResult": [
        (lambda: dl.PrimalResult(method="lbfgs"), TypeError, "weights"),
        (lambda: setattr(dl.PrimalResult("gd", [], 0.0, True, 1, "", 0.0, np.zeros(1),
                                         np.ones(1, bool), 0), "value", 1.0),
         FrozenInstanceError, "value"),
    ],
    "DualResult": [
        (lambda: dl.DualResult(method="dr"), TypeError, "Lambda"),
        (lambda: setattr(DUAL, "value", 0.0), FrozenInstanceError, "value"),
    ],
    # duallinear.branches
    "solve": [
        (lambda: dl.solve(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: dl.solve(P, tol=-1.0), ValueError, "tol"),
        (lambda: dl.solve(P, restarts=0), ValueError, "restarts"),
        (lambda: dl.solve(P, restarts=1.5), TypeError, "restarts"),
        (lambda: dl.solve(P, seed=-1), ValueError, "seed"),
    ],
    "budget_form": [
        (lambda: dl.budget_form(NOT_A_PROBLEM, 1.0), TypeError, "problem"),
        (lambda: dl.budget_form(PW, 0.0), ValueError, "budget"),
        (lambda: dl.budget_form(PW, float("nan")), ValueError, "budget"),
        (lambda: dl.budget_form(PW, "1"), TypeError, "budget"),
        (lambda: dl.budget_form(PF, 1.0), ValueError, "whitened"),
    ],
    "BudgetSolution": [
        (lambda: dl.BudgetSolution(value=0.0), TypeError, "dual_value"),
        (lambda: setattr(dl.budget_form(PW, 1.0), "value", 0.0), FrozenInstanceError,
         "value"),
    ],
    "budget_gap_bound": [
        (lambda: dl.budget_gap_bound(NOT_A_PROBLEM), TypeError, "problem"),
    ],
    "chain_problem": [
        (lambda: branches.chain_problem(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.chain_problem(None), TypeError, "problem"),
    ],
    "whitened_optimum": [
        (lambda: branches.whitened_optimum(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.whitened_optimum(PF), ValueError, "whitened"),
    ],
    "singular_value_bound": [
        (lambda: branches.singular_value_bound(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.singular_value_bound(PF, upper=-1.0), ValueError, "upper"),
        (lambda: branches.singular_value_bound(PF, upper="1"), TypeError, "upper"),
    ],
    "weight_decay_lower_bound": [
        (lambda: branches.weight_decay_lower_bound(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.weight_decay_lower_bound(P), ValueError, "penalty"),
        (lambda: branches.weight_decay_lower_bound(PF.with_gamma(0.0)), ValueError, "gamma"),
        (lambda: branches.weight_decay_lower_bound(PF, upper=float("nan")), ValueError,
         "upper"),
        (lambda: branches.weight_decay_lower_bound(PF, tol=-1.0), ValueError, "tol"),
    ],
    "output_coupled_dual": [
        (lambda: branches.output_coupled_dual(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.output_coupled_dual(P, tol=-1.0), ValueError, "tol"),
    ],
    "gap_curve": [
        (lambda: branches.gap_curve(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: branches.gap_curve(PF), ValueError, "penalty"),
        (lambda: branches.gap_curve(P, 3), TypeError, "branches"),
        (lambda: branches.gap_curve(P, "12"), TypeError, "branches"),
        (lambda: branches.gap_curve(P, [1, 0]), ValueError, "branches"),
        (lambda: branches.gap_curve(P, [1.5]), TypeError, "branches"),
        (lambda: branches.gap_curve(P, []), ValueError, "branches"),
        (lambda: branches.gap_curve(P, tol=-1.0), ValueError, "tol"),
        (lambda: branches.gap_curve(P, max_iter=0), ValueError, "max_iter"),
        (lambda: branches.gap_curve(P, n_jobs=0), ValueError, "n_jobs"),
        (lambda: branches.gap_curve(P, n_jobs=1.5), TypeError, "n_jobs"),
    ],
    "Solution": [
        (lambda: branches.Solution(lower=0.0), TypeError, "upper"),
        (lambda: setattr(SOLUTION, "lower", 0.0), FrozenInstanceError, "lower"),
    ],
    "LowerBound": [
        (lambda: branches.LowerBound(value=0.0), TypeError, "route"),
        (lambda: setattr(branches.LowerBound(0.0, "", 1.0, 0.0, 0.0, 0.0), "value", 1.0),
         FrozenInstanceError, "value"),
    ],
    "CoupledDual": [
        (lambda: branches.CoupledDual(lower=0.0), TypeError, "upper"),
        (lambda: setattr(branches.output_coupled_dual(PF), "lower", 1.0),
         FrozenInstanceError, "lower"),
    ],
    "GapCurve": [
        (lambda: branches.GapCurve(branches=np.ones(1)), TypeError, "lower"),
    ],
    "prove_gap": [
        (lambda: dl.prove_gap(NOT_A_PROBLEM), TypeError, "problem"),
        (lambda: dl.prove_gap(P, "dual"), TypeError, "dual"),
        (lambda: dl.prove_gap(P, DUAL_OTHER), ValueError, "dual"),
        (lambda: dl.prove_gap(P, DUAL, time_limit=0.0), ValueError, "time_limit"),
        (lambda: dl.prove_gap(P, DUAL, time_limit="1"), TypeError, "time_limit"),
        (lambda: dl.prove_gap(P, DUAL, rtol=-1.0), ValueError, "rtol"),
        (lambda: dl.prove_gap(P, DUAL, zero_tol=float("nan")), ValueError, "zero_tol"),
        (lambda: dl.prove_gap(P, DUAL, max_dimension=2.5), TypeError, "max_dimension"),
        (lambda: dl.prove_gap(P, DUAL, max_dimension=-1), ValueError, "max_dimension"),
        (lambda: dl.prove_gap(P, DUAL, progress="yes"), TypeError, "progress"),
        (lambda: dl.prove_gap(P, DUAL, route="middle"), ValueError, "route"),
    ],
    "GapProof": [
        (lambda: dl.GapProof(verdict="gap"), TypeError, "primal_lower"),
        (lambda: setattr(dl.prove_gap(P, DUAL), "verdict", "gap"), FrozenInstanceError,
         "verdict"),
    ],
    # duallinear.prox
    "spectral_apply": [
        (lambda: prox.spectral_apply(None, np.sqrt), TypeError, "Z"),
        (lambda: prox.spectral_apply(Z[0], np.sqrt), ValueError, "Z"),
        (lambda: prox.spectral_apply(np.full((2, 2), np.nan), np.sqrt), ValueError, "Z"),
        (lambda: prox.spectral_apply(Z, 3), TypeError, "fn"),
    ],
    "project_spectral_ball": [
        (lambda: prox.project_spectral_ball(None, 1.0), TypeError, "Z"),
        (lambda: prox.project_spectral_ball(Z[0], 1.0), ValueError, "Z"),
        (lambda: prox.project_spectral_ball(Z, -1.0), ValueError, "radius"),
    ],
    "prox_nuclear": [
        (lambda: prox.prox_nuclear(Z.astype(complex), 1.0), TypeError, "Z"),
        (lambda: prox.prox_nuclear(Z, -1.0), ValueError, "t"),
        (lambda: prox.prox_nuclear(Z, "1"), TypeError, "t"),
    ],
    "prox_truncated_frobenius_sq": [
        (lambda: prox.prox_truncated_frobenius_sq(Z, 0, 1.0), ValueError, "k"),
        (lambda: prox.prox_truncated_frobenius_sq(Z, 1.5, 1.0), TypeError, "k"),
        (lambda: prox.prox_truncated_frobenius_sq(Z, 1, -1.0), ValueError, "t"),
        (lambda: prox.prox_truncated_frobenius_sq([[np.inf]], 1, 1.0), ValueError, "Z"),
    ],
    "prox_schatten_power": [
        (lambda: prox.prox_schatten_power(Z, 0.5, 1.0), ValueError, "p"),
        (lambda: prox.prox_schatten_power(Z, 3, -1.0), ValueError, "t"),
        (lambda: prox.prox_schatten_power(None, 3, 1.0), TypeError, "Z"),
    ],
    "sv_project_ball": [
        (lambda: prox.sv_project_ball(-S, 1.0), ValueError, "s"),
        (lambda: prox.sv_project_ball(Z, 1.0), ValueError, "s"),
        (lambda: prox.sv_project_ball(S, -1.0), ValueError, "radius"),
    ],
    "sv_prox_nuclear": [
        (lambda: prox.sv_prox_nuclear(np.array([np.nan]), 1.0), ValueError, "s"),
        (lambda: prox.sv_prox_nuclear(S.astype(complex), 1.0), TypeError, "s"),
        (lambda: prox.sv_prox_nuclear(S, -1.0), ValueError, "t"),
    ],
    "sv_prox_truncated_frobenius_sq": [
        (lambda: prox.sv_prox_truncated_frobenius_sq(S, 0, 1.0), ValueError, "k"),
        (lambda: prox.sv_prox_truncated_frobenius_sq(-S, 1, 1.0), ValueError, "s"),
        (lambda: prox.sv_prox_truncated_frobenius_sq(S, 1, float("inf")), ValueError, "t"),
    ],
    "sv_prox_schatten_power": [
        (lambda: prox.sv_prox_schatten_power(S, 0.0, 1.0), ValueError, "p"),
        (lambda: prox.sv_prox_schatten_power(S, 3, -2.0), ValueError, "t"),
        (lambda: prox.sv_prox_schatten_power(None, 3, 1.0), (TypeError, ValueError), "s"),
    ],
    "truncated_frobenius_sq": [
        (lambda: prox.truncated_frobenius_sq(None, 2), TypeError, "s"),
        (lambda: prox.truncated_frobenius_sq(S, 0), ValueError, "k"),
        (lambda: prox.truncated_frobenius_sq(np.array([1.0, np.nan]), 1), ValueError, "s"),
        (lambda: prox.truncated_frobenius_sq(np.array([-1.0, 2.0]), 1), ValueError, "s"),
    ],
}

#: Public names with no input to validate, and why.
NO_INPUT = {
    "__version__": "a version string",
    "ConvergenceWarning": "a warning category, raised by the solvers, not called by users",
    "ConditioningWarning": "a warning category (a ConvergenceWarning), raised by the library",
    "RecoveryWarning": "a warning category, raised by recover, not called by users",
}


def _public_names() -> set[str]:
    names = set()
    for name in dl.__all__:
        obj = getattr(dl, name)
        if isinstance(obj, types.ModuleType):
            names.update(obj.__all__)  # e.g. duallinear.prox: its functions are public too
        else:
            names.add(name)
    return names


def test_every_public_name_has_an_error_case() -> None:
    public = _public_names()
    missing = public - set(ERROR_CASES) - set(NO_INPUT)
    assert not missing, f"public names without an error-path test: {sorted(missing)}"
    stale = (set(ERROR_CASES) | set(NO_INPUT)) - public
    assert not stale, f"error cases for names that are no longer public: {sorted(stale)}"


def test_public_names_resolve() -> None:
    for name in dl.__all__:
        assert hasattr(dl, name), name
    for name in prox.__all__:
        assert callable(getattr(prox, name)), name


def test_no_input_names_are_what_they_claim() -> None:
    assert isinstance(dl.__version__, str) and dl.__version__
    for name in ("ConvergenceWarning", "RecoveryWarning"):
        assert issubclass(getattr(dl, name), UserWarning)


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, cases in ERROR_CASES.items() for i in range(len(cases))],
    ids=[f"{name}-{i}" for name, cases in ERROR_CASES.items() for i in range(len(cases))],
)
def test_error_path(name: str, index: int) -> None:
    call, exc, pattern = ERROR_CASES[name][index]
    with pytest.raises(exc, match=pattern):
        call()


def test_type_and_value_errors_are_not_other_exceptions() -> None:
    # The cases above expect exactly TypeError/ValueError (or FrozenInstanceError for the
    # immutable results); a library AttributeError or IndexError would be an unclear message.
    allowed = {TypeError, ValueError, FrozenInstanceError}
    for cases in ERROR_CASES.values():
        for _, exc, _ in cases:
            assert set(exc if isinstance(exc, tuple) else (exc,)) <= allowed
