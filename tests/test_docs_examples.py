"""The Examples sections of the public docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["duallinear.problem", "duallinear.primal", "duallinear.dual", "duallinear.recovery",
           "duallinear.certificates", "duallinear.prox", "duallinear.distributed",
           "duallinear.branches",
           "duallinear._reduced", "duallinear._dr.settings", "duallinear._dr.anderson",
           "duallinear.estimator", "duallinear.gaps", "duallinear._upper", "duallinear.survey"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
