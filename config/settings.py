"""Runtime settings: defaults < config file (TOML) < ``ATALAIA_*`` environment variables.

Frozen and validated once at start-up; a wrong value stops the CLI with a one-line message.
"""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.auth import parse_api_keys
from config.profiles import PROFILES, BrokerProfile, ProfileName
from config.rules import default_rules_path
from schemas.errors import describe_validation_error

CONFIG_FILE_ENV = "ATALAIA_CONFIG"
_REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """Settings could not be loaded; the message is one line for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATALAIA_", frozen=True, extra="forbid")

    profile: ProfileName = "tansu"
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of brokers."
    )
    topic_prefix: str = Field(default="atalaia", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    partitions: int = Field(default=6, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)
    app_id: str = Field(default="atalaia-engine", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    data_dir: Path = Path(".atalaia")
    store: Literal["rocksdb://", "memory://"] = "rocksdb://"
    rules_path: Path = Field(default_factory=default_rules_path)
    challenger_rules_path: Path | None = Field(
        default=None,
        description="Rules of a challenger scored in shadow beside the live ones (off when unset).",
    )
    model_snapshot_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How often the learner publishes its models."
    )
    label_wait_days: int = Field(
        default=30, ge=1, le=365, description="How long the learner keeps a decision for its label."
    )
    batch_size: int = Field(default=500, ge=1, le=100_000)
    batch_window_ms: int = Field(default=5, ge=1, le=10_000)
    state_cache_keys: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description="Decoded velocity states a worker keeps in memory between batches.",
    )
    tor_exit_list: Path | None = Field(
        default=None,
        description="TOR exit list file (bulk list or exit addresses) the workers read.",
    )
    anonymous_ip_ranges: Path | None = Field(
        default=None,
        description="VPN/proxy/hosting ranges file, '<CIDR>[,VPN|PROXY|HOSTING]' a line.",
    )
    network_lists_refresh_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="How often workers check those files."
    )
    redis_url: str | None = Field(
        default=None, description="Mirror active fraud blocks to this Redis (off when unset)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="json: one JSON object per line (time, level, logger, message), for log "
        "collectors; text: for people.",
    )
    gc_young_objects: int = Field(
        default=50_000,
        ge=0,
        le=10_000_000,
        description=(
            "Allocations between collections of Python's youngest generation in the worker, "
            "sink, auditor and learner (Python's default 700; 0 keeps it)."
        ),
    )
    log_repeat_interval_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="A repeated Kafka client log line passes once per this interval (0: all).",
    )
    stop_grace_s: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="A worker, sink or auditor told to stop (SIGTERM, Ctrl-C) that has not "
        "finished stopping after this many seconds exits with code 1 and logs where it was "
        "waiting; its uncommitted events are decided again on restart.",
    )
    web_enabled: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    pii_hash_key: SecretStr = Field(
        default=SecretStr("atalaia-development-key"),
        description="HMAC key for identifiers kept only as hashes (IPs as entity keys). "
        "Set your own in production; every worker and caller must share it.",
    )
    api_host: str = Field(
        default="127.0.0.1", description="Address the API listens on (0.0.0.0 in a container)."
    )
    api_port: int = Field(default=8088, ge=1, le=65535)
    api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Admin API keys: comma-separated name:role:sha256-hex-of-the-key entries "
        "(role analyst or admin); `atalaia api-key` makes one. None: the admin API refuses all.",
    )
    audit_batch_records: int = Field(
        default=1000, ge=1, le=1_000_000, description="Audit records per Merkle batch (at most)."
    )
    audit_batch_seconds: int = Field(
        default=3600,
        ge=1,
        description="A batch is cut at this age: at its chain's next record, or by the "
        "auditor's check every min(this, 60) s on a quiet chain.",
    )
    stellar_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Stellar secret seed (S...) that signs anchors; unset: no anchoring.",
    )
    stellar_network: Literal["testnet", "public"] = "testnet"
    horizon_url: str | None = Field(
        default=None, description="Submit anchors here; unset: keep the signed envelope."
    )
    stellar_sequence: int = Field(
        default=0, ge=0, description="Account sequence to build on when no Horizon is set."
    )
    vault_master_key: SecretStr = Field(
        default=SecretStr("00" * 32),
        description="64 hex digits: wraps the data subjects' keys at rest. Set your own.",
    )
    key_store_dir: Path | None = Field(
        default=None,
        description="RocksDB store of the data subjects' keys (one API process uses it); "
        "default: <data_dir>/keys.",
    )
    analytics_target: str | None = Field(
        default=None,
        description="ClickHouse for analysts: a server URL (http://host:8123) or a chDB "
        "directory; default: <data_dir>/analytics (chDB).",
    )
    sink_host: str = Field(
        default="127.0.0.1",
        description="Address the sink's query, health and metrics endpoint listens on.",
    )
    sink_port: int = Field(default=8089, ge=1, le=65535)
    alert_webhooks: str = Field(
        default="", description="Comma-separated URLs that receive every alert (Slack-style JSON)."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address of the /metrics, /healthz and /readyz endpoint of a worker, "
        "auditor, learner, feeds or anchor service (0.0.0.0 to be scraped from elsewhere).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of that endpoint (off when unset; the API and the sink serve it on "
        "their own port).",
    )
    feeds_file: Path | None = Field(
        default=None,
        description="TOML file naming the list feeds `atalaia feeds` refreshes (files or URLs).",
    )
    feeds_interval_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="How often the feeds service refreshes."
    )
    anchor_time_utc: time = Field(
        default=time(0, 30),
        description="When the scheduled anchor (`atalaia audit anchor --schedule`) anchors "
        "the day before, each day (UTC, HH:MM).",
    )
    sink_batch_rows: int = Field(default=1000, ge=1, le=1_000_000)
    sink_batch_ms: int = Field(default=1000, ge=1, le=600_000)
    handbook_path: Path = (
        _REPO_ROOT.parent
        / "shared"
        / "data"
        / "handbook"
        / "transactions_2018-04-01_2018-07-31.csv.gz"
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be a comma-separated list of host:port")
        return value

    @field_validator("vault_master_key")
    @classmethod
    def _hex_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text.lower()):
            raise ValueError("must be 64 hex digits (32 bytes)")
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_key_entries(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())  # one-line ValueError naming the bad entry
        return value

    @property
    def analytics(self) -> str:
        return self.analytics_target or str(self.data_dir / "analytics")

    @property
    def alert_webhook_urls(self) -> list[str]:
        return [url.strip() for url in self.alert_webhooks.split(",") if url.strip()]

    @property
    def key_store_path(self) -> Path:
        return self.key_store_dir or self.data_dir / "keys"

    @property
    def broker_profile(self) -> BrokerProfile:
        return PROFILES[self.profile]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; ``config_file`` (or ``$ATALAIA_CONFIG``) names an optional TOML file."""
    path = config_file or (
        Path(os.environ[CONFIG_FILE_ENV]) if CONFIG_FILE_ENV in os.environ else None
    )
    settings_cls: type[Settings] = Settings
    if path is not None:
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
        settings_cls = type(
            "Settings",
            (Settings,),
            {"model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": path})},
        )
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(f"invalid setting: {describe_validation_error(exc)}") from None
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise SettingsError(f"config file {path}: {exc}") from None
