"""duallinear: regularised deep linear networks solved to certified global optimality.

Build a :class:`DeepLinearProblem` from data ``X`` (d0, n), ``Y`` (dH, n), hidden widths and
``gamma``; solve it by :func:`solve_dual` (convex, global) and/or :func:`solve_primal`
(non-convex local search with restarts); rebuild weights with :func:`recover_weights`; read
the certificate with :func:`duality_gap`.
"""

from . import distributed, prox
from .certificates import closed_form, dual_value, duality_gap, relative_gap
from .dual import DRSettings, SDPSettings, solve_dual
from .gaps import GapProof, prove_gap
from .primal import gradient, objective, solve_primal
from .problem import DeepLinearProblem
from .recovery import balanced_factors, recover, recover_weights
from .results import (
    ConvergenceWarning,
    DualDiagnostics,
    DualResult,
    PrimalResult,
    RecoveryWarning,
)

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
    "prove_gap",
    "GapProof",
    "prox",
    "distributed",
    "PrimalResult",
    "DualResult",
    "DualDiagnostics",
    "ConvergenceWarning",
    "RecoveryWarning",
    "__version__",
]
