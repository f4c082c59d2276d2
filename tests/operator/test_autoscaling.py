"""The built-in autoscaler's arithmetic: counters to a rate, a rate to a size, HPA-style stabilization."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest

from gafka_operator.autoscaling import (
    CPU_TOLERANCE,
    Recommendation,
    Sample,
    competing_autoscalers,
    cpu_request,
    cpu_utilization,
    explain,
    parse_sample,
    parse_throughput,
    recommend,
    replicas_for_cpu,
    stabilize,
    throughput,
)
from gafka_operator.spec import AutoscalingSpec

if TYPE_CHECKING:
    from conftest import BrokerProcess

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
    with pytest.raises(ValueError, match="no measurement"):
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


# ------------------------------------------------------------------------------------------------------- CPU

CPU = AutoscalingSpec(enabled=True, min_replicas=1, max_replicas=20, target_cpu_utilization=50)


def test_parse_sample_reads_the_process_collectors_cpu_counter() -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # what the broker's default registry holds on Linux
    Counter("gafka_topic_bytes_in", "in", ["topic"], registry=registry).labels("a").inc(700)
    sample = parse_sample(generate_latest(registry).decode(), at=5.0, incarnation="i")
    assert sample.at == 5.0 and sample.incarnation == "i" and sample.total_bytes == 700
    assert sample.cpu_seconds is not None and sample.cpu_seconds > 0
    assert parse_sample(_exposition(), at=0.0).cpu_seconds is None  # no process collector, no CPU


def test_the_brokers_metrics_carry_the_cpu_counter(shared_broker: BrokerProcess) -> None:
    """The contract the CPU target relies on: a real broker's /metrics, as the reconciler scrapes it."""
    with shared_broker.client() as http:
        first = parse_sample(http.get("/metrics").text, time.monotonic(), "b")
        for _ in range(20):
            http.get("/v1/topics")
        second = parse_sample(http.get("/metrics").text, time.monotonic(), "b")
    assert first.cpu_seconds is not None and first.cpu_seconds > 0
    assert second.cpu_seconds is not None and second.cpu_seconds >= first.cpu_seconds
    assert set(cpu_utilization({0: first}, {0: second}, 1.0)) == {0}


