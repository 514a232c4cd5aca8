"""The Grafana dashboard and the Prometheus alerting rules name only metrics (and labels)
the processes export (``streams.metrics``); ``tests/integration/test_up.py`` checks them
against what running processes serve."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import streams.metrics  # noqa: F401  (registers every metric)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/atalaia.json"
RULES = ROOT / "deploy/prometheus/alerts.yml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself for every target."""
TARGET_LABELS = {"job", "instance"}
_SELECTOR = re.compile(r"\b(atalaia_[a-z0-9_]+|up)\s*(\{[^}]*\})?")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def exported() -> dict[str, set[str]]:
    """Every series name the processes export, with the labels it may carry."""
    names: dict[str, set[str]] = {}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in REGISTRY.collect():
        if not family.name.startswith("atalaia_"):
            continue
        collector = REGISTRY._names_to_collectors.get(family.name)
        if collector is None:
            collector = REGISTRY._names_to_collectors[family.name + "_total"]
        labels = set(collector._labelnames)
        for suffix in suffixes.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = labels | extra
    return names


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and alerting rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r}", target["expr"]
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]


def test_every_metric_named_is_exported_with_the_labels_used() -> None:
    known = exported()
    used = set()
    for where, expr in expressions():
        for name, selector in _SELECTOR.findall(expr):
            used.add(name)
            if name in PROMETHEUS_OWN:
                continue
            assert name in known, f"{where}: {name} is not exported"
            labels = set(re.findall(r"(\w+)\s*=~?", selector))
            assert labels <= known[name] | TARGET_LABELS, f"{where}: {name}{selector}"
        for grouped in _BY.findall(expr):
            names = {label.strip() for label in grouped.split(",")}
            allowed = set().union(*known.values()) | TARGET_LABELS
            assert names <= allowed, f"{where}: by ({grouped})"
    # The operator's essentials are all watched.
    essentials = {
        "atalaia_consumer_lag",
        "atalaia_dead_letters_total",
        "atalaia_decision_latency_seconds_bucket",
        "atalaia_decisions_total",
        "atalaia_ready",
        "atalaia_feed_last_success_timestamp_seconds",
    }
    assert essentials <= used


def test_the_alerts_cover_lag_dead_letters_latency_and_fraud_spikes() -> None:
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {
        "AtalaiaConsumerLagHigh",
        "AtalaiaDeadLetterRateHigh",
        "AtalaiaDecisionLatencyHigh",
        "AtalaiaFraudSpike",
    } <= rules.keys()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] and rule["annotations"]["summary"], name


def test_the_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/atalaia.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
