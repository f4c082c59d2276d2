"""JSON records <-> record bytes, for the JSON produce and fetch endpoints.

A key or a value travels in one of three formats, chosen per request with ``key_format`` / ``value_format``:

- ``string`` (default): a JSON string is stored as its UTF-8 bytes; any other JSON value (object, number,
  ...) is stored as its compact JSON text. On fetch, the bytes are returned as a string.
- ``json``: the JSON value is stored as its compact JSON text; on fetch it is parsed back into JSON.
- ``base64``: a base64 string holding arbitrary bytes, returned as base64.

JSON ``null`` is a null key or value (a tombstone) in every format. When fetched bytes cannot be shown in
the requested format (not UTF-8 for ``string``, not JSON for ``json``), that one field comes back in
base64 and the record says so with ``"key_format": "base64"`` / ``"value_format": "base64"``, so nothing
is ever lost or mangled. Header values follow the same rule with their own ``"format"`` field.

No I/O here: the handlers call these and map :class:`RecordFormatError` to an HTTP error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import orjson

from gafka.protocol.record_batch import BATCH_OVERHEAD, NewRecord, Record, encode_batch

__all__ = [
    "FORMATS",
    "ProduceRecord",
    "RecordFormatError",
    "encode_batches",
    "parse_format",
    "parse_produce_body",
    "record_to_json",
    "records_to_json",
]

STRING: Final = "string"
JSON: Final = "json"
BASE64: Final = "base64"
FORMATS: Final = (STRING, JSON, BASE64)

MAX_TIMESTAMP = (1 << 63) - 1


class RecordFormatError(ValueError):
    """The request body or one record in it is malformed.

    ``code`` is the API error name; ``record_index`` is the position of the offending record, None when
    the envelope itself is wrong.
    """

    def __init__(self, message: str, *, code: str = "INVALID_RECORD", record_index: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.record_index = record_index


class ProduceRecord(NamedTuple):
    """One record of a JSON produce request, encoded to bytes; ``partition`` None = let the broker choose."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    partition: int | None
    timestamp: int | None


def parse_format(raw: object, what: str) -> str:
    """Check a ``key_format`` / ``value_format``; None means the default, ``string``."""
    if raw is None:
        return STRING
    if raw not in FORMATS:
        raise RecordFormatError(f"{what} must be one of {', '.join(FORMATS)}, got {raw!r}", code="INVALID_REQUEST")
    return str(raw)


def _encode(raw: object, fmt: str, what: str, index: int) -> bytes | None:
    if raw is None:
        return None
    if fmt == STRING:
        if isinstance(raw, str):
            return raw.encode()
        return orjson.dumps(raw)
    if fmt == JSON:
        return orjson.dumps(raw)
    if not isinstance(raw, str):
        raise RecordFormatError(f"record {index}: {what} must be a base64 string", record_index=index)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RecordFormatError(f"record {index}: {what} is not valid base64", record_index=index) from None


def _encode_header_value(raw: object, fmt: object, index: int) -> bytes | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise RecordFormatError(f"record {index}: header values must be strings or null", record_index=index)
    if fmt is None or fmt == STRING:
        return raw.encode()
    if fmt == BASE64:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise RecordFormatError(f"record {index}: header value is not valid base64", record_index=index) from None
    raise RecordFormatError(f"record {index}: header format must be string or base64", record_index=index)


