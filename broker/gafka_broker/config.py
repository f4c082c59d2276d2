"""Broker settings: command-line flags, then ``GAFKA_*`` environment variables, then a YAML file, then defaults.

One table (:data:`SETTINGS`) drives everything: the flag name, the environment variable, the YAML key,
the default and the parser, so docs/configuration.md, the CLI and the loader cannot drift apart. Loading
is pure (the caller passes the flags, the environment and the file path) so precedence is unit-testable.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS", "BrokerConfig", "ConfigError", "Setting", "load_config", "parse_listen"]

ENV_PREFIX = "GAFKA_"
MIN_GROUP_SESSION_TIMEOUT_MS = 1000
"""Floor of ``group_session_timeout_ms``: below it a GC pause or a slow request would expire members."""
MIN_GROUP_HEARTBEAT_INTERVAL_MS = 100
"""Floor of ``group_heartbeat_interval_ms``: every heartbeat is a request, so faster ones only add load."""
MAX_GROUP_TIMEOUT_MS = (1 << 31) - 1
CONFIG_FILE_ENV = "GAFKA_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the setting and where it came from."""


def parse_listen(raw: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9092`` for IPv6) into its parts."""
    text = raw.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be an integer in {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535 in {raw!r}")
    return host, port


def _parse_int(minimum: int, maximum: int = (1 << 63) - 1) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        try:
            value = int(str(raw).strip().replace("_", "")) if not isinstance(raw, int) else raw
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_str(raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _parse_optional_str(raw: Any) -> str | None:
    text = str(raw).strip()
    return text or None


def _parse_path(raw: Any) -> Path:
    return Path(_parse_str(raw)).expanduser()


def _parse_listen_setting(raw: Any) -> str:
    host, port = parse_listen(str(raw))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_optional_listen(raw: Any) -> str | None:
    text = str(raw).strip()
    return _parse_listen_setting(text) if text else None


def _parse_log_level(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return text


def _parse_url(raw: Any) -> str | None:
    text = str(raw).strip().rstrip("/")
    if not text:
        return None
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return text


@dataclass(frozen=True, slots=True)
class Setting:
    """One broker setting under its three names."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    required: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def yaml_key(self) -> str:
        return self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", None, _parse_path, "Directory holding the partition logs and the broker's metadata.", True),
    Setting("listen", "0.0.0.0:9092", _parse_listen_setting, "HOST:PORT the HTTP API listens on."),
    Setting("broker_id", 0, _parse_int(0, (1 << 31) - 1), "This broker's id (Kafka's node.id)."),
    Setting(
        "cluster_id",
        None,
        _parse_optional_str,
        "Cluster id; generated and stored in DATA_DIR/meta.properties on first start when unset. "
        "A mismatch with the stored id stops the broker.",
    ),
    Setting(
        "advertised_url",
        None,
        _parse_url,
        "URL clients are told to use for this broker; default http://LISTEN (the host name when listening on 0.0.0.0).",
    ),
    Setting(
        "controller_url",
        None,
        _parse_url,
        "URL of the cluster's controller (gafka controller, gafka dev, the operator). Unset: this broker is "
        "its own controller, with the cluster metadata in DATA_DIR/cluster-metadata.json.",
    ),
    Setting(
        "kafka_listen",
        None,
        _parse_optional_listen,
        "HOST:PORT the Kafka protocol listener serves on (docs/kafka.md); off when unset.",
    ),
    Setting(
        "kafka_advertised",
        None,
        _parse_optional_listen,
        "HOST:PORT Metadata tells Kafka clients for this broker; default KAFKA_LISTEN (127.0.0.1 for 0.0.0.0).",
    ),
    Setting("rack", None, _parse_optional_str, "Rack (or zone) of this broker; replicas are spread across racks."),
    Setting(
        "broker_heartbeat_interval_ms",
        2000,
        _parse_int(10),
        "How often this broker heartbeats to the controller (Kafka's broker.heartbeat.interval.ms).",
    ),
    Setting(
        "broker_session_timeout_ms",
        9000,
        _parse_int(100),
        "A broker silent for this long is fenced and loses its leaderships (Kafka's broker.session.timeout.ms); "
        "used by the controller this broker runs when it is its own controller.",
    ),
    Setting(
        "leader_imbalance_check_interval_ms",
        300_000,
        _parse_int(10),
        "How often preferred replicas that are fully caught up get their leadership back (Kafka's "
        "leader.imbalance.check.interval.seconds); used by the controller this broker runs when it is its own.",
    ),
    Setting(
        "replica_lag_time_max_ms",
        30_000,
        _parse_int(10),
        "A follower that has not caught up with the leader for this long leaves the ISR "
        "(Kafka's replica.lag.time.max.ms).",
    ),
    Setting(
        "replica_fetch_wait_max_ms",
        500,
        _parse_int(1, 60_000),
        "How long a follower's fetch waits on the leader for new data (Kafka's replica.fetch.wait.max.ms).",
    ),
    Setting(
        "replica_fetch_max_bytes",
        1024 * 1024,
        _parse_int(1024),
        "Bytes a follower asks for per partition and fetch (Kafka's replica.fetch.max.bytes).",
    ),
    Setting(
        "request_timeout_ms",
        30_000,
        _parse_int(1),
        "How long an acks=all produce waits for the in-sync replicas before REQUEST_TIMED_OUT "
        "(the timeout of Kafka's produce request).",
    ),
    Setting(
        "auto_create_topics", False, _parse_bool, "Create an unknown topic on its first produce (with the defaults)."
    ),
    Setting("default_partitions", 1, _parse_int(1, 100_000), "Partitions of a topic created without a count."),
    Setting(
        "default_replication_factor", 1, _parse_int(1, 1 << 15), "Replication factor of a topic created without one."
    ),
    Setting(
        "default_min_insync_replicas",
        1,
        _parse_int(1, 1 << 15),
        "min.insync.replicas of a topic created without one (at most its replication factor).",
    ),
    Setting("max_request_bytes", 8 * 1024 * 1024, _parse_int(1024), "Largest request body accepted (413 above)."),
    Setting("max_records_per_request", 10_000, _parse_int(1), "Most records in one produce request (413 above)."),
    Setting(
        "max_concurrent_long_polls",
        1000,
        _parse_int(0),
        "Fetches allowed to park waiting for data at once; one more is answered 429.",
    ),
    Setting("max_fetch_bytes", 16 * 1024 * 1024, _parse_int(1024), "Upper bound of a fetch's max_bytes."),
    Setting("max_wait_ms", 30_000, _parse_int(0), "Upper bound of a fetch's max_wait_ms."),
    Setting(
        "max_connections",
        2000,
        _parse_int(1),
        "Concurrent connections and requests before new ones get 503 (backpressure).",
    ),
    Setting(
        "retention_check_interval_ms",
        30_000,
        _parse_int(100),
        "How often retention and time-based segment rolls run (Kafka's log.retention.check.interval.ms).",
    ),
    Setting(
        "flush_check_interval_ms",
        1000,
        _parse_int(10),
        "How often logs whose flush.ms has elapsed are fsynced (Kafka's log.flush.scheduler.interval.ms).",
    ),
    Setting(
        "checkpoint_interval_ms",
        60_000,
        _parse_int(100),
        "How often recovery points and log start offsets are checkpointed "
        "(Kafka's log.flush.offset.checkpoint.interval.ms).",
    ),
    Setting(
        "log_cleaner_enable",
        True,
        _parse_bool,
        "Run the log cleaner that compacts topics with cleanup.policy=compact (Kafka's log.cleaner.enable).",
    ),
    Setting(
        "log_cleaner_io_max_bytes_per_second",
        0,
        _parse_int(0),
        "Bytes per second the log cleaner may read plus write; 0 = unlimited "
        "(Kafka's log.cleaner.io.max.bytes.per.second).",
    ),
    Setting(
        "log_cleaner_backoff_ms",
        15_000,
        _parse_int(10),
        "How long the log cleaner sleeps when no log needs cleaning (Kafka's log.cleaner.backoff.ms).",
    ),
    Setting(
        "shutdown_timeout_ms",
        30_000,
        _parse_int(0),
        "How long SIGTERM waits for in-flight requests before cancelling them.",
    ),
    Setting(
        "offsets_topic_num_partitions",
        50,
        _parse_int(1, 10_000),
        "Partitions of the internal __consumer_offsets topic, fixed when it is created "
        "(Kafka's offsets.topic.num.partitions).",
    ),
    Setting(
        "group_session_timeout_ms",
        45_000,
        _parse_int(MIN_GROUP_SESSION_TIMEOUT_MS, MAX_GROUP_TIMEOUT_MS),
        "A group member that sends no heartbeat for this long is removed and its partitions reassigned "
        "(Kafka's group.consumer.session.timeout.ms).",
    ),
    Setting(
        "group_heartbeat_interval_ms",
        5_000,
        _parse_int(MIN_GROUP_HEARTBEAT_INTERVAL_MS, MAX_GROUP_TIMEOUT_MS),
        "How often group members are told to heartbeat; must be below group_session_timeout_ms "
        "(Kafka's group.consumer.heartbeat.interval.ms).",
    ),
    Setting(
        "offsets_retention_minutes",
        10_080,
        _parse_int(1),
        "Committed offsets of a group that has had no members this long are removed "
        "(Kafka's offsets.retention.minutes).",
    ),
    Setting(
        "offsets_retention_check_interval_ms",
        600_000,
        _parse_int(100),
        "How often expired committed offsets are looked for (Kafka's offsets.retention.check.interval.ms).",
    ),
    Setting("log_level", "info", _parse_log_level, "debug, info, warning, error or critical."),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The effective settings of one broker (see :data:`SETTINGS` for what each means)."""

    data_dir: Path
    listen: str = "0.0.0.0:9092"
    broker_id: int = 0
    cluster_id: str | None = None
    advertised_url: str | None = None
    controller_url: str | None = None
    kafka_listen: str | None = None
    kafka_advertised: str | None = None
    rack: str | None = None
    broker_heartbeat_interval_ms: int = 2000
    broker_session_timeout_ms: int = 9000
    leader_imbalance_check_interval_ms: int = 300_000
    replica_lag_time_max_ms: int = 30_000
    replica_fetch_wait_max_ms: int = 500
    replica_fetch_max_bytes: int = 1024 * 1024
    request_timeout_ms: int = 30_000
    auto_create_topics: bool = False
    default_partitions: int = 1
    default_replication_factor: int = 1
    default_min_insync_replicas: int = 1
    max_request_bytes: int = 8 * 1024 * 1024
    max_records_per_request: int = 10_000
    max_concurrent_long_polls: int = 1000
    max_fetch_bytes: int = 16 * 1024 * 1024
    max_wait_ms: int = 30_000
    max_connections: int = 2000
    retention_check_interval_ms: int = 30_000
    flush_check_interval_ms: int = 1000
    checkpoint_interval_ms: int = 60_000
    log_cleaner_enable: bool = True
    log_cleaner_io_max_bytes_per_second: int = 0
    log_cleaner_backoff_ms: int = 15_000
    shutdown_timeout_ms: int = 30_000
    offsets_topic_num_partitions: int = 50
    group_session_timeout_ms: int = 45_000
    group_heartbeat_interval_ms: int = 5_000
    offsets_retention_minutes: int = 10_080
    offsets_retention_check_interval_ms: int = 600_000
    log_level: str = "info"

    @property
    def listen_host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_listen(self.listen)[1]

    def url(self, port: int | None = None) -> str:
        """The advertised URL; ``port`` replaces the configured one (after binding port 0)."""
        if self.advertised_url:
            return self.advertised_url
        host = self.listen_host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.listen_port if port is None else port}"


assert [f.name for f in fields(BrokerConfig)] == [s.name for s in SETTINGS]
assert all(f.default == _BY_NAME[f.name].default for f in fields(BrokerConfig) if not _BY_NAME[f.name].required)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # the broker extra's; imported here so `gafka --help` works with the SDK alone

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    data: dict[str, Any] = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {key!r} in {path}; known: {', '.join(_BY_NAME)}")
        data[name] = value
    return data


def load_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> BrokerConfig:
    """Resolve every setting: ``flags`` (None = not given) > ``env`` (``GAFKA_*``) > YAML file > default.

    The YAML file is ``config_file`` when given, else ``$GAFKA_CONFIG``. Unknown ``GAFKA_*`` variables are
    ignored (other gafka tools use the prefix too); unknown YAML keys and flags are an error.
    """
    flags = dict(flags or {})
    env = env or {}
    unknown = set(flags) - set(_BY_NAME)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    path = config_file if config_file is not None else env.get(CONFIG_FILE_ENV) or None
    from_file = _read_yaml(Path(path)) if path is not None else {}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw: Any
        if flags.get(setting.name) is not None:
            raw, source = flags[setting.name], f"flag {setting.flag}"
        elif setting.env in env:
            raw, source = env[setting.env], f"environment variable {setting.env}"
        elif from_file.get(setting.name) is not None:
            raw, source = from_file[setting.name], f"{setting.yaml_key} in {path}"
        else:
            if setting.required:
                raise ConfigError(
                    f"{setting.name} is required: pass {setting.flag}, set {setting.env} "
                    f"or put {setting.yaml_key} in the config file"
                )
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if values["group_heartbeat_interval_ms"] >= values["group_session_timeout_ms"]:
        raise ConfigError(
            f"group_heartbeat_interval_ms ({values['group_heartbeat_interval_ms']}) must be below "
            f"group_session_timeout_ms ({values['group_session_timeout_ms']}), or members expire between heartbeats"
        )
    return BrokerConfig(**values)
