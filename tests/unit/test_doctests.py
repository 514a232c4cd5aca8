"""Doctests of the compiled modules (atalaia.compiled), run on their sources: the module is
loaded from its .py under another name, so the examples run as written whether or not a
compiled build sits beside it."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

from atalaia.compiled import CHECKOUT, compiled_sources

WITH_EXAMPLES = [source for source in compiled_sources() if ">>>" in source.read_text()]


@pytest.mark.parametrize("source", WITH_EXAMPLES, ids=lambda path: str(path.relative_to(CHECKOUT)))
def test_the_examples_of_a_compiled_module_hold(source: Path) -> None:
    name = "source_of_" + str(source.relative_to(CHECKOUT).with_suffix("")).replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    finally:
        del sys.modules[name]
    assert results.attempted > 0
    assert results.failed == 0
