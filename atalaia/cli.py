"""The ``atalaia`` command: broker, worker, api, produce, tail, config, lists, cases, demo.

Operator mistakes (bad flags, settings, files) end with one line on stderr and exit code 2;
they never print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaConnectionError

from atalaia.admin_cli import AdminCallError
from atalaia.analytics import AnalyticsError
from atalaia.audit import AuditError
from atalaia.broker import BrokerError
from atalaia.compiled import stale_message, stale_sources
from atalaia.demo import DemoError
from atalaia.evaluate import EvalError
from atalaia.replay import ReplayError
from atalaia.supervise import stop_with_supervisor
from config.auth import Role
from config.rules import RulesError, load_rules
from config.settings import Settings, SettingsError, load_settings
from schemas.models import (
    CaseOutcome,
    CaseStatus,
    ListEntityType,
    ListKind,
    ListSeverity,
    ListSource,
)
from sinks.key_store import KeyStoreError
from streams.end_offsets import EndOffsetsError
from streams.reader import MissingTopicError

USAGE_ERROR = 2
SERVICES = ("worker", "api", "auditor", "sink", "learner")
"""Commands that run until stopped; the others are clients that end by themselves."""


class CliError(Exception):
    """A one-line message for the operator."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """argparse prints the full usage; one line is enough."""
        raise CliError(f"{self.prog}: {message}")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="atalaia", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="TOML settings file (or $ATALAIA_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    broker = commands.add_parser("broker", help="run the embedded Tansu broker on 127.0.0.1")
    broker.add_argument("--port", type=_port, help="port (default: from bootstrap_servers)")

    commands.add_parser("worker", help="run the engine (Faust worker)")

    api = commands.add_parser("api", help="synchronous decisions over HTTP on 127.0.0.1")
    api.add_argument("--port", type=_port, help="port (default: api_port setting)")

    produce = commands.add_parser("produce", help="replay a CSV/JSONL file to an input topic")
    produce.add_argument("file", type=Path)
    produce.add_argument("--kind", required=True, choices=["transaction", "login", "gift"])
    produce.add_argument(
        "--avro",
        action="store_true",
        help="validate and send Confluent-framed Avro instead of JSON",
    )

    tail = commands.add_parser("tail", help="print decisions as they arrive")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--limit", type=_positive, help="stop after N decisions")
    tail.add_argument("--idle-timeout", type=float, help="stop after S seconds without news")

    config = commands.add_parser("config", help="runtime configuration")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser
    )
    push = config_commands.add_parser(
        "push", help="validate a rules file and publish it: workers apply it without restart"
    )
    push.add_argument("file", type=Path)

    _admin_parsers(commands)

    commands.add_parser("auditor", help="run the audit chains' writer (Faust worker)")
    commands.add_parser("sink", help="run the ClickHouse writer for analysts (Faust worker)")
    report = commands.add_parser("report", help="reports from the analysts' store")
    report.add_argument("kind", choices=["daily", "alerts", "performance", "coaf"])
    report.add_argument("--date", type=_day, help="UTC day YYYY-MM-DD (default: today)")
    report.add_argument("--to", type=_day, help="coaf: last day of the period (default: --date)")
    report.add_argument("--format", default="md", choices=["md", "csv", "json"])
    report.add_argument("--out", type=Path, help="write files here (the daily PNG needs it)")
    sql = commands.add_parser("sql", help="run a read-only query on the analysts' store")
    sql.add_argument("query")
    audit = commands.add_parser("audit", help="verify the audit log, prove a record, anchor a day")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    verify = audit_commands.add_parser("verify", help="recompute chains, batches (and anchors)")
    verify.add_argument("--anchors", action="store_true", help="also check the Stellar anchors")
    verify.add_argument("--topic", help="verify this copy of the audit topic instead")
    proof = audit_commands.add_parser("proof", help="print a record's inclusion proof")
    proof.add_argument("record_id")
    archive = audit_commands.add_parser(
        "archive", help="export batches closed before a day to gzip'd files with their proofs"
    )
    archive.add_argument("--before", type=_day, required=True, help="UTC day YYYY-MM-DD")
    archive.add_argument("--out", type=Path, required=True, help="directory for the files")
    anchor = audit_commands.add_parser("anchor", help="sign (and submit) a day's root on Stellar")
    anchor.add_argument("--day", type=_day, help="UTC day YYYY-MM-DD (default: yesterday)")

    commands.add_parser("learner", help="run the online models' writer (one per deployment)")
    shadow = commands.add_parser(
        "shadow", help="compare the challenger in shadow with the champion"
    )
    shadow.add_argument("--idle-timeout", type=float, default=2.0, help="seconds of silence")
    backtest = commands.add_parser(
        "backtest", help="replay archived events under the current rules and a candidate"
    )
    backtest.add_argument(
        "--config", dest="candidate", type=Path, required=True, help="candidate rules file"
    )
    backtest.add_argument("--from", dest="first", type=_day, required=True, help="YYYY-MM-DD")
    backtest.add_argument("--to", dest="last", type=_day, required=True, help="YYYY-MM-DD")
    backtest.add_argument("--warmup-days", type=_positive, default=30)
    backtest.add_argument(
        "--handbook", action="store_true", help="the handbook file instead of the input topics"
    )
    evaluation = commands.add_parser("eval", help="detection quality on labelled data")
    evaluation.add_argument("dataset", choices=["handbook"])
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
    evaluation.add_argument("--label-delay-days", type=_positive, default=7)
    evaluation.add_argument(
        "--offline",
        action="store_true",
        help="score in this process instead of through broker, worker and learner",
    )

    demo = commands.add_parser("demo", help="broker + worker + sample replay + summary")
    demo.add_argument("--transactions", type=_positive, default=5000)
    demo.add_argument("--gifts", type=_positive, default=1000)
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
    return parser


def _admin_parsers(commands: Any) -> None:
    """``lists``, ``cases`` (clients of the admin API, key in $ATALAIA_API_KEY), ``api-key``."""
    entity_types = [t.value for t in ListEntityType]
    port = _Parser(add_help=False)
    port.add_argument("--port", type=_port, help="API port (default: api_port setting)")
    lists = commands.add_parser("lists", help="block/allow lists through the admin API")
    sub = lists.add_subparsers(dest="lists_command", required=True, parser_class=_Parser)
    add = sub.add_parser(
        "add", help="list a value (hashed by the API, never stored)", parents=[port]
    )
    add.add_argument("entity_type", choices=entity_types)
    add.add_argument("value")
    add.add_argument("--severity", required=True, choices=[s.value for s in ListSeverity])
    add.add_argument("--reason", required=True)
    add.add_argument("--source", default="MANUAL", choices=[s.value for s in ListSource])
    add.add_argument("--kind", default="BLOCK", choices=[k.value for k in ListKind])
    add.add_argument("--expires-at", help="ISO-8601 with offset")
    remove = sub.add_parser("remove", help="remove a listed value", parents=[port])
    remove.add_argument("entity_type", choices=entity_types)
    remove.add_argument("value")
    remove.add_argument("--kind", default="BLOCK", choices=[k.value for k in ListKind])
    check = sub.add_parser("check", help="check values (all of one type)", parents=[port])
    check.add_argument("entity_type", choices=entity_types)
    check.add_argument("values", nargs="+")
    bulk = sub.add_parser("import", help="bulk import a file", parents=[port])
    bulk.add_argument("file", type=Path)
    bulk.add_argument("--format", default="csv", choices=["csv", "jsonl", "ofac-xml", "ofac-csv"])
    bulk.add_argument("--kind", default="BLOCK", choices=[k.value for k in ListKind])
    export = sub.add_parser(
        "export", help="print the active entries (hashes and masks)", parents=[port]
    )
    export.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])

    cases = commands.add_parser("cases", help="investigation cases through the admin API")
    sub = cases.add_subparsers(dest="cases_command", required=True, parser_class=_Parser)
    listing = sub.add_parser("list", help="list cases", parents=[port])
    listing.add_argument("--status", choices=[s.value for s in CaseStatus])
    show = sub.add_parser("show", help="show one case", parents=[port])
    show.add_argument("case_id")
    close = sub.add_parser(
        "close", help="close a case with its outcome (publishes a label)", parents=[port]
    )
    close.add_argument("case_id")
    close.add_argument("--outcome", required=True, choices=[o.value for o in CaseOutcome])
    close.add_argument("--note")

    api_key = commands.add_parser("api-key", help="make an admin API key")
    api_key.add_argument("--name", required=True)
    api_key.add_argument("--role", required=True, choices=[r.value for r in Role])


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "broker":
        from atalaia.broker import EmbeddedBroker

        port = args.port or int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        with EmbeddedBroker(port=port) as broker:
            print(f"Tansu broker on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    if args.command in ("lists", "cases"):
        from atalaia.admin_cli import cases_command, lists_command

        port = args.port or settings.api_port
        return lists_command(port, args) if args.command == "lists" else cases_command(port, args)
    if args.command == "api-key":
        from atalaia.admin_cli import api_key_command

        return api_key_command(args.name, args.role)
    if args.command == "sink":
        from atalaia.analytics import run_sink

        run_sink(settings)
        return 0
    if args.command == "report":
        from atalaia.reports import report_main

        day = args.date or datetime.now(UTC).date().isoformat()
        if args.format == "json" and args.kind != "coaf":
            raise CliError("atalaia report: --format json is for the coaf export")
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
        )
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
    if args.command == "auditor":
        from atalaia.audit import run_auditor

        run_auditor(settings)
        return 0
    if args.command == "audit":
        from atalaia.audit import anchor_main, archive_main, proof_main, verify_main

        if args.audit_command == "archive":
            return archive_main(settings, args.before, args.out)
        if args.audit_command == "verify":
            return verify_main(settings, args.topic, args.anchors)
        if args.audit_command == "proof":
            return proof_main(settings, args.record_id)
        return anchor_main(settings, args.day)
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
    if args.command == "config":
        return _push_rules(settings, args.file)
    from atalaia.demo import demo_main

    rate = None if args.burst else args.rate
    return demo_main(
        settings, args.transactions, args.gifts, rate, args.analytics, args.learning, args.audit
    )


def _push_rules(settings: Settings, path: Path) -> int:
    from atalaia.publish import OutRecord, publish
    from config.rules import parse_rules
    from engine.audit import config_change_record
    from schemas.codec import WireCodec
    from streams.live_config import RULES_KEY
    from streams.topics import Topics

    if not path.is_file():
        raise CliError(f"no such file: {path}")
    text = path.read_text()
    rules = parse_rules(text, str(path))  # refuse locally what workers would reject
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


def main(argv: Sequence[str] | None = None) -> int:
    stale = stale_sources()
    if stale:
        print(f"atalaia: {stale_message(stale)}", file=sys.stderr)
        return 1
    try:
        args = build_parser().parse_args(argv)
        if args.command in SERVICES:
            stop_with_supervisor()
        else:
            # Client commands report broker failures themselves, in one line.
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        settings = load_settings(args.config)
        if args.command == "broker":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return _run(args, settings)
    except (CliError, SettingsError, RulesError, ReplayError, EvalError) as exc:
        message = str(exc)
        print(message if message.startswith("atalaia") else f"atalaia: {message}", file=sys.stderr)
        return USAGE_ERROR
    except (AuditError, KeyStoreError, AnalyticsError) as exc:
        print(f"atalaia: {exc}", file=sys.stderr)
        return 1
    except AdminCallError as exc:
        print(f"atalaia: {exc}", file=sys.stderr)
        return exc.exit_code
    except (BrokerError, DemoError, MissingTopicError, EndOffsetsError) as exc:
        print(f"atalaia: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectionError as exc:
        print(f"atalaia: cannot reach the broker ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
