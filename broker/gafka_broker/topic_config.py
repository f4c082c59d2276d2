"""Topic configuration under Kafka's own names, parsed and validated in one place.

Users set these with ``POST /v1/topics`` / ``PATCH`` (and ``GafkaTopic.spec.config``); the log, the
produce path and replication read the typed :class:`TopicConfig`. Unknown names and bad values raise
:class:`TopicConfigError` with a message that names the setting, so the API can answer 400.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from gafka.protocol.record_batch import TimestampType

MAX_LONG = (1 << 63) - 1
DAY_MS = 24 * 60 * 60 * 1000


class TopicConfigError(ValueError):
    """A topic setting is unknown or has a value outside its range."""


def _parse_int(name: str, raw: str | int | float, minimum: int, maximum: int = MAX_LONG) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise TopicConfigError(f"{name} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise TopicConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise TopicConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _parse_ratio(name: str, raw: str | int | float) -> float:
    if isinstance(raw, bool):
        raise TopicConfigError(f"{name} must be a number between 0 and 1, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TopicConfigError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise TopicConfigError(f"{name} must be between 0 and 1, got {value}")
    return value


def _parse_bool(name: str, raw: str | int | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise TopicConfigError(f"{name} must be true or false, got {raw!r}")


def _parse_cleanup_policy(raw: str | int) -> str:
    parts = sorted({part.strip() for part in str(raw).split(",") if part.strip()})
    if not parts or any(part not in ("delete", "compact") for part in parts):
        raise TopicConfigError(f"cleanup.policy must be delete, compact or 'compact,delete', got {raw!r}")
    return ",".join(parts)


def _parse_timestamp_type(raw: str | int) -> TimestampType:
    try:
        return TimestampType.parse(str(raw))
    except ValueError as exc:
        raise TopicConfigError(f"message.timestamp.type: {exc}") from None


def _parse_compression_type(raw: str | int) -> str:
    text = str(raw).strip().lower()
    if text != "producer":
        raise TopicConfigError(
            f"compression.type {raw!r} is not supported: gafka keeps batches as the producer compressed them "
            "(compression.type=producer)"
        )
    return text


@dataclass(frozen=True, slots=True)
class _Setting:
    attribute: str
    parse: Callable[[Any], Any]
    render: Callable[[Any], str] = str


def _int_setting(attribute: str, name: str, minimum: int, maximum: int = MAX_LONG) -> _Setting:
    return _Setting(attribute, lambda raw: _parse_int(name, raw, minimum, maximum))


_SETTINGS: dict[str, _Setting] = {
    "retention.ms": _int_setting("retention_ms", "retention.ms", -1),
    "retention.bytes": _int_setting("retention_bytes", "retention.bytes", -1),
    "segment.bytes": _int_setting("segment_bytes", "segment.bytes", 128, (1 << 31) - 1),
    "segment.ms": _int_setting("segment_ms", "segment.ms", 1),
    "segment.index.bytes": _int_setting("segment_index_bytes", "segment.index.bytes", 8 * 4, (1 << 31) - 1),
    "index.interval.bytes": _int_setting("index_interval_bytes", "index.interval.bytes", 0, (1 << 31) - 1),
    "max.message.bytes": _int_setting("max_message_bytes", "max.message.bytes", 64, (1 << 31) - 1),
    "min.insync.replicas": _int_setting("min_insync_replicas", "min.insync.replicas", 1, 1 << 15),
    "flush.messages": _int_setting("flush_messages", "flush.messages", 1),
    "flush.ms": _int_setting("flush_ms", "flush.ms", 0),
    "cleanup.policy": _Setting("cleanup_policy", _parse_cleanup_policy),
    "delete.retention.ms": _int_setting("delete_retention_ms", "delete.retention.ms", 0),
    "min.cleanable.dirty.ratio": _Setting(
        "min_cleanable_dirty_ratio", lambda raw: _parse_ratio("min.cleanable.dirty.ratio", raw), repr
    ),
    "min.compaction.lag.ms": _int_setting("min_compaction_lag_ms", "min.compaction.lag.ms", 0),
    "max.compaction.lag.ms": _int_setting("max_compaction_lag_ms", "max.compaction.lag.ms", 1),
    "message.timestamp.type": _Setting(
        "message_timestamp_type",
        _parse_timestamp_type,
        lambda value: "LogAppendTime" if value is TimestampType.LOG_APPEND_TIME else "CreateTime",
    ),
    "unclean.leader.election.enable": _Setting(
        "unclean_leader_election_enable",
        lambda raw: _parse_bool("unclean.leader.election.enable", raw),
        lambda value: "true" if value else "false",
    ),
    "compression.type": _Setting("compression_type", _parse_compression_type),
}


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """Effective settings of one topic; defaults are Kafka's."""

    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * DAY_MS
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1024 * 1024 + 12
    min_insync_replicas: int = 1
    flush_messages: int = MAX_LONG
    flush_ms: int = MAX_LONG
    cleanup_policy: str = "delete"
    delete_retention_ms: int = DAY_MS
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = MAX_LONG
    message_timestamp_type: TimestampType = TimestampType.CREATE_TIME
    unclean_leader_election_enable: bool = False
    compression_type: str = "producer"
    overrides: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_configs(cls, configs: Mapping[str, Any] | None, *, base: TopicConfig | None = None) -> TopicConfig:
        """Parse Kafka-named settings over ``base`` (defaults when None); unknown names are an error."""
        start = base if base is not None else cls()
        changes: dict[str, Any] = {}
        overrides = dict(start.overrides)
        for name, raw in (configs or {}).items():
            setting = _SETTINGS.get(name)
            if setting is None:
                raise TopicConfigError(f"unknown topic config {name!r}; supported: {', '.join(sorted(_SETTINGS))}")
            if raw is None:  # null removes an override, back to the default
                changes[setting.attribute] = getattr(cls(), setting.attribute)
                overrides.pop(name, None)
                continue
            value = setting.parse(raw)
            changes[setting.attribute] = value
            overrides[name] = setting.render(value)
        return replace(start, overrides=overrides, **changes)

    def to_configs(self) -> dict[str, str]:
        """Every setting under its Kafka name, as strings (what ``GET /v1/topics/{topic}`` shows)."""
        return {name: setting.render(getattr(self, setting.attribute)) for name, setting in _SETTINGS.items()}

    @property
    def compact(self) -> bool:
        """``cleanup.policy`` includes ``compact``: the log cleaner keeps the last record per key."""
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        """``cleanup.policy`` includes ``delete``: ``retention.ms``/``retention.bytes`` remove old segments."""
        return "delete" in self.cleanup_policy.split(",")

    @property
    def max_segment_ms(self) -> int:
        """How old the active segment may get before it rolls: ``segment.ms``, and on a compacted topic
        no more than ``max.compaction.lag.ms``, so no record waits in the (never cleaned) active segment
        longer than that (Kafka's ``LogConfig.maxSegmentMs``)."""
        if self.compact:
            return min(self.segment_ms, self.max_compaction_lag_ms)
        return self.segment_ms

    @property
    def flush_every_append(self) -> bool:
        """``flush.messages=1``: every acknowledged append is on disk (group-committed)."""
        return self.flush_messages == 1


SUPPORTED_CONFIGS = tuple(sorted(_SETTINGS))
assert {s.attribute for s in _SETTINGS.values()} <= {f.name for f in fields(TopicConfig)}
