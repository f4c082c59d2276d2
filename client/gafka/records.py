"""The value types the SDK hands to users: what a send resolves to and what a poll returns."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ConsumerRecord", "OffsetAndMetadata", "RecordMetadata", "TopicPartition"]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a sent record landed. ``timestamp`` is the broker's when the topic uses LogAppendTime."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class ConsumerRecord(NamedTuple):
    """One consumed record; key, value and header values are bytes (or None)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class OffsetAndMetadata(NamedTuple):
    """A committed position: ``offset`` is the next record to read (Kafka's meaning)."""

    offset: int
    metadata: str = ""
