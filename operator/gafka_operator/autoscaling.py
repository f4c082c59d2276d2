"""The built-in autoscaler (``spec.autoscaling``): how many brokers the traffic needs, as pure functions.

The metric is throughput: produce plus fetch bytes per second over all brokers, from the counters every broker
exports on ``/metrics`` (``gafka_topic_bytes_in_total``, ``gafka_topic_bytes_out_total``). The reconciler scrapes
them, turns two samples into a rate (:func:`throughput`), asks :func:`recommend` for a size and
:func:`stabilize` whether to act, then writes ``spec.replicas`` through the ``/scale`` subresource, exactly as
``kubectl scale`` or an HPA would; the usual scaling steps (rebalance after a scale-up, drain before a
scale-down, refusal below a replication factor) follow from there.

HPA semantics: a scale-up happens at once; a scale-down only to the highest size recommended during the last
``stabilizationWindowSeconds`` (the recommendations live in the operator's memory, so after an operator
restart a scale-down waits a full window again: the safe direction). Only a steady cluster is measured
(every broker ready, nothing scaling or rolling), as an HPA ignores pods that are not ready.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from gafka_operator.spec import AutoscalingSpec

__all__ = [
    "THROUGHPUT_COUNTERS",
    "Recommendation",
    "Sample",
    "explain",
    "parse_throughput",
    "recommend",
    "stabilize",
    "throughput",
]

THROUGHPUT_COUNTERS = ("gafka_topic_bytes_in", "gafka_topic_bytes_out")


@dataclass(frozen=True, slots=True)
class Sample:
    """One broker's byte counters (in + out, all topics) at a moment (monotonic seconds)."""

    at: float
    total_bytes: float
    incarnation: str = ""
    """The broker process; a new one starts its counters from zero."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: dt.datetime
    replicas: int


def parse_throughput(metrics_text: str) -> float:
    """Sum of the produce and fetch byte counters in a Prometheus text exposition."""
    wanted = {f"{name}_total" for name in THROUGHPUT_COUNTERS}
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name in wanted
    )


def throughput(previous: Mapping[int, Sample], current: Mapping[int, Sample]) -> float | None:
    """Bytes per second over the brokers sampled twice; None until there are two samples of some broker. A broker
    that restarted (new incarnation, or its counter went down) counts what it did since its start."""
    rate = 0.0
    measured = False
    for broker_id, now in current.items():
        before = previous.get(broker_id)
        if before is None or now.at <= before.at:
            continue
        restarted = now.incarnation != before.incarnation or now.total_bytes < before.total_bytes
        delta = now.total_bytes if restarted else now.total_bytes - before.total_bytes
        rate += delta / (now.at - before.at)
        measured = True
    return rate if measured else None


def recommend(spec: AutoscalingSpec, bytes_per_second: float, *, floor: int = 1) -> int:
    """Brokers needed for ``bytes_per_second`` at ``targetThroughputBytesPerBroker`` each, within
    [max(minReplicas, floor), maxReplicas]; ``floor`` is the widest replication factor of the cluster's topics."""
    target = spec.target_throughput_bytes_per_broker
    if not target:
        raise ValueError("spec.autoscaling.targetThroughputBytesPerBroker is not set")
    wanted = math.ceil(bytes_per_second / target) if bytes_per_second > 0 else 0
    low = max(spec.min_replicas, floor)
    high = spec.max_replicas if spec.max_replicas is not None else max(low, wanted)
    return max(low, min(high, wanted))


def stabilize(
    history: Iterable[Recommendation], now: dt.datetime, window_s: float, current: int, recommended: int
) -> tuple[int, list[Recommendation]]:
    """The size to set and the history to keep: up at once, down only to the highest recommendation of the
    window (``recommended`` included)."""
    start = now - dt.timedelta(seconds=window_s)
    kept: list[Recommendation] = [r for r in history if r.at > start]
    kept.append(Recommendation(now, recommended))
    if recommended >= current:
        return recommended, kept
    return max(r.replicas for r in kept), kept


def explain(recommended: int, bytes_per_second: float, spec: AutoscalingSpec, brokers: Sequence[int]) -> str:
    target = spec.target_throughput_bytes_per_broker or 0
    return (
        f"{bytes_per_second:.0f} B/s over {len(brokers)} brokers, target {target} B/s per broker: {recommended} brokers"
    )
