"""Kafka request and response bytes, through kio's classes generated from Kafka's message JSON specs.

Only the frame's first bytes are read by hand (api key and version, to pick the header and body
classes; correlation id, to answer a request whose body cannot be decoded). Everything else is kio's.
Responses are built with :func:`make`: one dict of plain values for every version of an API, each
version's class taking the fields it has (a field missing from a version is dropped, as Kafka's own
generated code ignores fields a version does not carry).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NamedTuple

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KafkaErrorCode
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import TZAware, i32, i32Timedelta, i64Timedelta

from gafka_broker.errors import ErrorCode

__all__ = [
    "API_VERSIONS_KEY",
    "DecodeError",
    "RequestFrame",
    "decode_request",
    "encode_response",
    "kafka_error",
    "make",
    "peek_header",
]

API_VERSIONS_KEY = 18
_HEAD = struct.Struct(">hhi")


class DecodeError(ValueError):
    """The frame is not a request this listener can read (truncated, malformed, unknown API)."""


class RequestFrame(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int


def peek_header(frame: bytes) -> RequestFrame:
    """Api key, version and correlation id: the same first 8 bytes in every request header version."""
    if len(frame) < _HEAD.size:
        raise DecodeError(f"a request of {len(frame)} bytes is shorter than a request header")
    return RequestFrame(*_HEAD.unpack_from(frame))


@cache
def _request_class(api_key: int, api_version: int) -> type[Any]:
    return load_request_schema(api_key, api_version)


@cache
def _response_class(api_key: int, api_version: int) -> type[Any]:
    return load_response_schema(api_key, api_version)


_READERS: dict[type[Any], Callable[[bytes, int], tuple[Any, int]]] = {}
_WRITERS: dict[type[Any], Callable[[io.BytesIO, Any], None]] = {}


def _reader(cls: type[Any]) -> Callable[[bytes, int], tuple[Any, int]]:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = entity_reader(cls)
    return reader


def _writer(cls: type[Any]) -> Callable[[io.BytesIO, Any], None]:
    writer = _WRITERS.get(cls)
    if writer is None:
        writer = _WRITERS[cls] = entity_writer(cls)
    return writer


def decode_request(frame: bytes, head: RequestFrame) -> tuple[str | None, Any]:
    """The client id and the request entity; :class:`DecodeError` for anything that does not parse whole."""
    try:
        cls = _request_class(head.api_key, head.api_version)
    except Exception as exc:
        raise DecodeError(f"no request schema for api {head.api_key} v{head.api_version}: {exc}") from None
    header_cls = RequestHeaderV2 if cls.__flexible__ else RequestHeaderV1
    try:
        header, offset = _reader(header_cls)(frame, 0)
        request, size = _reader(cls)(frame, offset)
    except Exception as exc:
        raise DecodeError(f"api {head.api_key} v{head.api_version} does not decode: {exc}") from None
    if offset + size != len(frame):
        raise DecodeError(f"api {head.api_key} v{head.api_version}: {len(frame) - offset - size} bytes left over")
    return header.client_id, request


def encode_response(head: RequestFrame, response: Any) -> bytes:
    """Size prefix, response header (v0 for ApiVersions and non-flexible versions, else v1) and body."""
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    if response.__flexible__ and head.api_key != API_VERSIONS_KEY:
        _writer(ResponseHeaderV1)(buffer, ResponseHeaderV1(correlation_id=i32(head.correlation_id)))
    else:
        _writer(ResponseHeaderV0)(buffer, ResponseHeaderV0(correlation_id=i32(head.correlation_id)))
    _writer(type(response))(buffer, response)
    data = buffer.getbuffer()
    struct.pack_into(">i", data, 0, len(data) - 4)
    return bytes(data)


def response_class(head: RequestFrame) -> type[Any]:
    return _response_class(head.api_key, head.api_version)


# -- building responses ------------------------------------------------------------------------------
_KAFKA_CODES: Mapping[str, KafkaErrorCode] = {code.name.upper(): code for code in KafkaErrorCode}


def kafka_error(code: ErrorCode | None) -> KafkaErrorCode:
    """Kafka's numeric code of the same name (HTTP-only codes become UNKNOWN_SERVER_ERROR)."""
    if code is None:
        return KafkaErrorCode.none
    return _KAFKA_CODES.get(code.value, KafkaErrorCode.unknown_server_error)


_FIELDS: dict[type[Any], tuple[tuple[str, Any, bool], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, required) of each field of a kio entity."""
    found = _FIELDS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    found = _FIELDS[cls] = tuple(
        (
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )
    return found


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_convert(item, element) for element in value)
    if origin in (typing.Union, types.UnionType):
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        return _convert(kind, value)
    if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
        return make(typing.cast(type[Any], kind), value)
    if kind is KafkaErrorCode:
        return value if isinstance(value, KafkaErrorCode) else KafkaErrorCode(value)
    if kind in (i32Timedelta, i64Timedelta):
        return value if isinstance(value, datetime.timedelta) else datetime.timedelta(milliseconds=value)
    if kind is TZAware and isinstance(value, int):
        return None if value < 0 else datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
    if kind is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    return value


def _empty(cls: type[Any], name: str, kind: Any) -> Any:
    """A required field the values leave out: an empty array, or null where the field is nullable."""
    if typing.get_origin(kind) is tuple:
        return ()
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind):
        return None
    raise KeyError(f"{cls.__qualname__} v{cls.__version__} needs {name!r}")


def make(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """An instance of the kio entity ``cls`` from plain values: nested dicts and lists become entities and
    tuples, ints become error codes and durations; fields ``cls`` does not have are ignored."""
    kwargs: dict[str, Any] = {}
    for name, kind, required in _fields(cls):
        if name in values:
            kwargs[name] = _convert(kind, values[name])
        elif required:
            kwargs[name] = _empty(cls, name, kind)
    return cls(**kwargs)
