"""The JSON record codec: produce bodies in, fetched records out, in the three formats."""

from __future__ import annotations

import base64

import orjson
import pytest

from gafka.protocol.record_batch import Record, decode_batches, iter_batches
from gafka_broker.json_codec import (
    ProduceRecord,
    RecordFormatError,
    encode_batches,
    parse_format,
    parse_produce_body,
    record_to_json,
)


def parse(body: object, max_records: int = 100) -> list[ProduceRecord]:
    return parse_produce_body(body, max_records=max_records)


def test_string_is_the_default_format() -> None:
    [record] = parse({"records": [{"key": "k", "value": "héllo"}]})
    assert record.key == b"k"
    assert record.value == "héllo".encode()
    assert record.headers == ()
    assert record.partition is None
    assert record.timestamp is None


def test_string_format_stores_other_json_as_json_text() -> None:
    [record] = parse({"records": [{"value": {"a": [1, 2]}}]})
    assert record.value == b'{"a":[1,2]}'


def test_json_format_encodes_strings_as_json() -> None:
    [record] = parse({"value_format": "json", "key_format": "json", "records": [{"key": 5, "value": "s"}]})
    assert record.key == b"5"
    assert record.value == b'"s"'


def test_base64_format_decodes() -> None:
    raw = bytes(range(256))
    body = {
        "key_format": "base64",
        "value_format": "base64",
        "records": [{"key": "AAE=", "value": base64.b64encode(raw).decode()}],
    }
    [record] = parse(body)
    assert record.key == b"\x00\x01"
    assert record.value == raw


def test_null_is_null_in_every_format() -> None:
    for fmt in ("string", "json", "base64"):
        [record] = parse({"key_format": fmt, "value_format": fmt, "records": [{"key": None, "value": None}]})
        assert record.key is None
        assert record.value is None


def test_headers_as_list_and_as_object() -> None:
    [listed, mapped] = parse(
        {
            "records": [
                {
                    "value": "a",
                    "headers": [
                        {"key": "h", "value": "v"},
                        {"key": "h", "value": None},
                        {"key": "b", "value": "AP8=", "format": "base64"},
                    ],
                },
                {"value": "b", "headers": {"x": "y"}},
            ]
        }
    )
    assert listed.headers == (("h", b"v"), ("h", None), ("b", b"\x00\xff"))
    assert mapped.headers == (("x", b"y"),)


def test_partition_and_timestamp_are_kept() -> None:
    [record] = parse({"records": [{"value": "v", "partition": 3, "timestamp": 1234}]})
    assert record.partition == 3
    assert record.timestamp == 1234


@pytest.mark.parametrize(
    ("body", "code", "index"),
    [
        ([], "INVALID_REQUEST", None),
        ({"records": {}}, "INVALID_REQUEST", None),
        ({"records": []}, "INVALID_REQUEST", None),
        ({"records": [{"value": "v"}], "value_format": "xml"}, "INVALID_REQUEST", None),
        ({"records": [{"value": "v"}, 5]}, "INVALID_RECORD", 1),
        ({"records": [{"value": "dg=="}, {"value": 1}], "value_format": "base64"}, "INVALID_RECORD", 1),
        ({"records": [{"value": "!!notbase64"}], "value_format": "base64"}, "INVALID_RECORD", 0),
        ({"records": [{"value": "v", "partition": "1"}]}, "INVALID_RECORD", 0),
        ({"records": [{"value": "v", "partition": -1}]}, "UNKNOWN_TOPIC_OR_PARTITION", 0),
        ({"records": [{"value": "v", "timestamp": "now"}]}, "INVALID_TIMESTAMP", 0),
        ({"records": [{"value": "v", "timestamp": -5}]}, "INVALID_TIMESTAMP", 0),
        ({"records": [{"value": "v", "timestamp": True}]}, "INVALID_TIMESTAMP", 0),
        ({"records": [{"value": "v", "headers": "h"}]}, "INVALID_RECORD", 0),
        ({"records": [{"value": "v", "headers": [{"value": "x"}]}]}, "INVALID_RECORD", 0),
        ({"records": [{"value": "v", "headers": {"h": 1}}]}, "INVALID_RECORD", 0),
        ({"records": [{"value": "v"}] * 3}, "RECORD_LIST_TOO_LARGE", None),
    ],
)
def test_malformed_bodies(body: object, code: str, index: int | None) -> None:
    with pytest.raises(RecordFormatError) as caught:
        parse(body, max_records=2)
    assert caught.value.code == code
    assert caught.value.record_index == index


