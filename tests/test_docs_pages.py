"""The documentation site's pages: their code runs, printed figures match the page, and every
reference to a numbered section or equation of the math page exists there.

(The site itself is built by ``.ci/run`` with ``mkdocs build --strict``.)
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CODE = re.compile(r"```python\n(.*?)```", re.S)
TEXT = re.compile(r"```text\n(.*?)```", re.S)
ANCHOR = re.compile(r"\[\]\(\)\{#([a-z0-9-]+)\}")
REFERENCE = re.compile(r"\]\[((?:eq|sec)-[a-z0-9-]+)\]")


def _run(page: str) -> str:
    """Run a page's python blocks in order, in one namespace; return what they printed."""
    out = io.StringIO()
    namespace: dict = {"__name__": f"docs_{page}"}
    with contextlib.redirect_stdout(out):
        for block in CODE.findall((DOCS / page).read_text()):
            exec(compile(block, str(DOCS / page), "exec"), namespace)  # noqa: S102
    return out.getvalue()


def test_getting_started_runs() -> None:
    printed = _run("getting-started.md")
    assert "DualResult(method='dr', status='converged', converged=True)" in printed
    assert "Certificate(certified=True)" in printed


def test_gradient_descent_example_prints_what_the_page_says() -> None:
    printed = _run("certify-gd.md").splitlines()
    shown = [line for block in TEXT.findall((DOCS / "certify-gd.md").read_text())
             for line in block.splitlines()]
    assert len(printed) == len(shown)
    number = re.compile(r"[-+]?\d+\.\d+(?:e[-+]\d+)?")
    for got, expected in zip(printed, shown, strict=True):
        assert got.split(":")[0] == expected.split(":")[0]
        a, b = (list(map(float, number.findall(x))) for x in (got, expected))
        assert len(a) == len(b)
        # Objectives to 6 digits; gaps of order 1e-7 may move with the BLAS, not by 3x.
        for x, y in zip(a, b, strict=True):
            assert x == pytest.approx(y, rel=1e-6) or 1 / 3 < x / y < 3, (got, expected)


def _references() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted(DOCS.glob("*.md"))]
    for path in files:
        for ref in REFERENCE.findall(path.read_text()):
            found.setdefault(ref, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_equation_reference_has_its_anchor() -> None:
    anchors = set(ANCHOR.findall((DOCS / "math.md").read_text()))
    references = _references()
    assert {"eq-primal", "eq-dual", "eq-reduction"} <= set(references)
    missing = {ref: files for ref, files in references.items() if ref not in anchors}
    assert not missing, f"references to anchors math.md does not have: {missing}"


def test_equations_are_numbered_in_order() -> None:
    text = (DOCS / "math.md").read_text()
    numbers = [int(n) for n in re.findall(r"^ {4,}\S.*\s\((\d+)\)$", text, re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 10
    sections = [int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)]
    assert sections == list(range(1, len(sections) + 1))


def test_docstrings_no_longer_cite_what_users_cannot_see() -> None:
    stale = re.compile(r"MATH\.md|problem \([45]\)|objective \([45]\)")
    for path in sorted((ROOT / "src").rglob("*.py")):
        assert not stale.search(path.read_text()), path


def test_budget_form_example_prints_what_the_page_says() -> None:
    printed = _run("branches.md").splitlines()
    shown = [line for block in TEXT.findall((DOCS / "branches.md").read_text())
             for line in block.splitlines()]
    assert printed == shown
