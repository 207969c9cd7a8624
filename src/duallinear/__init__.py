"""duallinear: regularised deep linear networks solved to certified global optimality.

Build a :class:`DeepLinearProblem` from data ``X`` (d0, n), ``Y`` (dH, n), hidden widths and
``gamma``; solve it by :func:`solve_dual` (convex, global) and/or :func:`solve_primal`
(non-convex local search with restarts); rebuild weights with :func:`recover_weights`; read
the certificate with :func:`duality_gap`. Networks of several branches and plain weight decay
(``DeepLinearProblem(..., branches=, penalty=)``) are answered by :func:`solve`
(:mod:`duallinear.branches`).
"""

from . import branches, distributed, prox
from .branches import solve
from .certificates import closed_form, dual_value, duality_gap, relative_gap
from .dual import DRSettings, SDPSettings, solve_dual
from .primal import gradient, objective, solve_primal
from .problem import DeepLinearProblem
from .recovery import balanced_factors, recover, recover_weights
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
    "duality_gap",
    "dual_value",
    "relative_gap",
    "closed_form",
    "solve",
    "branches",
    "prox",
    "distributed",
    "PrimalResult",
    "DualResult",
    "DualDiagnostics",
    "ConvergenceWarning",
    "ConditioningWarning",
    "RecoveryWarning",
    "verify",
    "VerifiedCertificate",
    "__version__",
]
