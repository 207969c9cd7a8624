"""Networks of several branches and weight decay: the problem, objective, gradient, restarts.

Oracles: the objective evaluated straight from X, Y and the weights of every branch with numpy
(never the library's reduced data), central finite differences, and, for one Schatten chain,
the code path that existed before branches and weight decay (which must be unchanged).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import duallinear as dl
from cases import GENERAL_CASES, IDENTITY_CASES, make_X, make_Y, product, rel_diff

pytestmark = pytest.mark.usefixtures("single_thread_blas")

SETTINGS = settings(max_examples=30, deadline=None)


def direct_objective(X, Y, branches, gamma, penalty):
    """``1/2 ||sum_b W_{H,b}..W_{1,b} X - Y||^2 + gamma * penalty`` from the data."""
    H = len(branches[0])
    R = sum(product(b) for b in branches) @ X - Y
    if penalty == "frobenius":
        reg = sum(float(np.sum(W * W)) for b in branches for W in b)
    else:
        reg = sum(float(np.sum(np.linalg.svd(W, compute_uv=False) ** H))
                  for b in branches for W in b)
    return 0.5 * float(np.sum(R * R)) + gamma * reg


def random_branches(problem, rng, scale=1.0):
    out = [[scale * rng.standard_normal(s) for s in problem.weight_shapes]
           for _ in range(problem.branches)]
    return out if problem.branches > 1 else out[0]


def as_branches(problem, weights):
    return weights if problem.branches > 1 else [weights]


@st.composite
def architectures(draw):
    """A random problem with 1-3 branches, either penalty, H = 2..4, any kind of X."""
    kind = draw(st.sampled_from(["identity", "gaussian", "rank_deficient", "wide"]))
    d0 = draw(st.integers(2, 5))
    dH = draw(st.integers(1, 4))
    n = {"identity": d0, "wide": d0 - 1}.get(kind, d0 + draw(st.integers(0, 3)))
    H = draw(st.integers(2, 4))
    hidden = tuple(draw(st.lists(st.integers(1, 4), min_size=H - 1, max_size=H - 1)))
    B = draw(st.integers(1, 3))
    penalty = draw(st.sampled_from(["schatten", "frobenius"]))
    gamma = draw(st.sampled_from([0.0, 0.05, 0.5]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = make_X(kind, d0, n, rng, rank=1 if kind == "rank_deficient" else None)
    Y = make_Y("gaussian", dH, n, rng)
    return dl.DeepLinearProblem(X, Y, hidden, gamma, branches=B, penalty=penalty), X, Y, rng


# ------------------------------------------------------------------------- the problem
def test_branches_and_penalty_are_validated_and_shown() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 6)), rng.standard_normal((3, 6))
    p = dl.DeepLinearProblem(X, Y, (2, 3), 0.1, branches=3, penalty="frobenius")
    assert (p.branches, p.penalty, p.k, p.K) == (3, "frobenius", 2, 6)
    assert not p.is_schatten and not p.is_chain
    assert "branches=3" in repr(p) and "penalty='frobenius'" in repr(p)
    # H = 2: weight decay is the S_2 penalty; one chain of it is handled by the dual.
    q = dl.DeepLinearProblem(X, Y, (2,), 0.1, penalty="frobenius")
    assert q.is_schatten and q.is_chain
    assert repr(dl.DeepLinearProblem(X, Y, (2, 3), 0.1)).endswith("gamma=0.1)")
    assert p.with_gamma(0.2).branches == 3 and p.with_gamma(0.2).penalty == "frobenius"
    s = dl.DeepLinearProblem.from_statistics(X @ X.T, Y @ X.T, float(np.sum(Y * Y)), (2,),
                                             0.1, branches=2, penalty="frobenius")
    assert (s.branches, s.penalty) == (2, "frobenius")


def test_chain_only_functions_refuse_other_architectures() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((4, 6)), rng.standard_normal((3, 6))
    chain = dl.DeepLinearProblem(X, Y, (2, 2), 0.1)
    dual = dl.solve_dual(chain)
    for p in (dl.DeepLinearProblem(X, Y, (2, 2), 0.1, branches=2),
              dl.DeepLinearProblem(X, Y, (2, 2), 0.1, penalty="frobenius")):
        for call in (lambda p=p: dl.solve_dual(p), lambda p=p: dl.recover(p, dual),
                     lambda p=p: dl.dual_value(p, dual.Lambda),
                     lambda p=p: dl.closed_form(p)):
            with pytest.raises(ValueError, match="duallinear.solve"):
                call()


# ------------------------------------------------------------ objective and gradient
@SETTINGS
@given(data=architectures(), scale=st.sampled_from([0.0, 0.3, 1.0]))
def test_objective_matches_the_direct_formula(data, scale) -> None:
    problem, X, Y, rng = data
    weights = random_branches(problem, rng, scale)
    expected = direct_objective(X, Y, as_branches(problem, weights), problem.gamma,
                                problem.penalty)
    assert rel_diff(dl.objective(problem, weights), expected) <= 1e-10


@SETTINGS
@given(data=architectures())
def test_gradient_matches_central_finite_differences(data) -> None:
    problem, X, Y, rng = data
    weights = random_branches(problem, rng)
    grads = dl.gradient(problem, weights)
    flat_w = as_branches(problem, weights)
    flat_g = as_branches(problem, grads)
    assert [[g.shape for g in b] for b in flat_g] == [[w.shape for w in b] for b in flat_w]
    D = [[rng.standard_normal(w.shape) for w in b] for b in flat_w]
    h = 1e-5

    def at(t):
        moved = [[w + t * d for w, d in zip(b, db, strict=True)]
                 for b, db in zip(flat_w, D, strict=True)]
        return moved if problem.branches > 1 else moved[0]

    fd = (dl.objective(problem, at(h)) - dl.objective(problem, at(-h))) / (2 * h)
    exact = sum(float(np.sum(g * d)) for b, db in zip(flat_g, D, strict=True)
                for g, d in zip(b, db, strict=True))
    assert abs(fd - exact) <= 1e-5 * max(1.0, abs(exact))


def test_one_schatten_chain_is_unchanged_bit_for_bit() -> None:
    # The explicit defaults must give the very same numbers as the problem built without them.
    for case in (IDENTITY_CASES[4], GENERAL_CASES[1], GENERAL_CASES[10]):
        X, Y, gamma = case.data()
        plain = dl.DeepLinearProblem(X, Y, case.hidden, gamma)
        explicit = dl.DeepLinearProblem(X, Y, case.hidden, gamma, branches=1,
                                        penalty="schatten")
        a, b = dl.solve_dual(plain), dl.solve_dual(explicit)
        assert a.value == b.value and np.array_equal(a.Gamma, b.Gamma)
        ra, rb = dl.recover(plain, a), dl.recover(explicit, b)
        assert ra.value == rb.value
        assert all(np.array_equal(u, v) for u, v in zip(ra.weights, rb.weights, strict=True))
        pa = dl.solve_primal(plain, restarts=2, seed=3)
        pb = dl.solve_primal(explicit, restarts=2, seed=3)
        assert np.array_equal(pa.values, pb.values)


@pytest.mark.parametrize("B", [1, 3])
def test_weight_decay_at_depth_two_is_the_schatten_two_penalty(B) -> None:
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((5, 9)), rng.standard_normal((4, 9))
    s2 = dl.DeepLinearProblem(X, Y, (2,), 0.3, branches=B)
    fro = dl.DeepLinearProblem(X, Y, (2,), 0.3, branches=B, penalty="frobenius")
    weights = random_branches(s2, rng)
    assert dl.objective(s2, weights) == dl.objective(fro, weights)
    g1, g2 = as_branches(s2, dl.gradient(s2, weights)), as_branches(fro, dl.gradient(fro, weights))
    assert all(np.array_equal(u, v) for a, b in zip(g1, g2, strict=True)
               for u, v in zip(a, b, strict=True))
    r1, r2 = dl.solve_primal(s2, restarts=2, seed=0), dl.solve_primal(fro, restarts=2, seed=0)
    assert np.array_equal(r1.values, r2.values)
    if B == 1:
        d1, d2 = dl.solve_dual(s2), dl.solve_dual(fro)
        assert d1.value == d2.value


# ---------------------------------------------------------------------------- restarts
@pytest.mark.parametrize("penalty", ["schatten", "frobenius"])
@pytest.mark.parametrize("H", [2, 3])
def test_solve_primal_on_branches(penalty, H) -> None:
    rng = np.random.default_rng(H)
    X, Y = rng.standard_normal((4, 8)), rng.standard_normal((3, 8))
    problem = dl.DeepLinearProblem(X, Y, (1,) * (H - 1), 0.2, branches=3, penalty=penalty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dl.ConvergenceWarning)
        res = dl.solve_primal(problem, restarts=3, seed=0)
        assert len(res.weights) == 3
        assert all([W.shape for W in b] == problem.weight_shapes for b in res.weights)
        assert res.value == dl.objective(problem, res.weights)
        assert res.value <= problem.zero_value
        # A start at the result stays there (to the optimiser's tolerance).
        again = dl.solve_primal(problem, restarts=1, init=res.weights)
    assert again.value <= res.value * (1 + 1e-9)
    # Three width-1 branches fit better than one.
    one = dl.solve_primal(dl.DeepLinearProblem(X, Y, (1,) * (H - 1), 0.2, penalty=penalty),
                          restarts=3, seed=0)
    assert res.value < one.value


def test_frobenius_restarts_work_in_normalised_units() -> None:
    # The optimiser runs on data scaled to ||A||_op = s_max = 1: the value it reports must be
    # the objective in the caller's units (gamma of weight decay scales differently).
    rng = np.random.default_rng(5)
    X, Y = 30.0 * rng.standard_normal((4, 8)), 0.01 * rng.standard_normal((3, 8))
    problem = dl.DeepLinearProblem(X, Y, (2, 2), 1e-4, branches=2, penalty="frobenius")
    res = dl.solve_primal(problem, restarts=2, seed=0)
    direct = direct_objective(X, Y, res.weights, problem.gamma, "frobenius")
    assert rel_diff(res.value, direct) <= 1e-10
    assert res.value < problem.zero_value
