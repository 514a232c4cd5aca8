"""``atalaia config rules``: every reason code of a rules file, with its points there.

For a reviewer of a rules file (compliance, an analyst): what each code means, on which
flows it runs, the points this file gives it, and where in the seeds it comes from; read
from the catalogue (``engine.catalogue``), so it lists exactly what the engine evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from config.rules import RuleSet, load_rules
from engine.catalogue import RULES, TIGHTENERS, points_of
from engine.evaluators import Rule, Tightener


def catalogue_rows(rules: RuleSet) -> list[dict[str, object]]:
    """One row per reason code: code, flows, points (in ``rules``; 0 for a tightener),
    what the points key is, when it fires, seed reference."""
    entries: list[tuple[Rule | Tightener, str]] = [
        *((rule, rule.points) for rule in RULES),
        *((tightener, "") for tightener in TIGHTENERS),  # 0 points: they only tighten
    ]
    return [
        {
            "code": entry.code,
            "flows": sorted(kind.value for kind in entry.kinds),
            "points": points_of(key, rules) or 0,
            "points_key": key,
            "when": entry.when,
            "seed": entry.seed,
        }
        for entry, key in entries
    ]


def render(rows: list[dict[str, object]], version: str) -> str:
    lines = [
        f"rules version {version}: {len(rows)} reason codes",
        "",
        "| code | flows | points (or their maximum) | when | seed |",
        "|---|---|---:|---|---|",
    ]
    for row in rows:
        flows = row["flows"]
        assert isinstance(flows, list)
        lines.append(
            f"| {row['code']} | {', '.join(flows)} | {row['points']} | {row['when']} "
            f"| {row['seed']} |"
        )
    return "\n".join(lines)


def rules_main(path: Path, as_json: bool, out: TextIO) -> int:
    rules = load_rules(path)
    rows = catalogue_rows(rules)
    if as_json:
        print(json.dumps({"version": rules.version, "codes": rows}, ensure_ascii=False), file=out)
    else:
        print(render(rows, rules.version), file=out)
    return 0