def _parse_headers(raw: object, index: int) -> tuple[tuple[str, bytes | None], ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple((str(key), _encode_header_value(value, None, index)) for key, value in raw.items())
    if not isinstance(raw, list):
        raise RecordFormatError(
            f'record {index}: headers must be a list of {{"key", "value"}} or an object', record_index=index
        )
    headers: list[tuple[str, bytes | None]] = []
    for header in raw:
        if not isinstance(header, Mapping) or not isinstance(header.get("key"), str):
            raise RecordFormatError(
                f'record {index}: each header must be an object with a string "key"', record_index=index
            )
        headers.append((header["key"], _encode_header_value(header.get("value"), header.get("format"), index)))
    return tuple(headers)


def _parse_int_field(raw: object, name: str, index: int, code: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise RecordFormatError(f"record {index}: {name} must be an integer", code=code, record_index=index)
    return raw


PRODUCE_FIELDS = frozenset({"records", "key_format", "value_format"})
RECORD_FIELDS = frozenset({"key", "value", "headers", "partition", "timestamp"})


def _refuse_unknown(document: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    """A misspelt field (``val`` for ``value``) is a 400 naming it, never a record stored without it."""
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise RecordFormatError(
            f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(sorted(allowed))}",
            code="INVALID_REQUEST",
        )


def parse_produce_body(body: object, *, max_records: int) -> list[ProduceRecord]:
    """Validate and encode the records of ``{"records": [...], "key_format"?, "value_format"?}``."""
    if not isinstance(body, dict):
        raise RecordFormatError('the body must be a JSON object {"records": [...]}', code="INVALID_REQUEST")
    _refuse_unknown(body, PRODUCE_FIELDS, "the body")
    records = body.get("records")
    if not isinstance(records, list):
        raise RecordFormatError('"records" must be a list of records', code="INVALID_REQUEST")
    if not records:
        raise RecordFormatError('"records" must hold at least one record', code="INVALID_REQUEST")
    if len(records) > max_records:
        raise RecordFormatError(
            f"{len(records)} records in one request; the limit is {max_records}", code="RECORD_LIST_TOO_LARGE"
        )
    key_format = parse_format(body.get("key_format"), "key_format")
    value_format = parse_format(body.get("value_format"), "value_format")
    parsed: list[ProduceRecord] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordFormatError(f"record {index} must be a JSON object", record_index=index)
        _refuse_unknown(record, RECORD_FIELDS, f"record {index}")
        partition = _parse_int_field(record.get("partition"), "partition", index, "INVALID_RECORD")
        if partition is not None and partition < 0:
            raise RecordFormatError(
                f"record {index}: partition {partition} does not exist",
                code="UNKNOWN_TOPIC_OR_PARTITION",
                record_index=index,
            )
        timestamp = _parse_int_field(record.get("timestamp"), "timestamp", index, "INVALID_TIMESTAMP")
        if timestamp is not None and not 0 <= timestamp <= MAX_TIMESTAMP:
            raise RecordFormatError(
                f"record {index}: timestamp must be milliseconds since the epoch, >= 0",
                code="INVALID_TIMESTAMP",
                record_index=index,
            )
        parsed.append(
            ProduceRecord(
                _encode(record.get("key"), key_format, "key", index),
                _encode(record.get("value"), value_format, "value", index),
                _parse_headers(record.get("headers"), index),
                partition,
                timestamp,
            )
        )
    return parsed


def _size_bound(record: ProduceRecord) -> int:
    """An upper bound of the record's encoded size: varints at their widest plus the payloads."""
    size = 36 + len(record.key or b"") + len(record.value or b"")
    for header_key, header_value in record.headers:
        size += 10 + len(header_key.encode()) + len(header_value or b"")
    return size


def _check_fits(record: NewRecord, index: int, max_batch_bytes: int, now_ms: int) -> None:
    single = encode_batch([record], now_ms=now_ms)
    if len(single) > max_batch_bytes:
        raise RecordFormatError(
            f"record {index} needs a {len(single)}-byte batch; the topic's max.message.bytes is {max_batch_bytes}",
            code="MESSAGE_TOO_LARGE",
            record_index=index,
        )


def check_record_sizes(records: Sequence[ProduceRecord], max_batch_bytes: int, now_ms: int) -> None:
    """MESSAGE_TOO_LARGE for the first record that cannot fit a batch of its own, before anything is sent
    anywhere: the whole request is refused alike whichever broker leads the record's partition."""
    for index, record in enumerate(records):
        if BATCH_OVERHEAD + _size_bound(record) > max_batch_bytes:
            _check_fits(
                NewRecord(record.key, record.value, record.headers, record.timestamp), index, max_batch_bytes, now_ms
            )


def encode_batches(
    records: Sequence[ProduceRecord], indices: Sequence[int], max_batch_bytes: int, now_ms: int
) -> bytes:
    """``records`` (request positions ``indices``) as back-to-back batches of at most ``max_batch_bytes``.

    Records keep their order, so the i-th record gets the i-th offset of the append. A record too large
    for a batch of its own is a ``MESSAGE_TOO_LARGE`` error naming its request position.
    """
    batches: list[bytes] = []
    chunk: list[NewRecord] = []
    chunk_size = BATCH_OVERHEAD
    for record, index in zip(records, indices, strict=True):
        bound = _size_bound(record)
        new = NewRecord(record.key, record.value, record.headers, record.timestamp)
        if BATCH_OVERHEAD + bound > max_batch_bytes:
            _check_fits(new, index, max_batch_bytes, now_ms)
        if chunk and chunk_size + bound > max_batch_bytes:
            batches.append(encode_batch(chunk, now_ms=now_ms))
            chunk, chunk_size = [], BATCH_OVERHEAD
        chunk.append(new)
        chunk_size += bound
    if chunk:
        batches.append(encode_batch(chunk, now_ms=now_ms))
    return batches[0] if len(batches) == 1 else b"".join(batches)


def _decode_string(data: bytes) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode(data: bytes | None, fmt: str) -> tuple[Any, bool]:
    """The JSON form of ``data`` and whether it had to fall back to base64."""
    if data is None:
        return None, False
    if fmt == STRING:
        text = _decode_string(data)
        return (text, False) if text is not None else (_b64(data), True)
    if fmt == JSON:
        try:
            return orjson.loads(data), False
        except orjson.JSONDecodeError:
            return _b64(data), True
    return _b64(data), False


def _headers_to_json(headers: tuple[tuple[str, bytes | None], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, value in headers:
        if value is None:
            out.append({"key": key, "value": None})
            continue
        text = _decode_string(value)
        if text is None:
            out.append({"key": key, "value": _b64(value), "format": BASE64})
        else:
            out.append({"key": key, "value": text})
    return out


def record_to_json(record: Record, key_format: str = STRING, value_format: str = STRING) -> dict[str, Any]:
    """``{offset, timestamp, key, value, headers}`` of one fetched record."""
    key, key_fallback = _decode(record.key, key_format)
    value, value_fallback = _decode(record.value, value_format)
    out: dict[str, Any] = {
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key,
        "value": value,
        "headers": _headers_to_json(record.headers) if record.headers else [],
    }
    if key_fallback:
        out["key_format"] = BASE64
    if value_fallback:
        out["value_format"] = BASE64
    return out


def records_to_json(
    records: Iterable[Record], key_format: str = STRING, value_format: str = STRING
) -> list[dict[str, Any]]:
    return [record_to_json(record, key_format, value_format) for record in records]
