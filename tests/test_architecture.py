"""The package's layering (README, "Architecture"): read from the source, not imported.

* no module imports another module's underscore-named names;
* the import graph between the package's modules has no cycle (lazy imports included);
* the core never imports the command line or plotting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "duallinear"
EDGE = {"duallinear.cli", "duallinear.experiments", "duallinear.__main__",
        "duallinear.branch_sweep", "duallinear.survey"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(imported module, imported names)`` for every import in ``path``, resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            # "from . import _spectral" imports a module, not a name of the package.
            modules = [n for n in names if (SRC.parent / (target.replace(".", "/") + "/" + n))
                       .with_suffix(".py").exists() or
                       (SRC.parent / target.replace(".", "/") / n).is_dir()]
            out += [(f"{target}.{n}", []) for n in modules]
            out.append((target, [n for n in names if n not in modules]))
    return out


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {target for target, _ in _imports(path)
                       if target in MODULES and target != name}
    return graph


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_private_names_of_another(name: str) -> None:
    for target, names in _imports(MODULES[name]):
        if not target.startswith("duallinear") or target == name:
            continue
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{name} imports {private} from {target}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            # A package's __init__ re-exports its submodules: that edge is not a dependency
            # of the submodule on the package.
            if nxt == node.rsplit(".", 1)[0] and node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_core_does_not_import_the_edge() -> None:
    for name, path in MODULES.items():
        if name in EDGE:
            continue
        for target, _ in _imports(path):
            assert target not in EDGE, f"{name} imports {target}"
            assert not target.startswith("matplotlib"), f"{name} imports {target}"
