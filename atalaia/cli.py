"""The ``atalaia`` command: run the engine's services, feed and read its topics, administer
lists, cases and accounts, explain and report decisions, check the audit log.

Operator mistakes (bad flags, settings, files) end with one line on stderr and exit code 2;
they never print a traceback. Heavy libraries load only in the commands that use them:
``atalaia --help`` imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atalaia.compiled import stale_message, stale_sources

if TYPE_CHECKING:
    from config.settings import Settings

USAGE_ERROR = 2
INTERRUPTED = 130
SERVICES = ("worker", "api", "auditor", "sink", "learner")
"""Commands that run until stopped; the others are clients that end by themselves (``feeds
run`` and ``audit anchor --schedule`` run until stopped too)."""

EXIT_CODES = """exit codes:
  0    done (a service stopped by SIGINT or SIGTERM ends with 0 too)
  1    the command ran and failed: a broker, store or API it needs cannot be reached, the
       API refused the call, a check failed (audit verify, a feed refresh, the demo), a
       service died or did not finish stopping within stop_grace_s, or the compiled modules
       are older than their sources (make compile)
  2    usage: a bad option or argument, an invalid setting, a missing or invalid file
       (config, rules, feeds, input), a missing API key
  130  interrupted (Ctrl-C) before the command finished
settings: ATALAIA_* environment variables or a TOML file (--config); see docs/deployment.md"""

_ERRORS: tuple[tuple[str, str, int | None], ...] = (
    ("atalaia.cli", "CliError", USAGE_ERROR),
    ("config.settings", "SettingsError", USAGE_ERROR),
    ("config.rules", "RulesError", USAGE_ERROR),
    ("atalaia.replay", "ReplayError", USAGE_ERROR),
    ("atalaia.evaluate", "EvalError", USAGE_ERROR),
    ("atalaia.feeds", "FeedError", USAGE_ERROR),
    ("sinks.clickhouse", "StoreUnavailable", USAGE_ERROR),
    ("atalaia.audit", "AuditError", 1),
    ("sinks.key_store", "KeyStoreError", 1),
    ("atalaia.analytics", "AnalyticsError", 1),
    ("atalaia.admin_cli", "AdminCallError", None),  # carries its own code
    ("atalaia.broker", "BrokerError", 1),
    ("atalaia.demo", "DemoError", 1),
    ("atalaia.up", "UpError", 1),
    ("streams.reader", "MissingTopicError", 1),
    ("streams.end_offsets", "EndOffsetsError", 1),
)
"""The errors that end a command with one line, by module: looked up only in modules already
imported (an error can only come from one), so the CLI imports none of them up front."""


class CliError(Exception):
    """A one-line message for the operator."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        """argparse prints the full usage; one line is enough."""
        raise CliError(f"{self.prog}: {message}")


class _Choices:
    """Choices read from the schemas only when a command's arguments are parsed or its help
    printed: importing them (pydantic) costs more than ``atalaia --help`` may take."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    @cached_property
    def values(self) -> tuple[str, ...]:
        kind = getattr(importlib.import_module(self.module), self.name)
        return tuple(member.value for member in kind)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __len__(self) -> int:
        return len(self.values)


