"""Settings: one typed definition, defaults here, overridable by a config file and by environment.

Precedence (highest first): explicit overrides (CLI flags) > environment variables `O2O_<NAME>` >
the config file (`--config FILE` or `O2O_CONFIG`, TOML or YAML) > the defaults below.

The file may group settings in sections; a key `k` in section `s` is the setting `s_k`:

    [kafka]
    bootstrap_servers = "broker-1:9092,broker-2:9092"    # same as O2O_KAFKA_BOOTSTRAP_SERVERS
    [clickhouse]
    host = "ch.internal"                                  # same as O2O_CLICKHOUSE_HOST

Secrets are `SecretStr`: they print as '**********' in logs, errors and `o2o config`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from pipeline.compiled import INTERPRETED_ENV  # a process switch read at import, not a setting

if TYPE_CHECKING:
    from pipeline.dedup import Deduplicator
    from pipeline.journey import JourneyPolicy
    from pipeline.rules.config import RulesConfig
    from pipeline.validation import ValidationPolicy

ENV_PREFIX = "O2O_"
CONFIG_FILE_ENV = "O2O_CONFIG"


class ConfigError(Exception):
    """Bad configuration. The message names the setting, the value's source and what is accepted."""


class ApiKeySetting(BaseModel):
    """One HTTP collector API key: the source it stands for, the event types it may send, its rate."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr
    source: str = Field(min_length=1, max_length=64)
    types: list[str] | None = None  # None: every event type
    rate_limit_events_per_s: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)

    @field_validator("key")
    @classmethod
    def _key_is_long(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("an API key needs at least 16 characters; generate one with "
                             "python -c 'import secrets; print(secrets.token_urlsafe(24))'")
        return value

    @field_validator("types")
    @classmethod
    def _types_are_known(cls, value: list[str] | None) -> list[str] | None:
        from pipeline.events import EVENT_TYPES

        unknown = sorted(set(value or ()) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; use {', '.join(EVENT_TYPES)}")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- runtime ---------------------------------------------------------------------------
    mode: Literal["dev", "prod"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    state_dir: Path = Path(".o2o")

    # --- Kafka (librdkafka / confluent-kafka names where they exist) -------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # Any other librdkafka property, passed through unchanged (e.g. {"linger.ms": "20"}).
    kafka_extra: dict[str, str] = Field(default_factory=dict)
    topic_prefix: str = "o2o"
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1, le=16)
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=60_000)
    # A Confluent-compatible schema registry; unset: the embedded registry (stable ids, README).
    schema_registry_url: str | None = None
    schema_registry_auth: SecretStr | None = None  # "user:password" for HTTP basic auth

    # --- ClickHouse --------------------------------------------------------------------------
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = Field(default=19000, ge=1, le=65535)
    clickhouse_database: str = Field(default="o2o", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_secure: bool = False
    clickhouse_ca_certs: Path | None = None
    # Only the local stack uses this: its ClickHouse HTTP port.
    clickhouse_http_port: int = Field(default=18123, ge=1, le=65535)

    # --- privacy -------------------------------------------------------------------------------
    # Key of the HMAC-SHA256 that replaces raw MACs and phone numbers. Required in prod mode.
    hash_secret: SecretStr | None = None

    # --- validation and deduplication (see pipeline/validation.py, pipeline/dedup.py) -------------
    validation_max_future_skew_ms: int = Field(default=300_000, ge=0)
    validation_min_occurred_at_ms: int = Field(default=946_684_800_000, ge=0)
    validation_max_string_len: int = Field(default=1024, ge=16)
    validation_max_properties: int = Field(default=64, ge=0)
    validation_max_items: int = Field(default=1000, ge=1)
    dedup_window_ms: int = Field(default=600_000, ge=1000)
    dedup_max_entries: int = Field(default=1_000_000, ge=1000)

    # --- identity, sessions, visits (see pipeline/journey.py, sessions.py, visits.py) -------------
    allowed_lateness_ms: int = Field(default=60 * 60_000, ge=0)
    session_gap_ms: int = Field(default=30 * 60_000, ge=1000)
    session_max_length_ms: int = Field(default=8 * 3600_000, ge=1000)
    visit_timeout_ms: int = Field(default=15 * 60_000, ge=1000)
    visitor_min_dwell_ms: int = Field(default=5 * 60_000, ge=0)
    visitor_min_rssi_dbm: int = Field(default=-70, ge=-120, le=0)
    # A live stream with no new events still closes sessions: after this much idle wall time the
    # watermark advances by the wall time that passed.
    journey_idle_advance_ms: int = Field(default=60_000, ge=1000)
    # Open sessions and visits are published at most once per this interval each, latest version
    # only; closures, absorptions and merges at once. 0: every batch publishes what it changed.
    open_update_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    # The journey writes its whole state to its changelog (a snapshot) at least this often, and when
    # the changes since the last snapshot outgrow max(state_snapshot_min_bytes, that snapshot): a
    # restore reads from the last snapshot on, and retention (1 day at least) never deletes it.
    state_snapshot_interval_ms: int = Field(default=3600_000, ge=1000, le=12 * 3600_000)
    state_snapshot_min_bytes: int = Field(default=64 * 1024 * 1024, ge=0)

    # --- stream processing ---------------------------------------------------------------------
    # Which agents a worker runs (comma-separated: ingest, journey, sink); e.g. sink-only workers.
    worker_agents: str = Field(default="ingest,journey,sink", pattern=r"^(ingest|journey|sink)(,(ingest|journey|sink))*$")
    # Most records an agent takes at once, and how long it waits to fill a batch.
    agent_batch_records: int = Field(default=500, ge=1)
    agent_batch_wait_ms: int = Field(default=20, ge=1)
    # Events per output record (records carrying many events keep agents fast; DESIGN.md).
    output_batch_events: int = Field(default=1000, ge=1, le=10_000)
    # Longest a fetch with no data waits at the broker: bounds the delay each hop adds when traffic
    # is light (Apache Kafka answers at once when data arrives; the local broker waits this long).
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=5000)
    # Consumer group session timeout: joins take about half of it on the local broker.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)

    # --- trigger rules (see pipeline/rules/) ---------------------------------------------------------
    # A rules YAML file; unset: the shipped defaults (pipeline/rules/default_rules.yaml).
    rules_file: Path | None = None
    # How often the worker runs the aggregate rules on ClickHouse (as `o2o triggers scan`); 0 = never.
    rules_scan_interval_s: int = Field(default=60, ge=0)

    # --- ClickHouse sink (see agents/sink.py) ---------------------------------------------------
    # Most Kafka records per insert batch (each carries up to output_batch_events rows), and how
    # long a batch may wait to fill: the freshness bound when traffic is low.
    sink_batch_records: int = Field(default=200, ge=1)
    sink_batch_wait_ms: int = Field(default=1000, ge=10)
    # ... or as soon as its records hold this many bytes (about 10,000 events of o2o.resolved).
    sink_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    # The sink's kafka_fetch_max_wait_ms: five consumers polling every 50 ms kept the local broker
    # 6 % busy with no traffic at all; the sink waits up to sink_batch_wait_ms anyway.
    sink_fetch_max_wait_ms: int = Field(default=250, ge=1, le=5000)
    # Retry backoff while ClickHouse is down or failing: doubles from min to max, forever.
    sink_retry_min_ms: int = Field(default=200, ge=10)
    sink_retry_max_ms: int = Field(default=5000, ge=10)

    # --- HTTP collector (see agents/collector.py, pipeline/collect/, README "The HTTP collector") ---
    collector_host: str = "127.0.0.1"
    collector_port: int = Field(default=8088, ge=0, le=65535)
    collector_max_body_bytes: int = Field(default=1_048_576, ge=1024)  # on the wire and after gunzip
    collector_max_events_per_request: int = Field(default=1000, ge=1)
    # Default token bucket per API key, in events: refill rate and bucket size (a key may override).
    collector_rate_limit_events_per_s: float = Field(default=10_000.0, gt=0)
    collector_rate_limit_burst: int = Field(default=20_000, ge=1)
    # Events accepted but not yet acknowledged by the broker; beyond this a request gets 503.
    collector_buffer_events: int = Field(default=50_000, ge=1)
    collector_linger_ms: int = Field(default=5, ge=0)  # how long events wait to share a batch record
    collector_ack_timeout_ms: int = Field(default=30_000, ge=100)  # then 503: delivery not confirmed
    collector_drain_timeout_s: float = Field(default=30.0, gt=0)  # SIGTERM: wait this long for requests
    # API keys: a list of {"key", "source", "types", "rate_limit_events_per_s", "rate_limit_burst"};
    # in the environment as JSON, or in a JSON file named by collector_api_keys_file.
    collector_api_keys: list[ApiKeySetting] = Field(default_factory=list)
    collector_api_keys_file: Path | None = None
    # Cisco Meraki Scanning API receiver: validator (answered to GET), shared secret, store map file.
    meraki_validator: str | None = None
    meraki_secret: SecretStr | None = None
    meraki_store_map: Path | None = None

    # --- metrics -------------------------------------------------------------------------------
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    # --- `o2o simulate` (pipeline/simulate.py; flags override; [simulate] section in a file) ------
    simulate_persons: int = Field(default=5000, ge=1)
    simulate_stores: int = Field(default=20, ge=1)
    simulate_rate: float = Field(default=1000.0, ge=0)       # events/s; 0 = as fast as possible
    simulate_bad_rate: float = Field(default=0.01, ge=0, le=0.5)
    simulate_late_rate: float = Field(default=0.02, ge=0, le=1)
    # The journey mix; unset: the defaults of pipeline.simulate.Mix (README, "Simulating traffic").
    simulate_member_share: float | None = Field(default=None, ge=0, le=1)
    simulate_app_share: float | None = Field(default=None, ge=0, le=1)
    simulate_active_share: float | None = Field(default=None, ge=0, le=1)
    simulate_walk_in_share: float | None = Field(default=None, ge=0, le=1)
    simulate_visit_share: float | None = Field(default=None, ge=0, le=1)
    simulate_buy_share: float | None = Field(default=None, ge=0, le=1)
    simulate_online_buy_share: float | None = Field(default=None, ge=0, le=1)
    simulate_share_share: float | None = Field(default=None, ge=0, le=1)
    simulate_complaint_share: float | None = Field(default=None, ge=0, le=1)
    simulate_refund_share: float | None = Field(default=None, ge=0, le=1)
    simulate_opt_out_share: float | None = Field(default=None, ge=0, le=1)
    simulate_passersby_per_store: int | None = Field(default=None, ge=0)
    simulate_staff_per_store: int | None = Field(default=None, ge=0)
    simulate_round_minutes: int | None = Field(default=None, ge=1)
    simulate_late_min_s: int | None = Field(default=None, ge=0)
    simulate_late_max_s: int | None = Field(default=None, ge=0)

    def validation_policy(self) -> "ValidationPolicy":
        from pipeline.validation import ValidationPolicy

        return ValidationPolicy(
            max_future_skew_ms=self.validation_max_future_skew_ms,
            min_occurred_at_ms=self.validation_min_occurred_at_ms,
            max_string_len=self.validation_max_string_len,
            max_properties=self.validation_max_properties,
            max_items=self.validation_max_items,
        )

    def journey_policy(self) -> "JourneyPolicy":
        from pipeline.journey import JourneyPolicy
        from pipeline.sessions import SessionPolicy
        from pipeline.visits import VisitPolicy

        try:
            return JourneyPolicy(
                allowed_lateness_ms=self.allowed_lateness_ms,
                sessions=SessionPolicy(gap_ms=self.session_gap_ms, max_length_ms=self.session_max_length_ms),
                visits=VisitPolicy(timeout_ms=self.visit_timeout_ms, visitor_min_dwell_ms=self.visitor_min_dwell_ms,
                                   visitor_min_rssi_dbm=self.visitor_min_rssi_dbm),
            )
        except ValueError as exc:
            raise ConfigError(f"bad configuration: {exc}") from None

    def rules(self) -> "RulesConfig":
        """The checked trigger rules (the rules file, or the shipped defaults)."""
        from pipeline.rules.config import RulesConfigError, load_rules

        try:
            return load_rules(self.rules_file)
        except RulesConfigError as exc:
            raise ConfigError(str(exc)) from None

    def new_deduplicator(self) -> "Deduplicator":
        from pipeline.dedup import Deduplicator

        return Deduplicator(window_ms=self.dedup_window_ms, max_entries=self.dedup_max_entries)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _servers_have_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic ('browse', 'dlq', 'sessions', ...)."""
        return f"{self.topic_prefix}.{name}"

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka properties for any confluent-kafka client: servers, security, pass-through."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        optional = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": self.kafka_sasl_password,
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": self.kafka_ssl_key_password,
        }
        for key, value in optional.items():
            if value is not None:
                conf[key] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        conf.update(self.kafka_extra)
        return conf

    def clickhouse_client_kwargs(self, database: str | None = None) -> dict[str, Any]:
        """Keyword arguments for `clickhouse_driver.Client`."""
        kwargs: dict[str, Any] = {
            "host": self.clickhouse_host,
            "port": self.clickhouse_port,
            "database": database or self.clickhouse_database,
            "user": self.clickhouse_user,
            "password": self.clickhouse_password.get_secret_value(),
            "secure": self.clickhouse_secure,
        }
        if self.clickhouse_ca_certs:
            kwargs["ca_certs"] = str(self.clickhouse_ca_certs)
        return kwargs

    def collector_keys(self) -> list[ApiKeySetting]:
        """The collector's API keys: `collector_api_keys` plus those in `collector_api_keys_file`."""
        import json

        keys = list(self.collector_api_keys)
        path = self.collector_api_keys_file
        if path is not None:
            try:
                data = json.loads(path.read_text())
                keys += [ApiKeySetting.model_validate(item) for item in data]
            except OSError as exc:
                raise ConfigError(f"collector_api_keys_file {path}: cannot read it ({exc.strerror})") from None
            except ValidationError as exc:  # never shows the input: it holds keys
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise ConfigError(f"collector_api_keys_file {path}: {problems}") from None
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"collector_api_keys_file {path}: expected a JSON list of {{\"key\", \"source\", \"types\"}} "
                    f"objects ({str(exc).splitlines()[0]})"
                ) from None
        seen: set[str] = set()
        for key in keys:
            secret = key.key.get_secret_value()
            if secret in seen:
                raise ConfigError(f"collector API keys: a key is listed twice (source {key.source!r})")
            seen.add(secret)
        return keys

    def meraki_store_map_data(self) -> dict[str, Any]:
        """The JSON of `meraki_store_map` ({} when unset); `pipeline.collect.stores` checks its shape."""
        import json

        path = self.meraki_store_map
        if path is None:
            return {}
        try:
            return json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"meraki_store_map {path}: cannot read it ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"meraki_store_map {path}: not valid JSON ({exc})") from None

    def check_ready_for(self, purpose: str) -> None:
        """Refuse to start `purpose` in prod mode with settings that only suit a laptop."""
        if self.mode == "prod" and self.hash_secret is None:
            raise ConfigError(
                f"{purpose}: setting 'hash_secret' is required in prod mode: raw MAC addresses and phone "
                f"numbers are replaced by HMAC-SHA256 with this key. Set {ENV_PREFIX}HASH_SECRET, or "
                "hash_secret = \"...\" in the config file (keep that file private)."
            )

    @property
    def effective_hash_secret(self) -> bytes:
        """The hashing key; dev mode has a fixed, documented, insecure one so laptops just work."""
        if self.hash_secret is not None:
            return self.hash_secret.get_secret_value().encode()
        self.check_ready_for("hashing")
        return b"o2o-dev-only-insecure-hash-secret"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML config file and flatten one level of sections into `section_key`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    return flatten_sections(data)


