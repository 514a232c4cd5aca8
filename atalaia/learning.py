"""``atalaia learner`` (the online models' writer) and ``atalaia shadow``: how a challenger
configuration scored in shadow compares with the champion on the labelled outcomes."""

from __future__ import annotations

import asyncio
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

import uvloop

from agents.learner import LearnerProcess, run_learner
from config.rules import RuleSet, load_challenger, load_rules
from config.settings import Settings
from engine.learning import CHALLENGER, CHAMPION
from engine.metrics import Confusion, confusion
from schemas.models import Label, ShadowDecision, Verdict
from streams.admin import ensure_topics
from streams.app import collect_garbage_seldom, utc_now
from streams.live_config import latest_rules
from streams.log_limits import limit_client_repeats
from streams.logs import configure_logging
from streams.ops import Check, Readiness, operated
from streams.reader import read_decoded
from streams.topics import Topics


def challenger_rules(settings: Settings) -> RuleSet | None:
    """The challenger's rules when one is configured: the rules file with the challenger's
    keys replacing its own (a bad file stops the command)."""
    if settings.challenger_rules_path is None:
        return None
    return load_challenger(settings.rules_path, settings.challenger_rules_path)


def build_learner(
    settings: Settings, champion: RuleSet, challenger: RuleSet | None
) -> LearnerProcess:
    rules = {CHAMPION: champion}
    if challenger is not None and challenger.model.enabled:
        rules[CHALLENGER] = challenger
    return LearnerProcess(
        settings.bootstrap_servers,
        Topics(settings.topic_prefix),
        settings.data_dir / "learner",
        settings.pii_hash_key.get_secret_value().encode(),
        rules,
        settings.model_snapshot_seconds,
        settings.label_wait_days * 86_400_000,
        utc_now,
    )


def models_check(process: LearnerProcess | None) -> Check:
    """The learner is ready once its models are loaded (from its checkpoint, or new) and
    published: workers score with the snapshots it publishes."""
    if process is None:
        return Check(False, "loading the checkpoint")
    waiting = [name for name, model in process.models.items() if model.sequence == 0]
    if waiting:
        return Check(False, f"publishing the first snapshot of {', '.join(waiting)}")
    published = ", ".join(
        f"{name} {model.rules.model.family}.{model.sequence}"
        for name, model in process.models.items()
    )
    return Check(True, f"published {published}; {sum(process.offsets.values())} records read")


def run_learner_main(settings: Settings) -> int:
    """Learn until SIGINT/SIGTERM, then publish and checkpoint once more."""
    configure_logging(settings, "learner")
    limit_client_repeats(settings.log_repeat_interval_s)
    fallback = load_rules(settings.rules_path)
    challenger = challenger_rules(settings)

    async def main() -> None:
        readiness = Readiness("learner")
        built: list[LearnerProcess] = []
        readiness.check("model", lambda: models_check(built[0] if built else None))
        async with operated(readiness, settings.metrics_host, settings.metrics_port) as stop:
            await ensure_topics(settings)
            start = await latest_rules(settings, fallback)
            process = build_learner(settings, start.rules, challenger)
            built.append(process)
            collect_garbage_seldom(settings.gc_young_objects)
            try:
                await run_learner(process, stop)
            finally:
                process.close()

    uvloop.run(main())
    return 0


@dataclass
class ShadowComparison:
    """Champion vs challenger over the same events."""

    events: int = 0
    agree: int = 0
    moves: Counter[tuple[Verdict, Verdict]] = field(default_factory=Counter)
    champion: Confusion | None = None
    challenger: Confusion | None = None
    labelled: int = 0
    versions: set[tuple[str, str]] = field(default_factory=set)


def compare_shadow(shadows: list[ShadowDecision], labels: list[Label]) -> ShadowComparison:
    """Agreement, verdict moves, and precision/recall of BLOCK-or-REVIEW on labelled events."""
    truth: dict[str, bool] = {}
    for label in labels:
        for event_id in label.event_ids:
            truth[event_id] = label.is_fraud
    latest = {s.event_id: s for s in shadows}  # a re-delivered event counts once
    result = ShadowComparison()
    flagged_champion, flagged_challenger, outcomes = [], [], []
    for shadow in latest.values():
        result.events += 1
        result.agree += shadow.champion_decision is shadow.challenger_decision
        result.moves[(shadow.champion_decision, shadow.challenger_decision)] += 1
        result.versions.add((shadow.champion_version, shadow.challenger_version))
        if shadow.event_id in truth:
            flagged_champion.append(shadow.champion_decision is not Verdict.ALLOW)
            flagged_challenger.append(shadow.challenger_decision is not Verdict.ALLOW)
            outcomes.append(truth[shadow.event_id])
    result.labelled = len(outcomes)
    if outcomes:
        result.champion = confusion(flagged_champion, outcomes)
        result.challenger = confusion(flagged_challenger, outcomes)
    return result


def print_comparison(result: ShadowComparison, out: TextIO) -> None:
    if not result.events:
        print("no shadow decisions yet (is a challenger configured on the worker?)", file=out)
        return
    share = result.agree / result.events
    print(f"events: {result.events:,}; same verdict: {result.agree:,} ({share:.1%})", file=out)
    families = {
        (_family(champion), _family(challenger)) for champion, challenger in result.versions
    }
    for champion, challenger in sorted(families):
        print(f"champion {champion} vs challenger {challenger}", file=out)
    print("verdict moves (champion -> challenger):", file=out)
    for (before, after), count in sorted(result.moves.items(), key=lambda m: -m[1]):
        if before is not after:
            print(f"  {before.value} -> {after.value}: {count:,}", file=out)
    if result.champion is None or result.challenger is None:
        print("no labelled outcomes among these events yet", file=out)
        return
    print(f"on {result.labelled:,} labelled events (flagged = REVIEW or BLOCK):", file=out)
    print("| | TP | FP | FN | TN | precision | recall |\n|---|---|---|---|---|---|---|", file=out)
    for name, c in (("champion", result.champion), ("challenger", result.challenger)):
        print(
            f"| {name} | {c.true_positives} | {c.false_positives} | {c.false_negatives} | "
            f"{c.true_negatives} | {_share(c.precision)} | {_share(c.recall)} |",
            file=out,
        )


def shadow_main(settings: Settings, idle_timeout_s: float) -> int:
    """Read the shadow decisions and the labels, and print the comparison."""
    topics = Topics(settings.topic_prefix)

    async def read() -> tuple[list[ShadowDecision], list[Label]]:
        shadows, _ = await read_decoded(
            settings.bootstrap_servers, {topics.shadow_decisions: (ShadowDecision,)}, idle_timeout_s
        )
        labels, _ = await read_decoded(
            settings.bootstrap_servers, {topics.labels: (Label,)}, idle_timeout_s
        )
        return shadows, labels

    shadows, labels = asyncio.run(read())
    print_comparison(compare_shadow(shadows, labels), sys.stdout)
    return 0


def _family(version: str) -> str:
    """``2026.11.6/online-1.42`` -> ``2026.11.6/online-1``: snapshots of one model together."""
    rules, _, model = version.partition("/")
    return f"{rules}/{model.rsplit('.', 1)[0]}" if model else rules


def _share(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
