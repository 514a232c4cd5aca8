"""The layers import one way only: schemas <- config <- engine <- sinks, streams <- agents <-
atalaia (a module may import its own layer and the ones below; sinks and streams are one
layer). Read from the sources, so a new module is held to it as soon as it exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "schemas": 0,
    "config": 1,
    "engine": 2,
    "sinks": 3,
    "streams": 3,
    "agents": 4,
    "atalaia": 5,
}


def imported(path: Path) -> list[tuple[int, str]]:
    """The absolute imports of a module with their lines (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def upward(package: str) -> list[str]:
    own = LAYERS[package]
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported(path):
            top = module.split(".")[0]
            if LAYERS.get(top, -1) > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return wrong


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_module_imports_a_higher_layer(package: str) -> None:
    assert upward(package) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom agents.scoring import Scorer\n\ndef f():\n    import atalaia.cli\n"
    )
    assert [m for _, m in imported(module)] == ["os", "agents.scoring", "atalaia.cli"]
