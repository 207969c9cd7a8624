"""Griffe extension for the documentation site: Sphinx roles in docstrings as Markdown.

The docstrings are numpydoc, with Sphinx cross-reference roles (``:func:`~duallinear.recover```)
that read well in ``help()``. mkdocstrings renders docstrings as Markdown, where a role would
show as typed; this turns each into a link to the API reference when it names a documented
public object (``duallinear.<name>``, ``duallinear.prox.<name>``,
``duallinear.distributed.<name>``) and into inline code otherwise.
"""

from __future__ import annotations

import re

import griffe

import duallinear
from duallinear import distributed, prox

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`(~?)([^`]+)`")

#: Documented objects by their last name, with the identifier of their API entry.
TARGETS = {name: f"duallinear.{name}" for name in duallinear.__all__}
TARGETS.update({name: f"duallinear.prox.{name}" for name in prox.__all__})
TARGETS.update({name: f"duallinear.distributed.{name}" for name in distributed.__all__})
TARGETS["DeepLinearRegressor"] = "duallinear.estimator.DeepLinearRegressor"
TARGETS["Certificate"] = "duallinear.estimator.Certificate"
MODULES = {"duallinear.prox", "duallinear.distributed"}


def convert(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown cross-reference or code."""

    def replace(match: re.Match) -> str:
        short, target = match.group(1) == "~", match.group(2).strip()
        name = target.rsplit(".", 1)[-1]
        shown = name if short else target
        if target in MODULES:
            return f"[`{shown}`][{target}]"
        identifier = TARGETS.get(name)
        if identifier is not None and (target == name or target.endswith(identifier)
                                       or identifier.endswith(target)):
            return f"[`{shown}`][{identifier}]"
        return f"`{shown}`"

    return ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
