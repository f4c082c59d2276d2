"""Kafka's ListOffsets for one partition this broker leads: earliest, latest, or the first record at a time."""

from __future__ import annotations

from typing import NamedTuple

from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.partition import BrokerPartition, OffsetNotAvailableError

__all__ = ["EARLIEST", "LATEST", "FoundOffset", "list_offset"]

EARLIEST = -2
"""Kafka's EARLIEST_TIMESTAMP: the log start offset."""
LATEST = -1
"""Kafka's LATEST_TIMESTAMP: the high watermark."""


class FoundOffset(NamedTuple):
    offset: int
    timestamp: int | None
    """The found record's timestamp (None for earliest, latest, or a time after every record)."""


def list_offset(partition: BrokerPartition, at: int) -> FoundOffset:
    """``at`` is EARLIEST, LATEST or a timestamp in ms >= 0.

    For a timestamp later than every committed record the answer is the high watermark without a
    timestamp: the offset the next record will get, where a consumer seeking by time should start.
    A new leader that does not know its high watermark yet answers OFFSET_NOT_AVAILABLE (KIP-207) for both,
    rather than a value below one a client already saw.
    """
    if at == EARLIEST:
        return FoundOffset(partition.log_start_offset, None)
    try:
        latest = partition.latest_offset()
    except OffsetNotAvailableError as exc:
        raise ApiError(ErrorCode.OFFSET_NOT_AVAILABLE, exc.message, headers={"retry-after": "1"}) from None
    if at == LATEST:
        return FoundOffset(latest, None)
    found = partition.log.offset_for_timestamp(at)
    if found is None or found[0] >= latest:
        return FoundOffset(latest, None)
    offset, record_timestamp = found
    return FoundOffset(max(offset, partition.log_start_offset), record_timestamp)
