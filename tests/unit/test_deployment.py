"""The image and the compose file, checked without a container engine: every service runs a
real ``atalaia`` command, every variable is a real setting with a valid value, every port,
health check and scrape target is one the process serves, the image is slim and non-root."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from atalaia.cli import _runs_until_stopped, build_parser
from config.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ENV = {
    "ATALAIA_PII_HASH_KEY": "a-deployment-key-of-32-bytes-or-more",
    "ATALAIA_VAULT_MASTER_KEY": "ab" * 32,
    "ATALAIA_STELLAR_SECRET": "SBR6MUZFXS7ND2GM37ISU4ZL74WNGWXVVR7BNCKL5TLKEMLAZHI33RGL",
    "CLICKHOUSE_PASSWORD": "a-password",
    "GRAFANA_ADMIN_PASSWORD": "a-password",
}
"""What an operator's .env holds (deploy/env.example names these)."""
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``, with SAMPLE_ENV."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in SAMPLE_ENV:
            return SAMPLE_ENV[name]
        assert kind != "?", f"{name} is required: add it to deploy/env.example"
        return rest if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def _compose() -> dict[str, Any]:
    """compose.yaml with the files it includes merged in."""
    main = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for included in main.pop("include", []):
        extra = yaml.safe_load((ROOT / included).read_text())
        for section in ("services", "volumes"):
            main.setdefault(section, {}).update(extra.get(section) or {})
    return main


COMPOSE = _compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ATALAIA = {name: s for name, s in SERVICES.items() if "build" in s}


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[1]
    found: dict[str, str] = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The ATALAIA_* variables a service's process sees: the image's, then the service's."""
    image = {k: v for k, v in _dockerfile_env().items() if k.startswith("ATALAIA_")}
    own = {k: _interpolate(str(v)) for k, v in (service.get("environment") or {}).items()}
    return {**image, **own}


def _settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("ATALAIA_")]:
        monkeypatch.delenv(name)
    for name, value in _environment(service).items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _served_ports(command: list[str], settings: Settings) -> dict[int, str]:
    """The ports the process of ``command`` listens on, with the address it binds."""
    served: dict[int, str] = {}
    if settings.metrics_port is not None:
        served[settings.metrics_port] = settings.metrics_host
    if command[0] == "api":
        served[settings.api_port] = settings.api_host
    if command[0] == "sink":
        served[settings.sink_port] = settings.sink_host
    return served


def test_the_stack_has_every_service() -> None:
    commands = {" ".join(s["command"]) for s in ATALAIA.values()}
    expected = {"worker", "api", "auditor", "learner", "sink", "feeds run"}
    assert expected | {"audit anchor --schedule"} <= commands
    assert {"kafka", "clickhouse", "redis", "prometheus", "grafana"} <= SERVICES.keys()


@pytest.mark.parametrize("name", sorted(ATALAIA))
def test_every_command_is_a_real_atalaia_service(name: str) -> None:
    command = ATALAIA[name]["command"]
    args = build_parser().parse_args(command)  # CliError if it is not
    assert _runs_until_stopped(args), f"{name}: `atalaia {' '.join(command)}` ends by itself"


@pytest.mark.parametrize("name", sorted(ATALAIA))
def test_every_variable_is_a_real_setting_with_a_valid_value(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in _environment(ATALAIA[name]):
        assert variable.startswith("ATALAIA_"), f"{name}: {variable} is not a setting"
        setting = variable.removeprefix("ATALAIA_").lower()
        assert setting in Settings.model_fields, f"{name}: {variable} is no setting"
    settings = _settings(ATALAIA[name], monkeypatch)  # SettingsError if a value is invalid
    assert settings.profile == "kafka" and settings.bootstrap_servers == "kafka:19092"
    assert settings.log_format == "json"


@pytest.mark.parametrize("name", sorted(ATALAIA))
def test_every_port_and_health_check_is_served_by_the_process(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ATALAIA[name]
    settings = _settings(service, monkeypatch)
    served = _served_ports(service["command"], settings)
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "atalaia", "health"], f"{name}: {test}"
    health = build_parser().parse_args(test[2:])
    assert (health.port or settings.metrics_port) in served, f"{name}: health check port"
    for published in service.get("ports", []):
        host, _, container_port = str(published).split(":")
        assert host == "127.0.0.1", f"{name}: {published} is not on loopback"
        assert int(container_port) in served, f"{name}: nothing listens on {container_port}"
        assert served[int(container_port)] == "0.0.0.0", f"{name}: binds loopback only"
    for port, address in served.items():  # scraped by Prometheus from another container
        assert address == "0.0.0.0", f"{name}: port {port} binds {address}"


def test_prometheus_scrapes_ports_the_processes_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets: list[str] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += static["targets"]
        for dns in job.get("dns_sd_configs", []):
            targets += [f"{name}:{dns['port']}" for name in dns["names"]]
    scraped = {target.split(":")[0] for target in targets}
    assert scraped == set(ATALAIA), "every Atalaia service is scraped"
    for target in targets:
        name, port = target.split(":")
        served = _served_ports(ATALAIA[name]["command"], _settings(ATALAIA[name], monkeypatch))
        assert int(port) in served, f"{target}: not a port {name} serves"
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_workers_scale_with_their_own_state() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker
    volumes = [str(v) for v in worker["volumes"]]
    assert volumes == ["/var/lib/atalaia"], "an anonymous volume: one per replica"


def test_every_published_port_is_on_loopback_and_every_volume_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for published in service.get("ports", []):
            assert str(published).startswith("127.0.0.1:"), f"{name}: {published}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if ":" in str(volume) and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
        for needed in service.get("depends_on", {}):
            assert needed in SERVICES, f"{name} depends on unknown {needed}"


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"
    feeds = ROOT / "deploy/feeds/feeds.toml"
    from atalaia.feeds import load_feeds

    assert {f.kind for f in load_feeds(feeds)} == {"ofac-xml", "email-domains", "wallets"}


def test_the_image_is_multi_stage_slim_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2 and all("slim" in stage for stage in stages)
    runtime = text.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", runtime, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in ("0", "root")
    assert re.search(r'^ENTRYPOINT \["atalaia"\]', runtime, re.MULTILINE)
    assert "gcc" not in runtime and "COPY --from=build /opt/atalaia /opt/atalaia" in runtime
    installs = re.findall(r"pip install[^\n]*", text)
    assert not any(re.search(r"\[(analytics|reports|embedded|all|dev)", i) for i in installs)
    assert 'CMD ["atalaia", "health"]' in runtime
    assert _dockerfile_env()["ATALAIA_METRICS_HOST"] == "0.0.0.0"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests", "**/*.so"} <= set(ignored)


def test_every_secret_compose_requires_is_in_the_env_example() -> None:
    text = (ROOT / "compose.yaml").read_text() + (ROOT / "docker-compose.kafka.yml").read_text()
    required = {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) == "?"}
    example = (ROOT / "deploy/env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.MULTILINE))
    assert required <= listed
    assert required <= SAMPLE_ENV.keys()
