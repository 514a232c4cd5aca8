"""The CLI against the real broker: produce a file, tail the decisions, run the demo (once
per test run, with every option, for the checks of each part)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from atalaia.broker import wait_for_port
from atalaia.supervise import SUPERVISOR_PID_ENV, WorkerProcess, settings_env
from config.settings import Settings
from engine.scenarios import DEFAULT_SEED, FRAUD_BEHAVIOURS, generate
from schemas.models import TransactionEvent
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import collect

pytestmark = pytest.mark.integration


def _atalaia(
    args: list[str], settings: Settings | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **(settings_env(settings) if settings else {})}
    return subprocess.run(
        [sys.executable, "-m", "atalaia", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_produce_csv_and_jsonl_then_tail(
    engine_settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    gifts = [factories.gift(amount_cents=250_000), factories.gift()]
    jsonl = tmp_path / "gifts.jsonl"
    jsonl.write_text("".join(g.model_dump_json() + "\n" for g in gifts))
    csv_file = tmp_path / "logins.csv"
    csv_file.write_text(
        "event_id,occurred_at,user_id,success,method,ip,network_flags\n"
        "csv-login-1,1763812800000,u1,false,PASSWORD,203.0.113.9,TOR|VPN\n"
        "csv-login-2,1763812800001,u2,true,OTP,,\n"
    )
    start_worker()

    sent_json = _atalaia(["produce", str(jsonl), "--kind", "gift"], engine_settings, 60)
    sent_avro = _atalaia(
        ["produce", str(csv_file), "--kind", "login", "--avro"], engine_settings, 60
    )
    assert sent_json.returncode == 0, sent_json.stderr
    assert sent_avro.returncode == 0, sent_avro.stderr
    assert f"sent 2 records to {engine_settings.topic_prefix}.logins" in sent_avro.stdout

    wanted = {g.event_id for g in gifts} | {"csv-login-1", "csv-login-2"}
    asyncio.run(
        collect(engine_settings.bootstrap_servers, Topics(engine_settings.topic_prefix), wanted)
    )
    tail = _atalaia(["tail", "--from-beginning", "--limit", "4"], engine_settings, 60)
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 4
    blocked = next(line for line in lines if gifts[0].event_id in line)
    assert "BLOCK CRITICAL 100" in blocked and "GIFT_AMOUNT_OVER_LIMIT+100" in blocked
    assert "203.0.113.9" not in tail.stdout


def test_avro_produce_reports_invalid_rows_and_exits_non_zero(
    engine_settings: Settings, tmp_path: Path
) -> None:
    rows = tmp_path / "tx.jsonl"
    good = factories.transaction()
    bad = good.model_copy(update={"event_id": "neg"}).model_dump(mode="json") | {"amount_cents": -5}
    rows.write_text(good.model_dump_json() + "\n" + json.dumps(bad) + "\n")
    done = _atalaia(["produce", str(rows), "--kind", "transaction", "--avro"], engine_settings, 60)
    assert done.returncode == 1
    assert (
        f"{rows}: row 2: TransactionEvent: amount_cents: Input should be greater than 0"
        in done.stderr
    )
    assert "sent 1 records" in done.stdout and "1 rows rejected" in done.stdout


def _children_of(supervisor: int, command: str) -> list[int]:
    """The running ``atalaia COMMAND`` processes that ``supervisor`` started: each has its pid
    in ``ATALAIA_SUPERVISOR_PID`` (other tests' and other users' processes do not)."""
    marker = f"{SUPERVISOR_PID_ENV}={supervisor}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            cmdline = (environ.parent / "cmdline").read_bytes().split(b"\0")
            if cmdline[1:4] == [b"-m", b"atalaia", command.encode()] and marker in (
                environ.read_bytes().split(b"\0")
            ):
                found.append(int(environ.parent.name))
        except (OSError, IndexError):
            continue  # ended meanwhile, or not ours to read
    return found


@dataclass
class DemoRun:
    pid: int
    code: int
    stdout: str
    stderr: str
    left_running: list[str]
    """What the demo left behind, looked at as soon as it ended (its broker, its children):
    the run is shared, and later the broker's port may be another test's."""


DEMO_SCENARIO_USERS = 20


def _run_demo() -> DemoRun:
    args = ["demo", "--transactions", "300", "--gifts", "100", "--burst"]
    args += ["--scenarios", str(DEMO_SCENARIO_USERS)]
    args += ["--analytics", "--audit", "--learning"]
    with subprocess.Popen(
        [sys.executable, "-m", "atalaia", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ATALAIA_PROFILE": "tansu-test"},
    ) as demo:
        stdout, stderr = demo.communicate(timeout=400)
    port = re.search(r"broker on 127\.0\.0\.1:(\d+)", stderr)
    left = [] if port else ["no broker port printed"]
    if port and wait_for_port("127.0.0.1", int(port.group(1)), 0.5):
        left.append("broker")
    left += [c for c in ("worker", "learner", "auditor", "sink") if _children_of(demo.pid, c)]
    return DemoRun(demo.pid, demo.returncode, stdout, stderr, left)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One ``atalaia demo`` with every option (analytics, audit, learning), run once for the
    tests below: each checks its part of the same summary. Under pytest-xdist the test
    processes share it through a file in the run's temporary directory: the first that
    needs it runs it, holding a lock, and the others read what it left."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _run_demo()
    shared = tmp_path_factory.getbasetemp().parent  # one per run, common to its processes
    with (shared / "demo-run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = shared / "demo-run.json"
        if kept.exists():
            return DemoRun(**json.loads(kept.read_text()))
        run = _run_demo()
        kept.write_text(json.dumps(asdict(run)))
        return run


def test_demo_runs_to_completion_and_shuts_down(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.stderr[-2000:]
    out = demo_run.stdout
    assert "Atalaia demo summary" in out
    valid = 400 + len(generate(DEFAULT_SEED, DEMO_SCENARIO_USERS))
    assert f"events sent           {valid + 4} ({valid} valid, 4 invalid)" in out
    assert f"decisions             {valid} unique" in out
    table = out[out.index("labelled fraud scenarios") :]
    for behaviour in FRAUD_BEHAVIOURS:  # each behaviour's row, decided through the worker
        assert f"| {behaviour} | fraud |" in table
    assert "undecided" not in table
    assert '"FutureTimestamp": 1, "MalformedPayload": 1, "UnknownSchemaId": 1' in out
    assert "p50" in out and "events/s" in out
    assert demo_run.left_running == []


def test_demo_stops_its_broker_and_worker_on_sigterm() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "atalaia", "demo", "--transactions", "5000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ATALAIA_PROFILE": "tansu-test"},
    )
    assert demo.stderr is not None
    first_line = demo.stderr.readline()  # "broker on 127.0.0.1:PORT; starting worker..."
    port = re.search(r"broker on 127\.0\.0\.1:(\d+)", first_line)
    assert port is not None, first_line
    assert demo.stderr.readline().startswith("worker ready after"), "worker did not start"
    assert len(_children_of(demo.pid, "worker")) == 1
    demo.terminate()  # mid-replay
    assert demo.wait(timeout=60) == 130
    demo.stderr.close()
    assert not wait_for_port("127.0.0.1", int(port.group(1)), 0.5), "broker left running"
    assert _children_of(demo.pid, "worker") == [], "worker left running"


def test_demo_with_analytics_prints_the_daily_report_of_its_data(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.stderr[-2000:]
    report = demo_run.stdout.split("# Atalaia daily report, ", 1)[1]
    assert report.startswith("2018-04-01")  # the handbook's first day holds the most
    assert "| transaction | ALLOW | 300 |" in report  # every handbook transaction that day
    assert "## Top reasons" in report and "## Alerts" in report


def test_demo_with_audit_verifies_the_audit_log_of_its_decisions(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.stderr[-2000:]
    found = re.search(
        r"audit log +(\d+) records in \d+ chains, \d+ Merkle batches, every record sealed: "
        r"verified OK",
        demo_run.stdout,
    )
    assert found is not None, demo_run.stdout[-2000:]
    valid = 400 + len(generate(DEFAULT_SEED, DEMO_SCENARIO_USERS))
    # every decision and the warm-up's, and the engine's freezes of the accounts of those
    # the scenarios list (a CRITICAL hit freezes an account)
    assert int(found.group(1)) >= valid + 1


def test_demo_with_learning_scores_with_the_model_and_compares_a_challenger(
    demo_run: DemoRun,
) -> None:
    assert demo_run.code == 0, demo_run.stderr[-2000:]
    out = demo_run.stdout
    scenarios = generate(DEFAULT_SEED, DEMO_SCENARIO_USERS)
    transactions = 300 + sum(isinstance(i.event, TransactionEvent) for i in scenarios)
    flows = len(scenarios) - transactions + 300 + 100  # the logins and gift events
    assert f"{'online-3':<26}{transactions:>6} decisions scored" in out
    assert f"{'flow-1':<26}{flows:>6} decisions scored" in out
    assert "challenger in shadow (atalaia shadow)" in out
    assert f"events: {400 + len(scenarios):,}; same verdict:" in out
    assert "champion 2026." in out and "vs challenger challenger-1/online-3-w10" in out
    assert "on 300 labelled events" in out
