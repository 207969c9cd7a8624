"""Print pip constraints pinning every dependency of pyproject.toml to its lower bound.

Used by ``.ci/run`` for the minimum-versions run: every requirement of ``dependencies`` and
of every extra must read ``name>=X`` (or ``name[extras]>=X``); the package's own extras
(``duallinear[...]``) are skipped. Anything else is an error, so that a bound CI cannot pin
does not go untested.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([^,;\s]+)$")


def pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    out: dict[str, str] = {}
    for requirement in requirements:
        text = requirement.replace(" ", "")
        if text.startswith(project["name"] + "["):
            continue
        match = REQUIREMENT.match(text)
        if match is None:
            raise SystemExit(f"cannot pin {requirement!r}: expected 'name>=version'")
        name, version = match.group(1).lower(), match.group(3)
        if out.get(name, version) != version:
            raise SystemExit(f"{name} has two lower bounds: {out[name]} and {version}")
        out[name] = version
    return [f"{name}=={version}" for name, version in sorted(out.items())]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print("\n".join(pins(root / "pyproject.toml")))
