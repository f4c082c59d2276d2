"""The compiled record walk (``gafka.protocol._crecords``) against the pure-Python reference it replaces.

Both must agree on every input: the same records for intact batches, the same error (and message) for
damaged ones, whatever the bytes. Inputs are real batches from the reference encoder, the same with bytes
flipped, cut or appended, and arbitrary bytes; offsets and timestamps reach the ends of int64.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gafka.protocol import record_batch
from gafka.protocol.record_batch import BATCH_OVERHEAD, InvalidRecordError, NewRecord, encode_batch
from gafka.protocol.varint import encode_varint

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
records = st.lists(
    st.builds(
        NewRecord,
        st.none() | st.binary(max_size=20),
        st.none() | st.binary(max_size=200),
        st.lists(st.tuples(st.text(max_size=6), st.none() | st.binary(max_size=6)), max_size=3),
        st.integers(min_value=0, max_value=2**41),
    ),
    min_size=1,
    max_size=20,
)


def outcome(function: Any, *args: Any) -> Any:
    try:
        return ("ok", function(*args))
    except InvalidRecordError as exc:
        return ("invalid", str(exc))


def section_of(items: list[NewRecord]) -> tuple[bytes, int]:
    return encode_batch(items)[BATCH_OVERHEAD:], len(items)


@st.composite
def sections(draw: st.DrawFn) -> tuple[bytes, int]:
    """A records section: intact, damaged, or noise; and a record count that may not match it."""
    section, count = section_of(draw(records))
    kind = draw(st.sampled_from(["intact", "flipped", "cut", "extended", "noise", "varints"]))
    data = bytearray(section)
    if kind == "flipped":
        for _ in range(draw(st.integers(1, 4))):
            index = draw(st.integers(0, len(data) - 1))
            data[index] ^= draw(st.integers(1, 255))
    elif kind == "cut":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extended":
        data += draw(st.binary(min_size=1, max_size=12))
    elif kind == "noise":
        data = bytearray(draw(st.binary(max_size=200)))
    elif kind == "varints":  # hand-built fields: huge, negative and over-long varints
        values = draw(st.lists(st.integers(-(2**70), 2**70), max_size=12))
        data = bytearray(b"".join(encode_varint(v) for v in values)) + draw(st.binary(max_size=4))
        if draw(st.booleans()):
            data += b"\xff" * draw(st.integers(9, 11)) + b"\x01"
    count = draw(st.sampled_from([count, count - 1, count + 1, 0, -1, draw(st.integers(-5, 40))]))
    return bytes(data), count


def test_the_compiled_walk_is_built() -> None:
    """``pip install -e .`` builds it (setup.py); without it the broker runs the slower Python loops."""
    assert record_batch.SPEEDUPS, "gafka.protocol._crecords was not built: is a C compiler installed?"


@settings(max_examples=400, deadline=None)
@given(sections(), INT64, INT64, INT64, st.booleans())
def test_decode_matches_the_python_reference(
    data: tuple[bytes, int], base_offset: int, base_timestamp: int, max_timestamp: int, log_append_time: bool
) -> None:
    section, count = data
    args = (count, base_offset, base_timestamp, max_timestamp, log_append_time)
    compiled = outcome(record_batch._decode_records, section, *args)
    assert compiled == outcome(record_batch._py_decode_records, section, *args)
    if compiled[0] == "ok":
        assert all(type(record) is record_batch.Record for record in compiled[1])


@settings(max_examples=400, deadline=None)
@given(sections())
def test_check_matches_the_python_reference(data: tuple[bytes, int]) -> None:
    section, count = data
    assert outcome(record_batch._check_section, section, count) == outcome(
        record_batch._py_check_records, section, count
    )


@settings(max_examples=100, deadline=None)
@given(records)
def test_intact_batches_decode_to_what_was_encoded(items: list[NewRecord]) -> None:
    section, count = section_of(items)
    record_batch._check_section(section, count)
    decoded = record_batch._decode_records(section, count, 1000, items[0].timestamp or 0, -1, False)
    assert [(r.offset, r.key, r.value, list(r.headers)) for r in decoded] == [
        (1000 + i, item.key, item.value, [(k, v) for k, v in item.headers]) for i, item in enumerate(items)
    ]


@pytest.mark.parametrize("view", [bytes, bytearray, memoryview])
def test_any_buffer_type(view: Any) -> None:
    section, count = section_of([NewRecord(b"k", b"v", [("h", b"x")], 5)])
    (record,) = record_batch._decode_records(view(section), count, 7, 5, -1, False)
    assert (record.offset, record.timestamp, record.key, record.value, record.headers) == (
        7,
        5,
        b"k",
        b"v",
        (("h", b"x"),),
    )
