"""Operator mistakes end with one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atalaia.broker import free_port
from atalaia.cli import main
from atalaia.replay import read_rows
from config.settings import load_settings
from schemas.codec import WireCodec
from schemas.models import TransactionEvent


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["bogus"], {}, "invalid choice: 'bogus'"),
        (["produce", "x.csv"], {}, "the following arguments are required: --kind"),
        (["demo", "--transactions", "-3"], {}, "expected a positive integer, got '-3'"),
        (["api", "--port", "99999"], {}, "expected a port number (1-65535), got '99999'"),
        (["api"], {"ATALAIA_API_PORT": "0"}, "api_port: Input should be greater than or equal"),
        (
            ["tail"],
            {"ATALAIA_PARTITIONS": "0"},
            "invalid setting: partitions: Input should be greater than or equal to 1",
        ),
        (
            ["tail"],
            {"ATALAIA_PROFILE": "rabbit"},
            "profile: Input should be 'tansu', 'tansu-test' or 'kafka'",
        ),
        (
            ["tail"],
            {"ATALAIA_BOOTSTRAP_SERVERS": "localhost"},
            "bootstrap_servers: Value error, must be a comma-separated list of host:port",
        ),
        (
            ["tail"],
            {"ATALAIA_RULES_PATH": "/nonexistent/rules.toml"},
            "rules file not found: /nonexistent/rules.toml",
        ),
        (["--config", "/nonexistent.toml", "tail"], {}, "config file not found"),
        (["produce", "/nonexistent.csv", "--kind", "gift"], {}, "no such file: /nonexistent.csv"),
        (
            ["eval", "handbook", "--from", "2018-07-31", "--to", "2018-07-01"],
            {},
            "atalaia eval: expected --start < --from <= --to",
        ),
        (["eval", "handbook", "--from", "July"], {}, "expected a day YYYY-MM-DD, got 'July'"),
        (
            ["eval", "handbook", "--offline"],
            {"ATALAIA_HANDBOOK_PATH": "/nonexistent.csv.gz"},
            "handbook data not found: /nonexistent.csv.gz",
        ),
        (
            [
                "backtest",
                "--config",
                "/nonexistent.toml",
                "--from",
                "2026-01-02",
                "--to",
                "2026-01-01",
            ],
            {},
            "atalaia backtest: --from is after --to",
        ),
        (
            [
                "backtest",
                "--config",
                "/nonexistent.toml",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-01",
            ],
            {},
            "rules file not found: /nonexistent.toml",
        ),
        (
            ["learner"],
            {"ATALAIA_CHALLENGER_RULES_PATH": "/nonexistent.toml"},
            "rules file not found: /nonexistent.toml",
        ),
        (
            ["worker"],
            {"ATALAIA_STOP_GRACE_S": "0"},
            "invalid setting: stop_grace_s: Input should be greater than 0",
        ),
        (
            ["worker"],
            {"ATALAIA_STOP_GRACE_S": "nan"},
            "invalid setting: stop_grace_s: Input should be less than or equal to 3600",
        ),
        (
            ["worker"],
            {"ATALAIA_STOP_GRACE_S": "1e400"},
            "invalid setting: stop_grace_s: Input should be less than or equal to 3600",
        ),
        (
            ["worker"],
            {"ATALAIA_STOP_GRACE_S": "twenty"},
            "invalid setting: stop_grace_s: Input should be a valid number",
        ),
    ],
)
def test_bad_arguments_get_one_line(
    argv: list[str],
    env: dict[str, str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, err = _run(argv, capsys)
    assert code == 2
    assert expected in err
    assert len(err.splitlines()) == 1, err


def test_config_file_values_and_env_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "atalaia.toml"
    config.write_text('topic_prefix = "from-file"\npartitions = 3\n')
    monkeypatch.setenv("ATALAIA_PARTITIONS", "9")
    settings = load_settings(config)
    assert (settings.topic_prefix, settings.partitions) == ("from-file", 9)


def test_config_file_with_unknown_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "atalaia.toml"
    config.write_text("partitons = 3\n")
    code, err = _run(["--config", str(config), "tail"], capsys)
    assert code == 2
    assert "partitons: Extra inputs are not permitted" in err


def test_wrong_file_type_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.txt"
    events.write_text("x")
    code, err = _run(["produce", str(events), "--kind", "login"], capsys)
    assert (code, err) == (2, f"atalaia: {events}: expected a .csv or .jsonl file")


def test_unreachable_broker_is_one_line_in_a_real_process() -> None:
    port = free_port()  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", "atalaia", "tail", "--idle-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "ATALAIA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("atalaia: cannot reach the broker")
    assert "Traceback" not in done.stderr


def test_csv_cells_become_contract_types(tmp_path: Path) -> None:
    rows = tmp_path / "tx.csv"
    rows.write_text(
        "event_id,occurred_at,tx_type,user_id,amount_cents,lat,network_flags,channel\n"
        "t1,1763812800000,PIX_TRANSFER,u1,1500,-23.5,VPN|TOR,\n"
    )
    (row,) = read_rows(rows, WireCodec(), TransactionEvent)
    assert row == {
        "event_id": "t1",
        "occurred_at": 1763812800000,
        "tx_type": "PIX_TRANSFER",
        "user_id": "u1",
        "amount_cents": 1500,
        "lat": -23.5,
        "network_flags": ["VPN", "TOR"],
    }
    TransactionEvent.model_validate(row)
