"""``atalaia up``: the whole stack as local processes, used as an operator would. Every
process gets ready and says why; what the dashboard and the alerts name is served; a CRITICAL
hit freezes the account until an admin unfreezes it; decisions are explained and measured
through the API; logs are JSON lines with no personal data; SIGTERM (and Ctrl-C) stop it
all."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from atalaia.broker import EmbeddedBroker, free_port, wait_for_port
from config.auth import key_digest
from schemas.models import Alert, AuditRecord, Decision, TransactionEvent
from streams.topics import Topics
from tests import factories
from tests.integration.helpers import API_KEYS, collect, read_all
from tests.unit.test_dashboards import _SELECTOR, PROMETHEUS_OWN, expressions

pytestmark = pytest.mark.integration

READY_S = 300.0
SANCTIONED = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"  # config/default_lists.toml, CRITICAL
_ROW = re.compile(r"^  (\S+)\s+(\d+)  (.*)$")


@dataclass
class Stack:
    process: subprocess.Popen[str]
    env: dict[str, str]
    data: Path
    services: dict[str, tuple[int, str]]
    """name -> (pid, where it serves)"""
    lines: queue.Queue[str]
    pumping: threading.Thread
    output: list[str] = field(default_factory=list)
    ready_after_s: float = 0.0

    def setting(self, name: str) -> str:
        return self.env[f"ATALAIA_{name.upper()}"]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.setting('api_port')}"

    def port(self, service: str) -> int:
        found = re.search(r"http://127\.0\.0\.1:(\d+)", self.services[service][1])
        assert found is not None
        return int(found.group(1))

    def read_until(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None or not self.lines.empty(), self.dump()
                continue
            self.output.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in {READY_S}s:\n{self.dump()}")

    def dump(self) -> str:
        return "".join(self.output)[-4000:]


def _env(tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    keys = ",".join(f"{role}-key:{role}:{key_digest(key)}" for role, key in API_KEYS.items())
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATALAIA_")}
    return {
        **base,
        "ATALAIA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "ATALAIA_API_PORT": str(free_port()),
        "ATALAIA_SINK_PORT": str(free_port()),
        "ATALAIA_DATA_DIR": str(tmp / "data"),
        "ATALAIA_TOPIC_PREFIX": f"up-{uuid.uuid4().hex[:8]}",
        "ATALAIA_APP_ID": f"atalaia-up-{uuid.uuid4().hex[:8]}",
        "ATALAIA_PARTITIONS": "4",
        "ATALAIA_API_KEYS": keys,
        **extra,
    }


def _start(args: list[str], env: dict[str, str], data: Path) -> Stack:
    process = subprocess.Popen(
        [sys.executable, "-m", "atalaia", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    stack = Stack(process, env, data, {}, lines, pumping)
    try:
        ready = stack.read_until("processes ready in", READY_S)
        stack.ready_after_s = float(re.findall(r"ready in ([\d.]+) s", ready)[0])
        while True:
            line = stack.read_until("", 10)
            row = _ROW.match(line)
            if row:
                stack.services[row.group(1)] = (int(row.group(2)), row.group(3))
            if line.startswith("Ctrl-C"):
                return stack
    except BaseException:
        _close(stack)
        raise


def _stop(stack: Stack, how: signal.Signals) -> int:
    stack.process.send_signal(how)
    try:
        return stack.process.wait(timeout=90)
    finally:
        _close(stack)


def _close(stack: Stack) -> None:
    """Kill ``up`` if it still runs, and every process it had started; close its output."""
    if stack.process.poll() is None:
        stack.process.kill()
        stack.process.wait()
    for pid, _ in stack.services.values():
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    stack.pumping.join(timeout=10)
    if stack.process.stdout is not None:
        stack.process.stdout.close()


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from stellar_sdk import Keypair

    tmp = tmp_path_factory.mktemp("up")
    (tmp / "domains.txt").write_text("mailinator.com\nyopmail.com\n")
    (tmp / "feeds.toml").write_text(
        '[[feeds]]\nname = "temp-mail"\nkind = "email-domains"\nsource = "domains.txt"\n'
    )
    env = _env(
        tmp,
        {
            "ATALAIA_FEEDS_FILE": str(tmp / "feeds.toml"),
            "ATALAIA_STELLAR_SECRET": Keypair.random().secret,
            "ATALAIA_LOG_FORMAT": "json",
        },
    )
    started = _start(["--workers", "2"], env, tmp / "data")
    yield started
    _stop(started, signal.SIGTERM)  # its broker too (a kill would leave it running)


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_every_service_gets_ready_and_says_why(stack: Stack) -> None:
    assert set(stack.services) == {
        "worker-1",
        "worker-2",
        "auditor",
        "learner",
        "sink",
        "api",
        "feeds",
        "anchor",
    }
    print(f"\natalaia up: ready after {stack.ready_after_s} s")
    partitions = 0
    for name in stack.services:
        port = stack.port(name)
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, name
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["status"] == "ready", (name, body)
        assert all(check["ok"] for check in body["checks"].values()), (name, body)
        print(f"  {name}: {json.dumps(body['checks'])}")
        if name.startswith("worker"):
            assert {"partitions", "views", "model", "rules"} <= body["checks"].keys()
            found = re.match(r"(\d+) partitions", body["checks"]["partitions"]["detail"])
            assert found is not None
            partitions += int(found.group(1))
    assert partitions == 4  # two workers share the four partitions
    health = _atalaia(stack, "health", "--port", str(stack.port("worker-1")))
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "ready"
    live = _atalaia(stack, "health", "--port", str(stack.port("sink")), "--live")
    assert live.returncode == 0 and json.loads(live.stdout)["status"] == "alive"
    nothing = _atalaia(stack, "health", "--port", str(free_port()))
    assert nothing.returncode == 1 and "Connection refused" in nothing.stderr


def _served_series(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        text = page.read().decode()
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def test_every_metric_the_dashboard_and_the_alerts_name_is_served(stack: Stack) -> None:
    served = set().union(*(_served_series(stack.port(name)) for name in stack.services))
    named = {
        name
        for _, expr in expressions()
        for name, _ in _SELECTOR.findall(expr)
        if name not in PROMETHEUS_OWN
    }
    assert named - served == set()


def _decide(stack: Stack, event: TransactionEvent) -> Decision:
    """The engine's decision: the API's answer, or from the decisions topic if it was late."""
    request = urllib.request.Request(
        f"{stack.api}/v1/decide/transaction",
        data=event.model_dump_json().encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if answer["source"] == "engine":
        answer.pop("source")
        answer.pop("answered_in_ms")
        return Decision.model_validate(answer)
    topics = Topics(stack.setting("topic_prefix"))
    out = asyncio.run(collect(stack.setting("bootstrap_servers"), topics, {event.event_id}))
    return next(d for _, d in out.decisions if d.event_id == event.event_id)


def _atalaia(stack: Stack, *args: str, role: str = "admin") -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "ATALAIA_API_KEY": API_KEYS[role]}
    return subprocess.run(
        [sys.executable, "-m", "atalaia", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _transaction(user: str, **fields: Any) -> TransactionEvent:
    return factories.transaction(
        event_id=f"up-{uuid.uuid4().hex[:10]}",
        user_id=user,
        occurred_at=datetime.now(UTC),
        amount_cents=1_500,
        ip="198.51.100.23",
        **fields,
    )


def _sanctioned_swap(user: str) -> TransactionEvent:
    return _transaction(user, counterparty_wallet=SANCTIONED, tx_type="CRYPTO_SWAP")


def _explained(stack: Stack, event_id: str) -> subprocess.CompletedProcess[str]:
    """``atalaia explain`` of the event, once the sink has stored its decision."""
    deadline = time.monotonic() + 120
    explained = _atalaia(stack, "explain", event_id, role="analyst")
    while explained.returncode != 0 and time.monotonic() < deadline:
        assert "answered 404" in explained.stderr, explained.stderr
        time.sleep(1)
        explained = _atalaia(stack, "explain", event_id, role="analyst")
    assert explained.returncode == 0, explained.stderr
    return explained


def test_a_critical_hit_freezes_the_account_until_an_admin_unfreezes_it(stack: Stack) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"

    def transaction(**fields: Any) -> TransactionEvent:
        return _transaction(user, **fields)

    hit = _decide(stack, _sanctioned_swap(user))
    assert hit.decision.value == "BLOCK" and "FREEZE_ACCOUNT" in hit.actions
    plain = transaction()
    frozen = _decide(stack, plain)
    assert frozen.decision.value == "BLOCK"
    assert "ACCOUNT_FROZEN" in [r.code for r in frozen.reasons]

    status, listed = _get(f"{stack.api}/api/admin/accounts", API_KEYS["analyst"])
    assert status == 200 and user in [a["user_id"] for a in listed["accounts"]]
    refused = _atalaia(stack, "accounts", "unfreeze", user, "--reason", "x", role="analyst")
    assert refused.returncode == 1 and "403" in refused.stderr  # admins unfreeze

    explained = _explained(stack, plain.event_id)
    assert "ACCOUNT_FROZEN" in explained.stdout and "blocks in force  account_frozen" in (
        explained.stdout
    )
    assert "account now      frozen" in explained.stdout
    as_json = json.loads(_atalaia(stack, "explain", hit.event_id, "--json").stdout)
    assert as_json["decision"] == "BLOCK" and as_json["rule_version"] == hit.rule_version
    (listing,) = [h for h in as_json["list_hits"] if h["entity_type"] == "wallet"]
    assert listing["severity"] == "CRITICAL" and listing["entry"]["entry_id"].startswith("BLOCK:")
    assert {r["code"]: r["points"] for r in as_json["reasons"]}["BLACKLIST_LIST_HIT"] == 100
    assert as_json["features"]["lists"] and as_json["features"]["velocity"]

    unfrozen = _atalaia(stack, "accounts", "unfreeze", user, "--reason", "reviewed")
    assert unfrozen.returncode == 0, unfrozen.stderr
    assert json.loads(unfrozen.stdout)["frozen"] is False
    deadline = time.monotonic() + 60
    while True:  # every worker follows the account-states topic
        after = _decide(stack, transaction())
        if "ACCOUNT_FROZEN" not in [r.code for r in after.reasons]:
            break
        assert time.monotonic() < deadline, "the unfreeze did not reach the workers"
        time.sleep(1)
    assert after.decision.value != "BLOCK"

    topics = Topics(stack.setting("topic_prefix"))
    bootstrap = stack.setting("bootstrap_servers")
    audits = asyncio.run(read_all(bootstrap, topics.audit_intake, AuditRecord))
    changes = [  # the intake's partitions interleave its producers: in the order they acted
        (a.action, a.actor.id)
        for a in sorted(audits, key=lambda a: a.timestamp)
        if a.compliance.data_subject == user and a.action.startswith("account_")
    ]
    assert changes == [("account_freeze", "engine"), ("account_unfreeze", "admin-key")]
    deadline = time.monotonic() + 60
    while True:
        alerts = asyncio.run(read_all(bootstrap, topics.alerts, Alert))
        if any(a.rule == "blacklist_hit_critical" and a.event_id == hit.event_id for a in alerts):
            break
        assert time.monotonic() < deadline, "no CRITICAL hit alert"
        time.sleep(1)


def test_metrics_and_reports_answer_from_the_store(stack: Stack) -> None:
    key = API_KEYS["analyst"]
    today = datetime.now(UTC).date().isoformat()
    assert _decide(stack, _sanctioned_swap(f"u-{uuid.uuid4().hex[:8]}")).decision.value == "BLOCK"
    deadline = time.monotonic() + 120
    while True:  # the sink stores the decision
        status, metrics = _get(f"{stack.api}/api/admin/fraud-metrics?from={today}", key)
        assert status == 200, metrics
        assert {"detection_quality", "closed_cases", "latency", "throughput", "list_hits"} <= (
            metrics.keys()
        )
        # One request asks section by section: the row may land between two of them.
        stored = sum(row["decisions"] for row in metrics["throughput"]) > 0
        if stored and any(row["severity"] == "CRITICAL" for row in metrics["list_hits"]):
            break
        assert time.monotonic() < deadline, f"no CRITICAL list hit in the store: {metrics}"
        time.sleep(1)
    assert metrics["latency"] and all(row["p99_ms"] >= row["p50_ms"] for row in metrics["latency"])
    status, daily = _get(f"{stack.api}/api/admin/reports/daily?date={today}", key)
    assert status == 200 and daily["decisions"], daily
    assert _get(f"{stack.api}/api/admin/reports/performance", key)[0] == 200
    assert _get(f"{stack.api}/api/admin/reports/nope", key)[0] == 404
    assert _get(f"{stack.api}/api/admin/fraud-metrics?from=July", key)[0] == 422
    assert _get(f"{stack.api}/api/admin/fraud-metrics")[0] == 401


def test_logs_are_json_lines_without_personal_data(stack: Stack) -> None:
    # Traffic of its own, carrying the IP and the wallet, through every service to the store.
    _explained(stack, _decide(stack, _sanctioned_swap(f"u-{uuid.uuid4().hex[:8]}")).event_id)
    logs = stack.data / "logs"
    for name in stack.services:
        lines = (logs / f"{name}.log").read_text().splitlines()
        assert lines, name
        for line in lines:
            record = json.loads(line)  # one object per line
            assert {"time", "level", "logger", "service", "message"} <= record.keys(), line
        text = "\n".join(lines)
        assert "198.51.100.23" not in text and SANCTIONED.lower() not in text.lower(), name


def test_sigterm_stops_every_process(tmp_path: Path) -> None:
    # A stack of its own: the module's is shared by tests that may run after this one.
    stack = _start([], _env(tmp_path, {}), tmp_path / "data")
    assert _stop(stack, signal.SIGTERM) == 0
    rest = "".join(stack.output) + "".join(iter_queue(stack.lines))
    assert "atalaia up: SIGTERM: stopping everything" in rest and "atalaia up: stopped" in rest
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid, _ in stack.services.values()):
        assert time.monotonic() < deadline, "a process outlived atalaia up"
        time.sleep(0.2)
    assert not wait_for_port("127.0.0.1", int(stack.setting("api_port")), 0.5)
    broker_port = int(stack.setting("bootstrap_servers").rsplit(":", 1)[1])
    assert not wait_for_port("127.0.0.1", broker_port, 0.5), "the embedded broker is left"


def iter_queue(lines: queue.Queue[str]) -> Iterator[str]:
    while not lines.empty():
        yield lines.get()


def test_ctrl_c_stops_a_stack_on_a_given_kafka(tmp_path: Path) -> None:
    # A broker of its own: were the stack to stop the Kafka it was given, the session's
    # broker would be gone for every later test.
    with EmbeddedBroker(log_file=tmp_path / "given.log") as broker:
        _ctrl_c_stops_a_stack_on(broker, tmp_path)


def _ctrl_c_stops_a_stack_on(broker: EmbeddedBroker, tmp_path: Path) -> None:
    others = ("api", "auditor", "learner", "sink", "feeds", "anchor")
    without = [arg for service in others for arg in ("--without", service)]
    env = _env(tmp_path, {"ATALAIA_BOOTSTRAP_SERVERS": broker.bootstrap_servers})
    kafka = ["--kafka", broker.bootstrap_servers, "--profile", "tansu"]
    started = _start([*kafka, *without], env, tmp_path)
    try:
        assert set(started.services) == {"worker-1"}
        status, ready = _get(f"http://127.0.0.1:{started.port('worker-1')}/readyz")
        assert status == 200 and ready["checks"]["model"] == {
            "ok": True,
            "detail": "no snapshot published yet: the rules score alone",
        }
        assert f"Kafka on {broker.bootstrap_servers}" in "".join(started.output)
        assert _stop(started, signal.SIGINT) == 0
        ((pid, _),) = started.services.values()
        deadline = time.monotonic() + 30
        while not _gone(pid):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert wait_for_port("127.0.0.1", broker.port, 1), "a given Kafka is not stopped"
        assert (tmp_path / "data" / "up" / "worker-1").is_dir()  # state kept with a Kafka
    finally:
        _close(started)


def test_a_busy_broker_port_is_one_line_and_exit_one(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = _env(tmp_path, {"ATALAIA_BOOTSTRAP_SERVERS": f"127.0.0.1:{taken.getsockname()[1]}"})
        done = subprocess.run(
            [sys.executable, "-m", "atalaia", "up"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "is already in use: give a running Kafka with --kafka" in done.stderr
    assert "Traceback" not in done.stderr
