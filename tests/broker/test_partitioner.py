"""Kafka's murmur2 and default partitioner, checked against Kafka's and librdkafka's published vectors."""

from __future__ import annotations

import pytest

from gafka.partitioner import murmur2, partition_for_key, to_positive

# org.apache.kafka.common.utils.UtilsTest.testMurmur2
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}
# librdkafka's rdmurmur2.c unit test (unsigned there; signed here): tails of 0, 1, 2 and 3 bytes.
LIBRDKAFKA = {
    b"kafka": -798503068,
    b"giberish123456789": -1890243828,
    b"1234": -1614185708,
    b"234": -406844982,
    b"34": -2026295078,
    b"4": 1514888353,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 2017611548,
}


@pytest.mark.parametrize(("data", "expected"), sorted({**KAFKA_UTILS_TEST, **LIBRDKAFKA}.items()))
def test_murmur2_matches_published_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_murmur2_accepts_any_buffer() -> None:
    assert murmur2(bytearray(b"foobar")) == murmur2(memoryview(b"foobar")) == -790332482


@pytest.mark.parametrize("count", [1, 2, 3, 7, 12, 50, 1000])
def test_partition_for_key_is_to_positive_modulo(count: int) -> None:
    for key, hashed in KAFKA_UTILS_TEST.items():
        assert partition_for_key(key, count) == (hashed & 0x7FFFFFFF) % count


def test_to_positive_is_not_abs() -> None:
    assert to_positive(-(1 << 31)) == 0
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-790332482) == 1357151166


def test_partition_for_key_needs_partitions() -> None:
    with pytest.raises(ValueError, match="positive"):
        partition_for_key(b"k", 0)