def test_parse_format() -> None:
    assert parse_format(None, "f") == "string"
    assert parse_format("base64", "f") == "base64"
    with pytest.raises(RecordFormatError):
        parse_format("text", "f")


def _record(key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes | None], ...] = ()) -> Record:
    return Record(7, 1000, key, value, headers)


def test_record_to_json_string() -> None:
    out = record_to_json(_record(b"k", "é".encode(), (("h", b"v"), ("n", None))))
    assert out == {
        "offset": 7,
        "timestamp": 1000,
        "key": "k",
        "value": "é",
        "headers": [{"key": "h", "value": "v"}, {"key": "n", "value": None}],
    }


def test_record_to_json_falls_back_to_base64_per_field() -> None:
    out = record_to_json(_record(b"k", b"\xff\xfe", (("h", b"\x80"),)))
    assert out["key"] == "k" and "key_format" not in out
    assert out["value"] == base64.b64encode(b"\xff\xfe").decode()
    assert out["value_format"] == "base64"
    assert out["headers"] == [{"key": "h", "value": "gA==", "format": "base64"}]


def test_record_to_json_json_format() -> None:
    out = record_to_json(_record(b'{"a":1}', b"not json"), key_format="json", value_format="json")
    assert out["key"] == {"a": 1}
    assert out["value"] == base64.b64encode(b"not json").decode()
    assert out["value_format"] == "base64"


def test_record_to_json_base64_and_nulls() -> None:
    out = record_to_json(_record(None, b"\x00"), key_format="base64", value_format="base64")
    assert out["key"] is None
    assert out["value"] == "AA=="
    assert "value_format" not in out


def test_round_trip_through_batches() -> None:
    records = parse(
        {"records": [{"key": "k1", "value": {"n": 1}, "timestamp": 5, "headers": {"h": "v"}}, {"value": "two"}]}
    )
    data = encode_batches(records, [0, 1], 1 << 20, now_ms=99)
    decoded = list(decode_batches(data, validate=True))
    assert [r.offset for r in decoded] == [0, 1]
    assert [r.timestamp for r in decoded] == [5, 99]
    assert orjson.loads(decoded[0].value or b"") == {"n": 1}
    assert decoded[0].headers == (("h", b"v"),)
    assert record_to_json(decoded[1])["value"] == "two"


def test_encode_batches_splits_under_the_limit_and_keeps_order() -> None:
    records = [ProduceRecord(None, bytes([i]) * 300, (), None, None) for i in range(10)]
    data = encode_batches(records, list(range(10)), 1000, now_ms=1)
    sizes = [header.size for _, header in iter_batches(data)]
    assert len(sizes) > 1
    assert all(size <= 1000 for size in sizes)
    values = [record.value for record in decode_batches(data)]
    assert values == [bytes([i]) * 300 for i in range(10)]


def test_encode_batches_rejects_a_record_too_large_alone() -> None:
    records = [ProduceRecord(None, b"x", (), None, None), ProduceRecord(None, b"y" * 2000, (), None, None)]
    with pytest.raises(RecordFormatError) as caught:
        encode_batches(records, [4, 9], 1000, now_ms=1)
    assert caught.value.code == "MESSAGE_TOO_LARGE"
    assert caught.value.record_index == 9