def _schema_choices(name: str, metavar: str) -> dict[str, Any]:
    """``choices`` of a schemas enum, with a ``metavar``: argparse would otherwise list the
    choices (import them) as each argument is added."""
    return {"choices": _Choices("schemas.models", name), "metavar": metavar}


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def _non_negative(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day YYYY-MM-DD, got {value!r}") from None


def _port(value: str) -> int:
    port = _positive(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {value!r}")
    return port


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"atalaia {version('atalaia')}"
    except PackageNotFoundError:
        return "atalaia (not installed)"


class _Version(argparse.Action):
    """``--version``: the installed version, read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(_version())
        parser.exit()


def _command(commands: Any, name: str, help: str, description: str | None = None) -> Any:
    """A subcommand whose ``--help`` starts with ``help`` (and ``description``)."""
    text = help[0].upper() + help[1:] + "." + (f"\n\n{description}" if description else "")
    return commands.add_parser(name, help=help, description=text, epilog=EXIT_CODES)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="atalaia",
        description="Atalaia, a streaming fraud engine: run its services, feed and read its "
        "topics, administer lists, cases and accounts, explain and report decisions, check "
        "the audit log.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (default: $ATALAIA_CONFIG, if set)"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    _service_parsers(commands)
    _client_parsers(commands)
    _admin_parsers(commands)
    _analyst_parsers(commands)
    _audit_parsers(commands)
    _learning_parsers(commands)
    _demo_parser(commands)
    return parser


def _service_parsers(commands: Any) -> None:
    """The processes of a deployment, and ``up`` that runs them all."""
    up = _command(
        commands,
        "up",
        "run the whole stack locally: broker, workers, api, auditor, learner, sink, feeds, anchor",
        "Starts each service as a process, waits until each answers /readyz, prints where "
        "everything is, and stops them all on Ctrl-C or SIGTERM. The broker is the embedded "
        "Tansu (memory only, on the port of ATALAIA_BOOTSTRAP_SERVERS) unless --kafka names "
        "one.",
    )
    up.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    up.add_argument(
        "--without",
        action="append",
        default=[],
        choices=["api", "auditor", "learner", "sink", "feeds", "anchor"],
        help="leave this service out (repeatable)",
    )
    up.add_argument("--kafka", metavar="HOST:PORT[,...]", help="use this Kafka, no embedded broker")
    up.add_argument(
        "--profile",
        choices=["tansu", "kafka"],
        help="broker profile with --kafka (default kafka; the embedded broker is always tansu)",
    )
    up.add_argument(
        "--ready-timeout",
        type=_seconds,
        default=240.0,
        help="seconds every process has to get ready (default 240)",
    )
    broker = _command(
        commands, "broker", "run the embedded Tansu broker on 127.0.0.1 (memory only)"
    )
    broker.add_argument("--port", type=_port, help="port (default: from bootstrap_servers)")
    _command(
        commands,
        "worker",
        "run the engine: validate, score and decide every input event (Faust worker)",
        "Run as many as the topics have partitions; they share the work. Metrics and "
        "health on metrics_host:metrics_port when set.",
    )
    api = _command(
        commands,
        "api",
        "serve synchronous decisions and the admin API over HTTP",
        "POST /v1/decide/{kind}, /api/admin/..., /metrics, /healthz, /readyz on "
        "api_host:api_port (127.0.0.1:8088 by default).",
    )
    api.add_argument("--port", type=_port, help="port (default: api_port setting)")
    _command(commands, "auditor", "run the audit chains' writer (Faust worker, one per deployment)")
    _command(
        commands,
        "sink",
        "run the ClickHouse writer and alerter for analysts (Faust worker)",
        "Also answers read-only queries, metrics and health on sink_host:sink_port.",
    )
    _command(commands, "learner", "run the online models' writer (one per deployment)")
    feeds = _command(
        commands,
        "feeds",
        "list feeds (OFAC, PEP, temporary e-mail domains, sanctioned wallets, ...)",
        "Feeds are named in the TOML file of ATALAIA_FEEDS_FILE; see docs/operations.md.",
    )
    feeds_commands = feeds.add_subparsers(
        dest="feeds_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    _command(
        feeds_commands,
        "run",
        "refresh every feed every feeds_interval_hours until stopped (the service)",
    )
    refresh = _command(feeds_commands, "refresh", "refresh the feeds once, now")
    refresh.add_argument("--feed", help="only the feed of this name")
    _command(feeds_commands, "list", "show the configured feeds and the feed kinds known")
    health = _command(
        commands,
        "health",
        "ask a running process whether it is ready (or alive)",
        "Exit 0 when it answers 200, 1 otherwise; prints its checks. For container health "
        "checks: `atalaia health --port 9100`.",
    )
    health.add_argument(
        "--port", type=_port, help="its metrics/health port (default: metrics_port setting)"
    )
    health.add_argument("--host", default="127.0.0.1", help="its address (default 127.0.0.1)")
    health.add_argument(
        "--live", action="store_true", help="ask /healthz (alive) instead of /readyz (ready)"
    )


def _client_parsers(commands: Any) -> None:
    """Feeding events in, reading decisions out, changing the rules."""
    produce = _command(commands, "produce", "replay a CSV/JSONL file of events to an input topic")
    produce.add_argument("file", type=Path, help="CSV (with a header) or JSONL of events")
    produce.add_argument(
        "--kind",
        required=True,
        choices=["transaction", "login", "gift"],
        help="the events' kind (their contract and input topic)",
    )
    produce.add_argument(
        "--avro",
        action="store_true",
        help="validate and send Confluent-framed Avro instead of JSON",
    )
    tail = _command(commands, "tail", "print decisions as they arrive")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest decision kept"
    )
    tail.add_argument("--limit", type=_positive, help="stop after N decisions")
    tail.add_argument(
        "--idle-timeout", type=float, help="stop after this many seconds without a decision"
    )
    config = _command(commands, "config", "runtime configuration")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    push = _command(
        config_commands,
        "push",
        "validate a rules file and publish it: workers apply it without restart",
    )
    push.add_argument("file", type=Path, help="the rules TOML file")
    listed = _command(
        config_commands,
        "rules",
        "list every reason code of a rules file: flows, its points there, formula, seed",
    )
    listed.add_argument(
        "file", type=Path, nargs="?", help="the rules TOML file (default: rules_path setting)"
    )
    listed.add_argument("--json", action="store_true", help="print JSON")


def _analyst_parsers(commands: Any) -> None:
    """Reports and queries on the analysts' store, and explaining a decision."""
    report = _command(commands, "report", "reports from the analysts' store")
    report.add_argument(
        "kind",
        choices=["daily", "alerts", "performance", "metrics", "coaf"],
        help="daily, alerts, performance (latency), metrics (precision, recall, F1, FPR, "
        "AUC, latency, throughput, list hits) or coaf (suspicious activity export)",
    )
    report.add_argument("--date", type=_day, help="UTC day YYYY-MM-DD (default: today)")
    report.add_argument(
        "--to", type=_day, help="metrics, coaf: last day of the period (default: --date)"
    )
    report.add_argument(
        "--format", default="md", choices=["md", "csv", "json"], help="output (json: coaf only)"
    )
    report.add_argument("--out", type=Path, help="write files here (the daily PNG needs it)")
    sql = _command(commands, "sql", "run a read-only query on the analysts' store")
    sql.add_argument("query", help="ClickHouse SQL (read-only)")
    explain = _command(
        commands,
        "explain",
        "why an event was decided so: reasons and points, features, versions, list hits",
        "Asks the running API (key in $ATALAIA_API_KEY), which reads the decision back from "
        "the analysts' store.",
    )
    explain.add_argument("event_id", help="the event's id")
    explain.add_argument("--json", action="store_true", help="print the API's JSON")
    explain.add_argument("--port", type=_port, help="API port (default: api_port setting)")


def _audit_parsers(commands: Any) -> None:
    audit = _command(commands, "audit", "verify the audit log, prove a record, anchor a day")
    audit_commands = audit.add_subparsers(
        dest="audit_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    verify = _command(audit_commands, "verify", "recompute chains, batches (and anchors)")
    verify.add_argument("--anchors", action="store_true", help="also check the Stellar anchors")
    verify.add_argument("--topic", help="verify this copy of the audit topic instead")
    proof = _command(audit_commands, "proof", "print a record's inclusion proof")
    proof.add_argument("record_id", help="the audit record's id")
    archive = _command(
        audit_commands,
        "archive",
        "export batches closed before a day to gzip'd files with their proofs",
    )
    archive.add_argument("--before", type=_day, required=True, help="UTC day YYYY-MM-DD")
    archive.add_argument("--out", type=Path, required=True, help="directory for the files")
    anchor = _command(audit_commands, "anchor", "sign (and submit) a day's root on Stellar")
    when = anchor.add_mutually_exclusive_group()
    when.add_argument("--day", type=_day, help="UTC day YYYY-MM-DD (default: yesterday)")
    when.add_argument(
        "--schedule",
        action="store_true",
        help="run as a service: anchor the day before every day at anchor_time_utc",
    )


def _learning_parsers(commands: Any) -> None:
    shadow = _command(commands, "shadow", "compare the challenger in shadow with the champion")
    shadow.add_argument(
        "--idle-timeout", type=float, default=2.0, help="seconds of silence that end the read"
    )
    backtest = _command(
        commands, "backtest", "replay archived events under the current rules and a candidate"
    )
    backtest.add_argument(
        "--config", dest="candidate", type=Path, required=True, help="candidate rules file"
    )
    backtest.add_argument(
        "--from", dest="first", type=_day, required=True, help="first day YYYY-MM-DD"
    )
    backtest.add_argument("--to", dest="last", type=_day, required=True, help="last day YYYY-MM-DD")
    backtest.add_argument(
        "--warmup-days",
        type=_positive,
        default=30,
        help="days replayed before --from to fill the windows (default 30)",
    )
    source = backtest.add_mutually_exclusive_group()
    source.add_argument(
        "--handbook", action="store_true", help="the handbook file instead of the input topics"
    )
    source.add_argument(
        "--scenarios",
        metavar="SEED",
        type=_positive,
        help="the labelled scenarios of this seed (400 users) instead of the input topics",
    )
    evaluation = _command(commands, "eval", "detection quality on labelled data")
    evaluation.add_argument(
        "dataset",
        choices=["handbook", "scenarios"],
        help="the labelled data set: the handbook's card transactions, or the generated "
        "fraud scenarios and their look-alikes (docs/scenarios.md)",
    )
    evaluation.add_argument(
        "--from",
        dest="first",
        type=_day,
        default="2018-07-25",
        help="first day measured (default 2018-07-25: the handbook's test week, on our data)",
    )
    evaluation.add_argument(
        "--to",
        dest="last",
        type=_day,
        default="2018-07-31",
        help="last day measured (default 2018-07-31)",
    )
    evaluation.add_argument(
        "--start", type=_day, default="2018-06-01", help="first day replayed (default 2018-06-01)"
    )
    evaluation.add_argument(
        "--label-delay-days",
        type=_positive,
        default=7,
        help="days after a transaction its label is known (default 7)",
    )
    evaluation.add_argument(
        "--offline",
        action="store_true",
        help="score in this process instead of through broker, worker and learner",
    )
    evaluation.add_argument(
        "--seed", type=int, default=7, help="scenarios: the generator's seed (default 7)"
    )
    evaluation.add_argument(
        "--users",
        type=_positive,
        default=400,
        help="scenarios: ordinary users simulated (default 400: about 30,000 events)",
    )
    evaluation.add_argument(
        "--replay",
        action="store_true",
        help="scenarios: decide in this process with the worker's scoring code, no broker",
    )
    evaluation.add_argument("--json", action="store_true", help="scenarios: print JSON")


def _demo_parser(commands: Any) -> None:
    demo = _command(commands, "demo", "broker + worker + sample replay + summary")
    demo.add_argument(
        "--transactions", type=_positive, default=5000, help="transactions replayed (default 5000)"
    )
    demo.add_argument(
        "--gifts", type=_positive, default=1000, help="GiftPix events replayed (default 1000)"
    )
    demo.add_argument(
        "--scenarios",
        type=_non_negative,
        default=40,
        metavar="USERS",
        help="also replay the labelled fraud scenarios of this many users (~80 events each) "
        "and show what each fraud behaviour got (default 40; 0: none)",
    )
    demo.add_argument(
        "--analytics",
        action="store_true",
        help="also run the ClickHouse sink and print the daily report of the busiest day",
    )
    demo.add_argument(
        "--learning",
        action="store_true",
        help="also run the learner, a challenger in shadow, and compare them on the labels",
    )
    demo.add_argument(
        "--audit",
        action="store_true",
        help="also run the auditor and verify the audit log of the decisions (chains and "
        "Merkle batches)",
    )
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate",
        type=_positive,
        default=500,
        help="replay pace in events/s (default 500: latency without queueing)",
    )
    pace.add_argument(
        "--burst",
        action="store_true",
        help="replay as fast as possible (throughput; latency then includes queueing)",
    )


def _admin_parsers(commands: Any) -> None:
    """``lists``, ``cases``, ``accounts`` (clients of the admin API, key in $ATALAIA_API_KEY),
    ``api-key``."""
    entity_types = _schema_choices("ListEntityType", "ENTITY_TYPE")
    list_kinds = _schema_choices("ListKind", "KIND")
    port = _Parser(add_help=False)
    port.add_argument("--port", type=_port, help="API port (default: api_port setting)")

    def sub(parent: Any, name: str, help: str) -> Any:
        text = help[0].upper() + help[1:] + "."
        return parent.add_parser(
            name, help=help, description=text, parents=[port], epilog=EXIT_CODES
        )

    lists = _command(commands, "lists", "block/allow lists through the admin API")
    actions = lists.add_subparsers(
        dest="lists_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    add = sub(actions, "add", "list a value (hashed by the API, never stored)")
    add.add_argument("entity_type", **entity_types, help="what the value is: %(choices)s")
    add.add_argument("value", help="the value (sent to the API, which keeps only its hash)")
    add.add_argument(
        "--severity",
        required=True,
        **_schema_choices("ListSeverity", "SEVERITY"),
        help="%(choices)s",
    )
    add.add_argument("--reason", required=True, help="why it is listed (no personal data)")
    add.add_argument(
        "--source",
        default="MANUAL",
        **_schema_choices("ListSource", "SOURCE"),
        help="origin: %(choices)s (default %(default)s)",
    )
    add.add_argument("--kind", default="BLOCK", **list_kinds, help="the list: %(choices)s")
    add.add_argument("--expires-at", help="end of the entry, ISO-8601 with offset")
    remove = sub(actions, "remove", "remove a listed value")
    remove.add_argument("entity_type", **entity_types, help="what the value is: %(choices)s")
    remove.add_argument("value", help="the listed value")
    remove.add_argument("--kind", default="BLOCK", **list_kinds, help="the list: %(choices)s")
    check = sub(actions, "check", "check values (all of one type)")
    check.add_argument("entity_type", **entity_types, help="what the values are: %(choices)s")
    check.add_argument("values", nargs="+", help="the values to check")
    bulk = sub(actions, "import", "bulk import a file")
    bulk.add_argument("file", type=Path, help="the file to import")
    bulk.add_argument(
        "--format",
        default="csv",
        choices=["csv", "jsonl", "ofac-xml", "ofac-csv"],
        help="the file's format (default csv)",
    )
    bulk.add_argument("--kind", default="BLOCK", **list_kinds, help="the list: %(choices)s")
    export = sub(actions, "export", "print the active entries (hashes and masks)")
    export.add_argument(
        "--format", default="jsonl", choices=["jsonl", "csv"], help="output (default jsonl)"
    )

    cases = _command(commands, "cases", "investigation cases through the admin API")
    actions = cases.add_subparsers(
        dest="cases_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    listing = sub(actions, "list", "list cases")
    listing.add_argument(
        "--status", **_schema_choices("CaseStatus", "STATUS"), help="only these: %(choices)s"
    )
    show = sub(actions, "show", "show one case")
    show.add_argument("case_id", help="the case's id")
    close = sub(actions, "close", "close a case with its outcome (publishes a label)")
    close.add_argument("case_id", help="the case's id")
    close.add_argument(
        "--outcome",
        required=True,
        **_schema_choices("CaseOutcome", "OUTCOME"),
        help="the outcome: %(choices)s",
    )
    close.add_argument("--note", help="a closing note")

    accounts = _command(
        commands,
        "accounts",
        "frozen accounts through the admin API",
        "A CRITICAL list hit freezes its user's account: the workers block every event of "
        "the user until an admin unfreezes it.",
    )
    actions = accounts.add_subparsers(
        dest="accounts_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    frozen = sub(actions, "list", "list the frozen accounts")
    frozen.add_argument("--all", action="store_true", help="every account ever frozen")
    shown = sub(actions, "show", "show an account's state")
    shown.add_argument("user_id", help="the user's id")
    for action, help in (("freeze", "freeze an account"), ("unfreeze", "unfreeze an account")):
        change = sub(actions, action, help + " (admin role; audited)")
        change.add_argument("user_id", help="the user's id")
        change.add_argument("--reason", required=True, help="why (kept in the audit log)")

    api_key = _command(commands, "api-key", "make an admin API key")
    api_key.add_argument("--name", required=True, help="who the key is for (the audit's actor)")
    api_key.add_argument(
        "--role", required=True, choices=["analyst", "admin"], help="what the key may do"
    )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "broker":
        from atalaia.broker import EmbeddedBroker

        port = args.port or int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        with EmbeddedBroker(port=port) as broker:
            print(f"Tansu broker on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    if args.command == "up":
        from atalaia.up import up_main

        return up_main(
            settings, args.workers, args.without, args.kafka, args.profile, args.ready_timeout
        )
    if args.command == "health":
        return _health(settings, args.host, args.port, args.live)
    if args.command in ("lists", "cases", "accounts"):
        from atalaia.admin_cli import accounts_command, cases_command, lists_command

        port = args.port or settings.api_port
        client = {"lists": lists_command, "cases": cases_command, "accounts": accounts_command}
        return client[args.command](port, args)
    if args.command == "explain":
        from atalaia.admin_cli import explain_command

        return explain_command(args.port or settings.api_port, args.event_id, args.json)
    if args.command == "api-key":
        from atalaia.admin_cli import api_key_command

        return api_key_command(args.name, args.role)
    if args.command == "feeds":
        from atalaia.feeds import list_main, refresh_main, run_main

        if args.feeds_command == "run":
            return run_main(settings)
        if args.feeds_command == "refresh":
            return refresh_main(settings, args.feed)
        return list_main(settings)
    if args.command == "sink":
        from atalaia.analytics import run_sink

        run_sink(settings)
        return 0
    if args.command == "report":
        from atalaia.reports import report_main

        day = args.date or datetime.now(UTC).date().isoformat()
        if args.format == "json" and args.kind != "coaf":
            raise CliError("atalaia report: --format json is for the coaf export")
        if args.to is not None and args.to < day:
            raise CliError("atalaia report: --to is before --date")
        return report_main(settings, args.kind, day, args.to, args.format, args.out)
    if args.command == "sql":
        from atalaia.analytics import sql_main

        return sql_main(settings, args.query)
    if args.command == "learner":
        from atalaia.learning import run_learner_main

        return run_learner_main(settings)
    if args.command == "shadow":
        from atalaia.learning import shadow_main

        return shadow_main(settings, args.idle_timeout)
    if args.command == "auditor":
        from atalaia.audit import run_auditor

        run_auditor(settings)
        return 0
    if args.command == "audit":
        return _audit(args, settings)
    from config.rules import load_rules

    if args.command == "backtest":
        from atalaia.backtest import backtest_main

        if args.first > args.last:
            raise CliError("atalaia backtest: --from is after --to")
        return backtest_main(
            settings,
            load_rules(settings.rules_path),
            load_rules(args.candidate),
            date.fromisoformat(args.first),
            date.fromisoformat(args.last),
            args.warmup_days,
            settings.handbook_path if args.handbook else None,
            sys.stdout,
            args.scenarios,
        )
    if args.command == "eval" and args.dataset == "scenarios":
        from atalaia.scenarios import scenarios_main

        return scenarios_main(settings, args.seed, args.users, args.replay, args.json, sys.stdout)
    if args.command == "eval":
        from atalaia.evaluate import eval_main

        if not args.start < args.first <= args.last:
            raise CliError("atalaia eval: expected --start < --from <= --to")
        return eval_main(
            settings,
            date.fromisoformat(args.start),
            date.fromisoformat(args.first),
            date.fromisoformat(args.last),
            args.label_delay_days,
            args.offline,
            sys.stdout,
        )
    rules = load_rules(settings.rules_path)
    if args.command == "worker":
        from atalaia.learning import challenger_rules
        from atalaia.worker import run_worker

        run_worker(settings, rules, challenger_rules(settings))
        return 0
    if args.command == "api":
        from atalaia.api import run_api

        run_api(settings.model_copy(update={"api_port": args.port or settings.api_port}), rules)
        return 0
    if args.command == "produce":
        from atalaia.replay import produce_main

        return produce_main(settings, args.file, args.kind, args.avro)
    if args.command == "tail":
        from atalaia.tail import tail
        from streams.topics import Topics

        asyncio.run(
            tail(
                settings.bootstrap_servers,
                Topics(settings.topic_prefix).decisions,
                args.from_beginning,
                args.limit,
                args.idle_timeout,
            )
        )
        return 0
    if args.command == "config" and args.config_command == "rules":
        from atalaia.rules_listing import rules_main

        path = args.file or settings.rules_path
        if not path.is_file():
            raise CliError(f"no such file: {path}")
        return rules_main(path, args.json, sys.stdout)
    if args.command == "config":
        return _push_rules(settings, args.file)
    from atalaia.demo import demo_main

    rate = None if args.burst else args.rate
    return demo_main(
        settings,
        args.transactions,
        args.gifts,
        rate,
        args.analytics,
        args.learning,
        args.audit,
        args.scenarios,
    )


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from atalaia.audit import (
        anchor_main,
        anchor_schedule_main,
        archive_main,
        proof_main,
        verify_main,
    )

    if args.audit_command == "archive":
        return archive_main(settings, args.before, args.out)
    if args.audit_command == "verify":
        return verify_main(settings, args.topic, args.anchors)
    if args.audit_command == "proof":
        return proof_main(settings, args.record_id)
    if args.schedule:
        return anchor_schedule_main(settings)
    return anchor_main(settings, args.day)


def _health(settings: Settings, host: str, port: int | None, live: bool) -> int:
    """GET /readyz (or /healthz) of a running process: 0 when it answers 200."""
    import json
    import urllib.error
    import urllib.request

    port = port or settings.metrics_port
    if port is None:
        raise CliError("atalaia health: give --port (or set ATALAIA_METRICS_PORT)")
    url = f"http://{host}:{port}/{'healthz' if live else 'readyz'}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        print(f"atalaia: {url}: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:
        print(body.decode(errors="replace"))
    return 0 if status == 200 else 1


def _push_rules(settings: Settings, path: Path) -> int:
    from atalaia.publish import OutRecord, publish
    from config.rules import parse_rules
    from engine.audit import config_change_record
    from schemas.codec import WireCodec
    from streams.live_config import RULES_KEY, published_rules
    from streams.topics import Topics

    if not path.is_file():
        raise CliError(f"no such file: {path}")
    text = path.read_text()
    rules = parse_rules(text, str(path))  # refuse locally what workers would reject
    published = asyncio.run(published_rules(settings)).get(rules.version)
    if published is not None and published != rules:
        raise CliError(
            f"rules version {rules.version!r} is already published with other content: "
            "bump the version"
        )
    topics = Topics(settings.topic_prefix)
    actor = f"cli:{getpass.getuser()}"
    audit = config_change_record(actor, None, rules.version, datetime.now(UTC))
    records = [
        OutRecord(topics.config, RULES_KEY, text.encode()),
        OutRecord(topics.audit_intake, audit.audit_id.encode(), WireCodec().encode(audit)),
    ]
    asyncio.run(publish(settings.bootstrap_servers, records))
    print(f"pushed rules version {rules.version} to {topics.config}")
    return 0


def _known_error(exc: Exception) -> tuple[str, int] | None:
    """The one line and exit code for an error the commands raise on purpose (None: a bug,
    which keeps its traceback)."""
    for module, name, code in _ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(exc, kind):
            message = str(exc)
            shown = message if message.startswith("atalaia") else f"atalaia: {message}"
            return shown, (code if code is not None else exc.exit_code)
    connection = sys.modules.get("aiokafka.errors")
    if connection is not None and isinstance(exc, connection.KafkaConnectionError):
        return f"atalaia: cannot reach the broker ({exc})", 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    stale = stale_sources()
    if stale:
        print(f"atalaia: {stale_message(stale)}", file=sys.stderr)
        return 1
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help, --version
            return int(done.code or 0)
        if _runs_until_stopped(args):
            from atalaia.supervise import stop_with_supervisor

            stop_with_supervisor()
        else:
            import logging

            # Client commands report broker failures themselves, in one line.
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        from config.settings import load_settings

        settings = load_settings(args.config)
        if args.command == "broker":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return _run(args, settings)
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as exc:
        known = _known_error(exc)
        if known is None:
            raise
        print(known[0], file=sys.stderr)
        return known[1]


def _runs_until_stopped(args: argparse.Namespace) -> bool:
    """A service: it stops by itself once the process that started it is gone."""
    return (
        args.command in SERVICES
        or (args.command == "feeds" and args.feeds_command == "run")
        or (args.command == "audit" and args.audit_command == "anchor" and args.schedule)
    )
