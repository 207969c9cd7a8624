"""Optional dependencies, imported where they are used.

The core (primal, Douglas-Rachford dual, recovery, certificates) needs numpy, scipy and
threadpoolctl only. Everything else is an extra of the package, and a missing one raises an
``ImportError`` that names the ``pip install`` bringing it in.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require"]

#: The extra of ``pyproject.toml`` that installs each optional top-level module.
EXTRAS = {
    "cvxpy": "cvxpy",
    "scs": "cvxpy",
    "matplotlib": "cli",
    "tqdm": "cli",
    "joblib": "cli",
    "dask": "dask",
    "distributed": "dask",
    "sklearn": "sklearn",
    "mpmath": "verify",
}

#: The distribution to name when it differs from the module.
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module``, or raise ``ImportError`` saying which extra installs it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"cvxpy"`` or ``"matplotlib.pyplot"``.
    feature : str
        What needs it, for the message (e.g. ``'solve_dual(method="cvxpy")'``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS[top]
        name = _DISTRIBUTIONS.get(top, top)
        raise ImportError(
            f"{feature} needs {name}, which is not installed; install it with: "
            f'pip install "duallinear[{extra}]"', name=top) from exc
