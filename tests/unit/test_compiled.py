"""Refusing compiled modules older than their sources (atalaia.compiled)."""

from __future__ import annotations

import os
from pathlib import Path

from atalaia.compiled import compiled_sources, stale_message, stale_sources

PROJECT = '[tool.atalaia]\ncompiled = ["pkg/fast.py", "pkg/plain.py"]\n'


def _checkout(root: Path, source_time: float, built_time: float | None) -> Path:
    (root / "pyproject.toml").write_text(PROJECT)
    (root / "pkg").mkdir()
    for name in ("fast.py", "plain.py"):
        (root / "pkg" / name).write_text("")
        os.utime(root / "pkg" / name, (source_time, source_time))
    if built_time is not None:
        built = root / "pkg" / "fast.cpython-311-x86_64-linux-gnu.so"
        built.write_bytes(b"")
        os.utime(built, (built_time, built_time))
    return root


def test_a_module_built_after_its_last_edit_is_current(tmp_path: Path) -> None:
    root = _checkout(tmp_path, source_time=1_000, built_time=2_000)
    assert compiled_sources(root) == [root / "pkg/fast.py", root / "pkg/plain.py"]
    assert stale_sources(root) == []


def test_a_module_edited_after_it_was_built_is_stale(tmp_path: Path) -> None:
    root = _checkout(tmp_path, source_time=3_000, built_time=2_000)
    assert stale_sources(root) == [root / "pkg/fast.py"]
    assert stale_message(stale_sources(root), root) == (
        "pkg/fast.py changed since compiled: run `make compile`"
    )


def test_a_module_never_compiled_runs_from_its_source(tmp_path: Path) -> None:
    assert stale_sources(_checkout(tmp_path, source_time=3_000, built_time=None)) == []


def test_an_installed_package_has_nothing_to_check(tmp_path: Path) -> None:
    assert compiled_sources(tmp_path) == []
