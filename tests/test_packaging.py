"""What the package promises about itself: one version, the README's commands in CI, the
extras that name their pip install, and the files a user expects."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import duallinear as dl
from duallinear import _optional

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
sys.path.insert(0, str(ROOT / ".ci"))
import minimum_versions  # noqa: E402


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^TEST_COMMAND='(.+)'$", ci, re.M).group(1)
    assert f"\n    {command}\n" in readme
    assert ci.count('eval "$TEST_COMMAND"') == 2  # newest dependencies, minimum versions
    assert 'for version in 3.11 3.12 3.13; do' in ci
    assert "\n    python -m pip install -e . && python -m duallinear\n" in readme


def test_one_source_for_the_version() -> None:
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "duallinear.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", dl.__version__)
    for path in ("CITATION.cff", "README.md", "mkdocs.yml"):
        assert dl.__version__ not in (ROOT / path).read_text(), path


def test_core_dependencies_and_extras() -> None:
    core = {re.split(r"[<>=\[]", r)[0] for r in PROJECT["dependencies"]}
    assert core == {"numpy", "scipy", "threadpoolctl"}
    extras = PROJECT["optional-dependencies"]
    names = {extra: {re.split(r"[<>=\[]", r)[0].lower() for r in reqs}
             for extra, reqs in extras.items()}
    distributions = {"sklearn": "scikit-learn", "distributed": "dask"}  # dask[distributed]
    for module, extra in _optional.EXTRAS.items():
        assert distributions.get(module, module) in names[extra], (module, extra)
    test = set(extras["test"])
    assert "duallinear[all]" in test
    assert names["all"] == {"duallinear"}


def test_every_lower_bound_can_be_pinned() -> None:
    pins = minimum_versions.pins(ROOT / "pyproject.toml")
    assert "numpy==1.26" in pins and "scipy==1.14" in pins
    assert all("==" in p for p in pins)


@pytest.mark.parametrize("path", ["LICENSE", "CITATION.cff", "CHANGELOG.md", "mkdocs.yml",
                                  "src/duallinear/py.typed"])
def test_files_a_user_expects(path: str) -> None:
    assert (ROOT / path).is_file()


def test_license_and_citation() -> None:
    assert PROJECT["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation
    assert "Deep Neural Networks with Multi-Branch Architectures Are Less Non-Convex" in citation
    assert any(c.startswith("Programming Language :: Python :: 3.13")
               for c in PROJECT["classifiers"])


def test_missing_module_message(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r'solve_dual\(method="cvxpy"\) needs cvxpy.*'
                                          r'pip install "duallinear\[cvxpy\]"'):
        dl.solve_dual(dl.DeepLinearProblem(np.eye(3), np.eye(3), (1,), 0.1), method="cvxpy")


def test_parallel_restarts_without_joblib(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "joblib", None)
    problem = dl.DeepLinearProblem(np.eye(3), np.eye(3), (1,), 0.1)
    with pytest.raises(ImportError, match=r'pip install "duallinear\[cli\]"'):
        dl.solve_primal(problem, restarts=2, n_jobs=2)
    assert dl.solve_primal(problem, restarts=2).values.shape == (2,)  # sequential: no joblib
