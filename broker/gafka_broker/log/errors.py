"""Errors the partition log raises; the HTTP layer maps each to a Kafka-named error code."""

from __future__ import annotations

from gafka.protocol.record_batch import CorruptRecordError, InvalidRecordError

__all__ = [
    "CorruptRecordError",
    "InvalidRecordError",
    "LogCorruptionError",
    "LogError",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "UnexpectedOffsetError",
]


class LogError(Exception):
    """An I/O failure of the log itself (disk full, file vanished): not the caller's fault."""


class LogCorruptionError(LogError):
    """Bytes on disk no longer match their CRC: the broker refuses to serve them (KAFKA_STORAGE_ERROR).
    ``offset``: the base offset of the damaged batch, where a healing replica truncates to."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class OffsetOutOfRangeError(LookupError):
    """The requested offset lies outside ``[log_start_offset, log_end_offset]``."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range; valid offsets are {log_start_offset}..{log_end_offset}")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class RecordTooLargeError(InvalidRecordError):
    """A batch is larger than the topic's ``max.message.bytes``."""


class UnexpectedOffsetError(InvalidRecordError):
    """A follower append does not continue the log where it ends."""
