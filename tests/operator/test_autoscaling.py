"""The built-in autoscaler's arithmetic: counters to a rate, a rate to a size, HPA-style stabilization."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from gafka_operator.autoscaling import Recommendation, Sample, parse_throughput, recommend, stabilize, throughput
from gafka_operator.spec import AutoscalingSpec

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPEC = AutoscalingSpec(enabled=True, min_replicas=3, max_replicas=9, target_throughput_bytes_per_broker=1000)


def _exposition() -> str:
    """What a broker's /metrics says, written by prometheus_client itself (as the broker does)."""
    registry = CollectorRegistry()
    bytes_in = Counter("gafka_topic_bytes_in", "in", ["topic"], registry=registry)
    bytes_out = Counter("gafka_topic_bytes_out", "out", ["topic"], registry=registry)
    messages = Counter("gafka_topic_messages_in", "records", ["topic"], registry=registry)
    bytes_in.labels("a").inc(1500)
    bytes_in.labels("b").inc(500)
    bytes_out.labels("a").inc(3000)
    messages.labels("a").inc(99)
    return generate_latest(registry).decode()


def test_parse_throughput_sums_bytes_in_and_out() -> None:
    assert parse_throughput(_exposition()) == 5000.0
    assert parse_throughput("") == 0.0


def test_throughput_over_two_samples() -> None:
    before = {0: Sample(10.0, 1000, "a"), 1: Sample(10.0, 0, "b")}
    after = {0: Sample(20.0, 6000, "a"), 1: Sample(20.0, 10000, "b"), 2: Sample(20.0, 50, "c")}
    assert throughput(before, after) == pytest.approx(500 + 1000)  # broker 2 has one sample only
    assert throughput({}, after) is None
    # a restarted broker counts from zero again
    restarted = {0: Sample(20.0, 300, "a2")}
    assert throughput(before, restarted) == pytest.approx(30)
    assert throughput(before, {0: Sample(20.0, 400, "a")}) == pytest.approx(40)  # counter went down: a restart


def test_recommend_within_bounds_and_above_the_replication_factor() -> None:
    assert recommend(SPEC, 4500) == 5
    assert recommend(SPEC, 0) == 3
    assert recommend(SPEC, 1e9) == 9
    assert recommend(SPEC, 100, floor=4) == 4
    with pytest.raises(ValueError, match="targetThroughputBytesPerBroker"):
        recommend(AutoscalingSpec(enabled=True, max_replicas=5, target_cpu_utilization=50), 100)


def test_stabilize_scales_up_at_once_and_down_only_after_the_window() -> None:
    size, history = stabilize([], T0, 300, current=3, recommended=5)
    assert size == 5
    later = T0 + dt.timedelta(seconds=100)
    size, history = stabilize(history, later, 300, current=5, recommended=3)
    assert size == 5  # 5 was wanted 100 s ago
    size, history = stabilize(history, T0 + dt.timedelta(seconds=301), 300, current=5, recommended=3)
    assert size == 3
    assert [r.replicas for r in history] == [3, 3]
    assert stabilize([Recommendation(T0, 9)], T0, 0, current=5, recommended=4)[0] == 4  # no window
