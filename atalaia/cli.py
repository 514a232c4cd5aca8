"""The ``atalaia`` command: broker, worker, produce, tail, demo.

Operator mistakes (bad flags, settings, files) end with one line on stderr and exit code 2;
they never print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiokafka.errors import KafkaConnectionError

from atalaia.broker import BrokerError
from atalaia.demo import DemoError
from atalaia.replay import ReplayError
from config.rules import RulesError, load_rules
from config.settings import Settings, SettingsError, load_settings
from streams.reader import MissingTopicError

USAGE_ERROR = 2


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

    demo = commands.add_parser("demo", help="broker + worker + sample replay + summary")
    demo.add_argument("--transactions", type=_positive, default=5000)
    demo.add_argument("--gifts", type=_positive, default=1000)
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


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "broker":
        from atalaia.broker import EmbeddedBroker

        port = args.port or int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        with EmbeddedBroker(port=port) as broker:
            print(f"Tansu broker on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    rules = load_rules(settings.rules_path)
    if args.command == "worker":
        from atalaia.worker import run_worker

        run_worker(settings, rules)
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

    return demo_main(settings, args.transactions, args.gifts, None if args.burst else args.rate)


def _push_rules(settings: Settings, path: Path) -> int:
    from atalaia.publish import OutRecord, publish
    from config.rules import parse_rules
    from streams.live_config import RULES_KEY
    from streams.topics import Topics

    if not path.is_file():
        raise CliError(f"no such file: {path}")
    text = path.read_text()
    rules = parse_rules(text, str(path))  # refuse locally what workers would reject
    topic = Topics(settings.topic_prefix).config
    asyncio.run(publish(settings.bootstrap_servers, [OutRecord(topic, RULES_KEY, text.encode())]))
    print(f"pushed rules version {rules.version} to {topic}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command not in ("worker", "api"):
            # Client commands report broker failures themselves, in one line.
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        settings = load_settings(args.config)
        if args.command == "broker":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        return _run(args, settings)
    except (CliError, SettingsError, RulesError, ReplayError) as exc:
        message = str(exc)
        print(message if message.startswith("atalaia") else f"atalaia: {message}", file=sys.stderr)
        return USAGE_ERROR
    except (BrokerError, DemoError, MissingTopicError) as exc:
        print(f"atalaia: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectionError as exc:
        print(f"atalaia: cannot reach the broker ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
