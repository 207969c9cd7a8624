"""duallinear: regularised deep linear networks solved to certified global optimality.

Build a :class:`DeepLinearProblem` from data ``X`` (d0, n), ``Y`` (dH, n), hidden widths and
``gamma``; solve it by :func:`solve_dual` (convex, global) and/or :func:`solve_primal`
(non-convex local search with restarts); rebuild weights with :func:`recover_weights`; read
the certificate with :func:`duality_gap`. Networks of several branches and plain weight decay
(``DeepLinearProblem(..., branches=, penalty=)``) are answered by :func:`solve`
(:mod:`duallinear.branches`).
"""

import importlib.util

from . import branches, distributed, prox
from .branches import BudgetSolution, budget_form, budget_gap_bound, solve
from .certificates import closed_form, dual_value, duality_gap, relative_gap
from .dual import DRSettings, SDPSettings, solve_dual
from .gaps import GapProof, prove_gap
from .primal import end_to_end, gradient, objective, solve_primal
from .problem import DeepLinearProblem
from .recovery import Recovery, balanced_factors, recover, recover_weights
from .results import (
    ConditioningWarning,
    ConvergenceWarning,
    DualDiagnostics,
    DualResult,
    PrimalResult,
    RecoveryWarning,
)
from .verify import VerifiedCertificate, verify

__version__ = "0.1.0"


def __getattr__(name: str):
    # The estimator needs scikit-learn, an optional dependency: imported on first use, so
    # that `import duallinear` works without it and the error names the extra to install.
    if name == "DeepLinearRegressor":
        from .estimator import DeepLinearRegressor

        return DeepLinearRegressor
    raise AttributeError(f"module 'duallinear' has no attribute {name!r}")


__all__ = [
    "DeepLinearProblem",
    "objective",
    "gradient",
    "solve_primal",
    "solve_dual",
    "DRSettings",
    "SDPSettings",
    "recover",
    "recover_weights",
    "balanced_factors",
    "end_to_end",
    "duality_gap",
    "dual_value",
    "relative_gap",
    "closed_form",
    "solve",
    "budget_form",
    "budget_gap_bound",
    "BudgetSolution",
    "branches",
    "prove_gap",
    "GapProof",
    "prox",
    "distributed",
    "PrimalResult",
    "DualResult",
    "DualDiagnostics",
    "Recovery",
    "ConvergenceWarning",
    "ConditioningWarning",
    "RecoveryWarning",
    "verify",
    "VerifiedCertificate",
    "__version__",
]
if importlib.util.find_spec("sklearn") is not None:
    __all__.append("DeepLinearRegressor")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"DeepLinearRegressor"})
