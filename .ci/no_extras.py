"""Run in a fresh virtual environment after a plain ``pip install .`` (no extras).

The core must work on numpy, scipy and threadpoolctl alone: the Douglas-Rachford dual, the
recovery and its certificate, sequential primal restarts, the main job and ``--version``.
Every optional path must stop with an ``ImportError`` (or, on the command line, a one-line
error) that names the extra to install. Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"no-extras check FAILED: {what}")
    print(f"ok: {what}")


def raises_naming(extra: str, call) -> None:
    try:
        call()
    except ImportError as exc:
        check(f'pip install "duallinear[{extra}]"' in str(exc),
              f"ImportError names duallinear[{extra}]: {exc}")
    else:
        check(False, f"expected an ImportError naming duallinear[{extra}]")


def main() -> None:
    for module in ("cvxpy", "scs", "matplotlib", "tqdm", "joblib", "dask", "sklearn"):
        check(importlib.util.find_spec(module) is None, f"{module} is not installed")

    import duallinear as dl

    exec("from duallinear import *", {})  # must work on the core alone
    check("DeepLinearRegressor" not in dl.__all__, "__all__ leaves out what needs an extra")

    check(importlib.metadata.version("duallinear") == dl.__version__,
          f"installed version {dl.__version__} is duallinear.__version__")
    check(importlib.resources.files("duallinear").joinpath("py.typed").is_file(),
          "py.typed is installed")

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 30)), rng.standard_normal((5, 30))
    problem = dl.DeepLinearProblem(X, Y, hidden=(3, 3), gamma=0.2)
    dual = dl.solve_dual(problem)
    check(dual.converged and dual.relative_gap <= 1e-10, f"DR dual certified: {dual.message}")
    rec = dl.recover(problem, dual)
    check(rec.certified, f"recovered weights certified to {rec.relative_gap:.1e}")
    primal = dl.solve_primal(problem, restarts=2, seed=0)
    check(primal.value >= dual.value - 1e-9 * abs(dual.value), "weak duality holds")

    raises_naming("cvxpy", lambda: dl.solve_dual(problem, method="cvxpy"))
    raises_naming("cli", lambda: dl.solve_primal(problem, restarts=2, n_jobs=2))
    raises_naming("sklearn", lambda: dl.DeepLinearRegressor)

    main_job = subprocess.run([sys.executable, "-m", "duallinear"], capture_output=True,
                              text=True, timeout=600)
    check(main_job.returncode == 0 and "zero duality gap confirmed" in main_job.stdout,
          "python -m duallinear (the main job) runs on the core")
    script = Path(sys.executable).parent / "duallinear"  # the installed console script
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             timeout=60)
    check(version.stdout.strip() == f"duallinear {dl.__version__}", "duallinear --version")
    gap = subprocess.run([sys.executable, "-m", "duallinear", "gap", "--quick"],
                         capture_output=True, text=True, timeout=60)
    check(gap.returncode == 1 and 'pip install "duallinear[cli]"' in gap.stderr
          and "Traceback" not in gap.stderr,
          f"duallinear gap names duallinear[cli]: {gap.stderr.strip()}")
    print("no-extras checks passed")


if __name__ == "__main__":
    main()
