"""Types of the C record walk (``_crecords.c``); the pure-Python references are in ``record_batch``."""

from typing import Any

from gafka.protocol.record_batch import Buffer

def check_records(section: Buffer, count: int, /) -> None: ...
def decode_records(
    section: Buffer,
    count: int,
    base_offset: int,
    base_timestamp: int,
    max_timestamp: int,
    log_append_time: bool,
    record_type: type[Any],
    /,
) -> list[Any]: ...