@pytest.mark.parametrize(
    ("resources", "cores"),
    [
        ({"requests": {"cpu": "500m"}}, 0.5),
        ({"requests": {"cpu": "1"}}, 1.0),
        ({"requests": {"cpu": 2}}, 2.0),
        ({"requests": {"cpu": "1.5"}}, 1.5),
        ({"requests": {"cpu": "2000m"}}, 2.0),
        ({"requests": {"cpu": "0.25", "memory": "1Gi"}, "limits": {"cpu": "4"}}, 0.25),
        ({"limits": {"cpu": "750m"}}, 0.75),  # Kubernetes copies a lone limit into the request
        ({"requests": {"cpu": "1e3m"}}, 1.0),
    ],
)
def test_cpu_request(resources: dict[str, Any], cores: float) -> None:
    assert cpu_request(resources) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({}, "spec.resources has none"),
        ({"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}, "spec.resources has none"),
        ({"requests": {"cpu": "0"}}, "set a positive spec.resources.requests.cpu"),
        ({"requests": {"cpu": "lots"}}, "spec.resources.requests.cpu is not a quantity"),
    ],
)
def test_cpu_request_missing_or_bad(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cpu_request(resources)


@given(millicores=st.integers(min_value=1, max_value=10**6))
def test_cpu_request_millicores_and_cores_agree(millicores: int) -> None:
    as_cores = f"{millicores / 1000:.3f}".rstrip("0").rstrip(".")
    assert cpu_request({"requests": {"cpu": f"{millicores}m"}}) == pytest.approx(millicores / 1000)
    assert cpu_request({"requests": {"cpu": as_cores}}) == cpu_request({"requests": {"cpu": f"{millicores}m"}})


def test_cpu_utilization_over_two_samples_and_restarts() -> None:
    before = {0: Sample(10.0, 0, "a", 100.0), 1: Sample(10.0, 0, "b", 50.0), 2: Sample(10.0, 0, "c", None)}
    after = {
        0: Sample(20.0, 0, "a", 105.0),  # 0.5 cores
        1: Sample(20.0, 0, "b", 60.0),  # 1 core
        2: Sample(20.0, 0, "c", 30.0),  # no counter before: left out
        3: Sample(20.0, 0, "d", 1.0),  # sampled once: left out
    }
    assert cpu_utilization(before, after, 0.5) == pytest.approx({0: 1.0, 1: 2.0})
    assert cpu_utilization({}, after, 0.5) == {}
    # a restarted broker counts from zero: a new incarnation, or a counter that went down
    assert cpu_utilization(before, {0: Sample(20.0, 0, "a2", 3.0)}, 1.0) == pytest.approx({0: 0.3})
    assert cpu_utilization(before, {0: Sample(20.0, 0, "a", 4.0)}, 1.0) == pytest.approx({0: 0.4})
    assert cpu_utilization(before, {0: Sample(20.0, 0, "a", 120.0)}, 2.0) == pytest.approx({0: 1.0})
    with pytest.raises(ValueError):
        cpu_utilization(before, after, 0.0)


@given(
    cores=st.lists(st.floats(min_value=0, max_value=64, allow_nan=False), min_size=1, max_size=12),
    request=st.floats(min_value=0.01, max_value=16),
    seconds=st.floats(min_value=0.5, max_value=600),
)
def test_cpu_utilization_is_the_rate_over_the_request(cores: list[float], request: float, seconds: float) -> None:
    before = {i: Sample(1.0, 0, f"b{i}", 1000.0) for i in range(len(cores))}
    after = {i: Sample(1.0 + seconds, 0, f"b{i}", 1000.0 + c * seconds) for i, c in enumerate(cores)}
    got = cpu_utilization(before, after, request)
    assert got == pytest.approx({i: c / request for i, c in enumerate(cores)}, rel=1e-6, abs=1e-6)


def test_replicas_for_cpu_as_hpa() -> None:
    # 3 brokers at 90% of their request, target 60%: ceil(3 * 0.9 / 0.6) = ceil(4.5) = 5
    assert replicas_for_cpu({0: 0.9, 1: 0.9, 2: 0.9}, 3, 60) == 5
    # the sum counts, not the count: uneven brokers
    assert replicas_for_cpu({0: 2.0, 1: 0.1, 2: 0.3}, 3, 50) == 5
    # low: 5 brokers at 10%, target 50%: ceil(5 * 0.1 / 0.5) = 1
    assert replicas_for_cpu({i: 0.1 for i in range(5)}, 5, 50) == 1
    assert replicas_for_cpu({}, 4, 50) == 4  # nothing measured: no opinion


def test_replicas_for_cpu_tolerance() -> None:
    at = {i: 0.5 * 1.1 for i in range(3)}  # 10% above the target: within the tolerance
    assert replicas_for_cpu(at, 3, 50) == 3
    assert replicas_for_cpu({i: 0.5 * 0.9 for i in range(10)}, 10, 50) == 10
    assert replicas_for_cpu({i: 0.5 * 1.12 for i in range(10)}, 10, 50) == 12  # ceil(11.2)
    assert replicas_for_cpu({i: 0.5 * 0.88 for i in range(10)}, 10, 50) == 9  # ceil(8.8)


def test_replicas_for_cpu_missing_brokers_never_push_further() -> None:
    # 2 of 3 answered, both busy: the third counts as idle, still a scale-up, of ceil(1.8 / 0.5) = 4
    assert replicas_for_cpu({0: 0.9, 1: 0.9}, 3, 50) == 4
    # 2 of 3 answered, slightly busy: with the third idle the average falls within the tolerance: stay
    assert replicas_for_cpu({0: 0.8, 1: 0.8}, 3, 50) == 3
    # 2 of 4 answered, idle: the other two count at their full request: 2.2 / 0.5 -> 5 > 4: no scale-down
    assert replicas_for_cpu({0: 0.1, 1: 0.1}, 4, 50) == 4
    # 2 of 10 answered, idle: 8 at their request still ask for fewer than 10: ceil(8.2 / 0.9) = 10 -> stays 10
    assert replicas_for_cpu({0: 0.1, 1: 0.1}, 10, 90) == 10
    # 1 of 3 answered at exactly the target: stay
    assert replicas_for_cpu({0: 0.5}, 3, 50) == 3


@given(
    utilization=st.lists(st.floats(min_value=0, max_value=8, allow_nan=False), min_size=1, max_size=20),
    target=st.integers(min_value=1, max_value=100),
)
def test_replicas_for_cpu_properties(utilization: list[float], target: int) -> None:
    replicas = len(utilization)
    wanted = replicas_for_cpu(dict(enumerate(utilization)), replicas, target)
    ratio = sum(utilization) / replicas / (target / 100)
    if abs(ratio - 1) <= CPU_TOLERANCE + 1e-9:
        assert wanted == replicas
    else:
        assert wanted == math.ceil(sum(utilization) / (target / 100) - 1e-9)
        # the new size brings the average to the target or just under it, in the direction asked for
        assert wanted == 0 or sum(utilization) / wanted <= target / 100 + 1e-9
        assert wanted >= replicas if ratio > 1 else wanted <= replicas


@given(
    utilization=st.lists(st.floats(min_value=0, max_value=8, allow_nan=False), min_size=1, max_size=10),
    missing=st.integers(min_value=1, max_value=10),
    target=st.integers(min_value=1, max_value=100),
)
def test_missing_brokers_never_reverse_the_direction(utilization: list[float], missing: int, target: int) -> None:
    replicas = len(utilization) + missing
    assume(sum(utilization) / len(utilization) != target / 100)
    wanted = replicas_for_cpu(dict(enumerate(utilization)), replicas, target)
    measured_ratio = sum(utilization) / len(utilization) / (target / 100)
    if measured_ratio > 1:
        assert wanted >= replicas
    else:
        assert wanted <= replicas


def test_recommend_from_cpu_within_bounds() -> None:
    busy = {i: 1.0 for i in range(3)}  # at the request, target 50%: 6
    assert recommend(CPU, None, cpu=busy, replicas=3) == 6
    assert recommend(CPU, 1e12, cpu=busy, replicas=3) == 6  # no throughput target: bytes ignored
    assert recommend(CPU, None, cpu={i: 0.01 for i in range(3)}, replicas=3) == 1
    assert recommend(CPU, None, cpu={i: 0.01 for i in range(3)}, replicas=3, floor=3) == 3
    assert recommend(CPU, None, cpu={i: 5.0 for i in range(10)}, replicas=10) == 20  # maxReplicas
    assert recommend(CPU, None, cpu={i: 0.5 for i in range(4)}, replicas=4) == 4  # at the target


def test_with_both_targets_the_larger_recommendation_wins() -> None:
    both = AutoscalingSpec(
        enabled=True,
        min_replicas=1,
        max_replicas=20,
        target_throughput_bytes_per_broker=1000,
        target_cpu_utilization=50,
    )
    idle_cpu = {i: 0.05 for i in range(4)}
    busy_cpu = {i: 1.0 for i in range(4)}
    assert recommend(both, 7000, cpu=idle_cpu, replicas=4) == 7  # throughput: 7, CPU: 1
    assert recommend(both, 100, cpu=busy_cpu, replicas=4) == 8  # throughput: 1, CPU: 8
    assert recommend(both, 100, cpu={i: 0.5 for i in range(4)}, replicas=4) == 4  # CPU at the target holds 4
    assert recommend(both, 100, cpu=idle_cpu, replicas=4) == 1
    text = explain(8, both, [0, 1, 2, 3], bytes_per_second=100, cpu=busy_cpu)
    assert "100 B/s over 4 brokers" in text and "CPU 100% of the request" in text and "target 50%" in text
    assert text.endswith(": 8 brokers")


@given(
    bytes_per_second=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    utilization=st.lists(st.floats(min_value=0, max_value=4, allow_nan=False), min_size=1, max_size=10),
)
def test_both_targets_are_the_max_of_each(bytes_per_second: float, utilization: list[float]) -> None:
    both = AutoscalingSpec(
        enabled=True,
        min_replicas=2,
        max_replicas=15,
        target_throughput_bytes_per_broker=1000,
        target_cpu_utilization=60,
    )
    only_bytes = AutoscalingSpec(enabled=True, min_replicas=2, max_replicas=15, target_throughput_bytes_per_broker=1000)
    only_cpu = AutoscalingSpec(enabled=True, min_replicas=2, max_replicas=15, target_cpu_utilization=60)
    cpu, replicas = dict(enumerate(utilization)), len(utilization)
    assert recommend(both, bytes_per_second, cpu=cpu, replicas=replicas) == max(
        recommend(only_bytes, bytes_per_second), recommend(only_cpu, None, cpu=cpu, replicas=replicas)
    )


def _hpa(name: str, api_version: str, kind: str, target: str) -> dict[str, Any]:
    ref = {"apiVersion": api_version, "kind": kind, "name": target}
    return {"metadata": {"name": name}, "spec": {"scaleTargetRef": ref}}


def test_competing_autoscalers_are_the_hpas_targeting_this_cluster() -> None:
    hpas = [
        _hpa("b-mine", "gafka.dev/v1alpha1", "GafkaCluster", "demo"),
        _hpa("a-mine-too", "gafka.dev/v1", "GafkaCluster", "demo"),  # any version of the group
        _hpa("other-cluster", "gafka.dev/v1alpha1", "GafkaCluster", "other"),
        _hpa("a-deployment", "apps/v1", "Deployment", "demo"),
        _hpa("other-group", "example.com/v1", "GafkaCluster", "demo"),
        {"metadata": {"name": "no-spec"}},
    ]
    assert competing_autoscalers(hpas, "gafka.dev", "demo") == ["a-mine-too", "b-mine"]
    assert competing_autoscalers([], "gafka.dev", "demo") == []
