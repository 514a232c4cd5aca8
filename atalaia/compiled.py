"""Modules of a checkout compiled by mypyc (``[tool.atalaia] compiled`` in pyproject.toml,
built in place by ``make compile``). Python imports the compiled file before the source, so
a source edited since it was compiled would silently not run: the tests and the CLI refuse
to start then, and say what to run."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


@cache
def compiled_sources(root: Path = CHECKOUT) -> list[Path]:
    """The sources listed for compiling; none outside a checkout (an installed package has no
    pyproject.toml beside it). Read once per process: pytest asks for every file it collects."""
    project = root / "pyproject.toml"
    if not project.is_file():
        return []
    listed: list[str] = tomllib.loads(project.read_text())["tool"]["atalaia"]["compiled"]
    return [root / path for path in listed]


def stale_sources(root: Path = CHECKOUT) -> list[Path]:
    """Sources changed after their compiled module was built (not compiled at all is fine:
    the source then runs)."""
    stale = []
    for source in compiled_sources(root):
        built = built_files(source)
        if built and min(b.stat().st_mtime for b in built) < source.stat().st_mtime:
            stale.append(source)
    return stale


def built_files(source: Path) -> list[Path]:
    """The compiled modules built from ``source`` (one per Python version it was built for)."""
    return list(source.parent.glob(f"{source.stem}.cpython-*.so"))


def stale_message(stale: list[Path], root: Path = CHECKOUT) -> str:
    names = ", ".join(str(path.relative_to(root)) for path in stale)
    return f"{names} changed since compiled: run `make compile`"