def flatten_sections(data: dict[str, Any]) -> dict[str, Any]:
    """{'kafka': {'bootstrap_servers': x}} -> {'kafka_bootstrap_servers': x}; dict-valued settings stay."""
    dict_settings = {name for name, f in Settings.model_fields.items() if f.annotation == dict[str, str]}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in dict_settings:
            for sub_key, sub_value in value.items():
                flat[f"{key}_{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the config file, the environment and overrides; explain errors."""
    config_file = config_file or os.environ.get(CONFIG_FILE_ENV)
    file_values = read_config_file(Path(config_file)) if config_file else {}
    env_names = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    env_given = {name for name in Settings.model_fields if f"{ENV_PREFIX}{name}".upper() in os.environ}
    unknown_env = sorted(
        key for key in os.environ if key.startswith(ENV_PREFIX) and key not in env_names and key not in (CONFIG_FILE_ENV, INTERPRETED_ENV)
    )
    if unknown_env:
        raise ConfigError(f"unknown setting in the environment: {', '.join(unknown_env)} ({_known_hint()})")
    # The file is the lowest layer above defaults: drop what the environment sets.
    values = {k: v for k, v in file_values.items() if k not in env_given}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, config_file, set(file_values), env_given)) from None
    except SettingsError as exc:  # an O2O_ variable that should hold JSON (a list or mapping) does not
        raise ConfigError(f"bad configuration: {exc}; give the value as JSON") from None


def _known_hint() -> str:
    return "run 'o2o config --help' or see README 'Configuration' for the list of settings"


def _explain(exc: ValidationError, config_file: Any, from_file: set[str], from_env: set[str]) -> str:
    lines = ["bad configuration:"]
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        if name in from_env:
            where = f"environment {ENV_PREFIX}{name.upper()}"
        elif name in from_file:
            where = f"config file {config_file}"
        else:
            where = "command line or default"
        if error["type"] == "extra_forbidden":
            lines.append(f"  - unknown setting {name!r} ({where}); {_known_hint()}")
            continue
        given = error.get("input")
        shown = "'**********'" if _is_secret(name) else repr(given)
        lines.append(f"  - setting {name!r} ({where}): {error['msg']}; got {shown}")
    return "\n".join(lines)


def _is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return field is not None and ("SecretStr" in str(field.annotation) or name == "collector_api_keys")
