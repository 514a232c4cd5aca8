"""Every command and option says what it does, the exit codes are documented, ``--version``
works, and ``atalaia --help`` loads no heavy library."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from atalaia.cli import build_parser, main

HEAVY = (
    "pydantic",
    "faust",
    "aiokafka",
    "river",
    "scipy",
    "numpy",
    "chdb",
    "matplotlib",
    "stellar_sdk",
    "clickhouse_connect",
    "rocksdict",
)


def _parsers(
    parser: argparse.ArgumentParser, path: str = "atalaia"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_option_has_help_and_the_exit_codes() -> None:
    found = list(_parsers(build_parser()))
    assert len(found) > 40
    for path, parser in found:
        assert parser.description, f"{path}: no description"
        assert "exit codes:" in (parser.epilog or ""), f"{path}: exit codes not documented"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest}: no help"
                continue
            assert action.help, f"{path} {'/'.join(action.option_strings) or action.dest}: no help"


def test_every_command_s_help_prints(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _ in _parsers(build_parser()):
        assert main([*path.split()[1:], "--help"]) == 0, path
        assert "usage: " + path in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("atalaia ")


def test_help_loads_no_heavy_library() -> None:
    probe = (
        "import sys\n"
        "from atalaia.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "    assert main(['--version']) == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_a_command_s_choices_come_from_the_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lists", "add", "--help"]) == 0
    assert "email_domain" in capsys.readouterr().out
    assert main(["lists", "add", "nonsense", "v", "--severity", "HIGH", "--reason", "r"]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
