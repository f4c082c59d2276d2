"""The built-in autoscaler (``spec.autoscaling``): how many brokers the load needs, as pure functions.

Two metrics, both from what every broker exports on ``/metrics`` (no metrics.k8s.io needed):

- throughput (``targetThroughputBytesPerBroker``): produce plus fetch bytes per second over all brokers
  (``gafka_topic_bytes_in_total``, ``gafka_topic_bytes_out_total``), :func:`throughput`;
- CPU (``targetCPUUtilization``): each broker's ``process_cpu_seconds_total`` rate over its container's CPU
  request (``spec.resources``, :func:`cpu_request`), :func:`cpu_utilization`, sized with HPA's rule for a
  resource metric, tolerance and missing brokers included (:func:`replicas_for_cpu`).

The reconciler scrapes the counters, turns two samples into rates, asks :func:`recommend` for a size (the larger
of the two metrics' when both are set, as an HPA with several metrics) and :func:`stabilize` whether to act, then
writes ``spec.replicas`` through the ``/scale`` subresource, exactly as ``kubectl scale`` or an HPA would; the
usual scaling steps (rebalance after a scale-up, drain before a scale-down, refusal below a replication factor)
follow from there.

HPA semantics: a scale-up happens at once; a scale-down only to the highest size recommended during the last
``stabilizationWindowSeconds`` (the recommendations live in the operator's memory, so after an operator
restart a scale-down waits a full window again: the safe direction). Only a steady cluster is measured
(every broker ready, nothing scaling or rolling), as an HPA ignores pods that are not ready.

One writer of ``spec.replicas`` at a time: when a HorizontalPodAutoscaler (KEDA makes one too) targets the
cluster, the built-in autoscaler stands down (:func:`competing_autoscalers`) rather than undo its decisions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gafka_operator.drift import parse_quantity
from gafka_operator.spec import AutoscalingSpec

__all__ = [
    "CPU_COUNTER",
    "CPU_TOLERANCE",
    "THROUGHPUT_COUNTERS",
    "Recommendation",
    "Sample",
    "competing_autoscalers",
    "cpu_request",
    "cpu_utilization",
    "explain",
    "parse_sample",
    "parse_throughput",
    "recommend",
    "replicas_for_cpu",
    "stabilize",
    "throughput",
]

THROUGHPUT_COUNTERS = ("gafka_topic_bytes_in", "gafka_topic_bytes_out")
CPU_COUNTER = "process_cpu_seconds_total"
"""prometheus_client's default process collector (Linux): the broker process's user plus system CPU time."""
CPU_TOLERANCE = 0.1
"""HPA's default tolerance: no change while the average utilisation is within 10% of the target."""
_EPSILON = 1e-9
"""Float noise in a ratio (``0.55 / 0.5`` is a bit above 1.1): it must not tip the tolerance or a ceiling."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One broker's counters at a moment (monotonic seconds): bytes in + out (all topics) and CPU seconds."""

    at: float
    total_bytes: float
    incarnation: str = ""
    """The broker process; a new one starts its counters from zero."""
    cpu_seconds: float | None = None
    """``process_cpu_seconds_total``; None when the broker does not export it (no process collector)."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: dt.datetime
    replicas: int


def parse_sample(metrics_text: str, at: float, incarnation: str = "") -> Sample:
    """A broker's :class:`Sample` from its Prometheus text exposition (one pass over it for both metrics)."""
    wanted = {f"{name}_total" for name in THROUGHPUT_COUNTERS}
    total_bytes = 0.0
    cpu_seconds: float | None = None
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in wanted:
                total_bytes += sample.value
            elif sample.name == CPU_COUNTER:
                cpu_seconds = (cpu_seconds or 0.0) + sample.value
    return Sample(at, total_bytes, incarnation, cpu_seconds)


def parse_throughput(metrics_text: str) -> float:
    """Sum of the produce and fetch byte counters in a Prometheus text exposition."""
    return parse_sample(metrics_text, 0.0).total_bytes


def _restarted(before: Sample, now: Sample) -> bool:
    """A new process between two samples: another incarnation, or a counter that went down."""
    cpu_down = before.cpu_seconds is not None and now.cpu_seconds is not None and now.cpu_seconds < before.cpu_seconds
    return now.incarnation != before.incarnation or now.total_bytes < before.total_bytes or cpu_down


def _rates(
    previous: Mapping[int, Sample], current: Mapping[int, Sample], counter: Callable[[Sample], float | None]
) -> dict[int, float]:
    """Per second increase of ``counter`` of each broker sampled twice (and exporting it both times); a broker
    that restarted counts what it did since its start (its counter began at zero)."""
    rates: dict[int, float] = {}
    for broker_id, now in current.items():
        before = previous.get(broker_id)
        if before is None or now.at <= before.at:
            continue
        new, old = counter(now), counter(before)
        if new is None or old is None:
            continue
        delta = new if _restarted(before, now) else new - old
        rates[broker_id] = delta / (now.at - before.at)
    return rates


def throughput(previous: Mapping[int, Sample], current: Mapping[int, Sample]) -> float | None:
    """Bytes per second over the brokers sampled twice; None until there are two samples of some broker. A broker
    that restarted (new incarnation, or its counter went down) counts what it did since its start."""
    rates = _rates(previous, current, lambda sample: sample.total_bytes)
    return sum(rates.values()) if rates else None


def cpu_utilization(
    previous: Mapping[int, Sample], current: Mapping[int, Sample], request_cores: float
) -> dict[int, float]:
    """Each broker's CPU use between two samples as a fraction of its CPU request (1.0 = all of it; HPA's
    utilisation / 100). Brokers sampled once or without the CPU counter are left out; restarts as in
    :func:`throughput`."""
    if not request_cores > 0:
        raise ValueError(f"a CPU request must be above zero, got {request_cores}")
    rates = _rates(previous, current, lambda sample: sample.cpu_seconds)
    return {broker_id: cores / request_cores for broker_id, cores in rates.items()}


def cpu_request(resources: Mapping[str, Any]) -> float:
    """Cores requested by each broker container (spec.resources): ``requests.cpu``, else ``limits.cpu``, which
    Kubernetes copies into a missing request. Raises ValueError saying what to fix when there is none, since
    a utilisation is relative to it."""
    for kind in ("requests", "limits"):
        section = resources.get(kind)
        raw = section.get("cpu") if isinstance(section, Mapping) else None
        if raw is None:
            continue
        try:
            cores = parse_quantity(raw)
        except ValueError:
            raise ValueError(f"spec.resources.{kind}.cpu is not a quantity: {raw!r}") from None
        if not cores.is_finite() or cores <= 0:
            raise ValueError(
                "targetCPUUtilization is a percentage of the brokers' CPU request, "
                f"and spec.resources.{kind}.cpu is {raw!r}: set a positive spec.resources.requests.cpu"
            )
        return float(cores)
    raise ValueError(
        "targetCPUUtilization is a percentage of the brokers' CPU request, and spec.resources has none: "
        "set spec.resources.requests.cpu"
    )


def replicas_for_cpu(utilization: Mapping[int, float], replicas: int, target_percent: float) -> int:
    """HPA's size for a resource metric: ceil(sum of the brokers' utilisation / target), i.e.
    ceil(brokers x average / target), and ``replicas`` while the average is within :data:`CPU_TOLERANCE` of the
    target. Brokers of the ``replicas`` not measured (scrape failed) count as HPA counts pods without metrics:
    idle when the others ask for more, at their full request when they ask for less, and no change when that
    reverses the direction, so a broker too busy to answer is never taken for an idle one."""
    target = target_percent / 100
    if not utilization or target <= 0:
        return replicas
    total = sum(utilization.values())
    ratio = total / (target * len(utilization))
    missing = max(0, replicas - len(utilization))
    if not missing:
        return replicas if abs(ratio - 1) <= CPU_TOLERANCE + _EPSILON else math.ceil(total / target - _EPSILON)
    if ratio == 1:
        return replicas
    if ratio < 1:
        total += missing * max(1.0, target)
    counted = len(utilization) + missing
    new_ratio = total / (target * counted)
    if abs(new_ratio - 1) <= CPU_TOLERANCE + _EPSILON or (ratio < 1 < new_ratio) or (new_ratio < 1 < ratio):
        return replicas
    wanted = math.ceil(new_ratio * counted - _EPSILON)
    if (new_ratio < 1 and wanted > replicas) or (new_ratio > 1 and wanted < replicas):
        return replicas
    return wanted


def recommend(
    spec: AutoscalingSpec,
    bytes_per_second: float | None,
    *,
    cpu: Mapping[int, float] | None = None,
    replicas: int = 0,
    floor: int = 1,
) -> int:
    """Brokers needed for the load, within [max(minReplicas, floor), maxReplicas]: ``bytes_per_second`` at
    ``targetThroughputBytesPerBroker`` each, ``cpu`` (utilisation per broker, :func:`cpu_utilization`) at
    ``targetCPUUtilization`` of the ``replicas`` brokers there are now; the larger when both are set (as an
    HPA with several metrics). ``floor`` is the widest replication factor of the cluster's topics."""
    wanted: list[int] = []
    target = spec.target_throughput_bytes_per_broker
    if target and bytes_per_second is not None:
        wanted.append(math.ceil(bytes_per_second / target) if bytes_per_second > 0 else 0)
    if spec.target_cpu_utilization and cpu is not None:
        wanted.append(replicas_for_cpu(cpu, replicas, spec.target_cpu_utilization))
    if not wanted:
        raise ValueError("no measurement for a target: set targetThroughputBytesPerBroker or targetCPUUtilization")
    size = max(wanted)
    low = max(spec.min_replicas, floor)
    high = spec.max_replicas if spec.max_replicas is not None else max(low, size)
    return max(low, min(high, size))


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


def explain(
    recommended: int,
    spec: AutoscalingSpec,
    brokers: Sequence[int],
    *,
    bytes_per_second: float | None = None,
    cpu: Mapping[int, float] | None = None,
) -> str:
    """The measurements behind a recommendation, for the Autoscaled Event."""
    parts: list[str] = []
    if spec.target_throughput_bytes_per_broker and bytes_per_second is not None:
        parts.append(
            f"{bytes_per_second:.0f} B/s over {len(brokers)} brokers, "
            f"target {spec.target_throughput_bytes_per_broker} B/s per broker"
        )
    if spec.target_cpu_utilization and cpu:
        average = 100 * sum(cpu.values()) / len(cpu)
        parts.append(
            f"CPU {average:.0f}% of the request on average over {len(cpu)} brokers, "
            f"target {spec.target_cpu_utilization}%"
        )
    return "; ".join(parts) + f": {recommended} brokers"


def competing_autoscalers(hpas: Iterable[Mapping[str, Any]], group: str, cluster: str) -> list[str]:
    """Names of the HorizontalPodAutoscalers whose ``scaleTargetRef`` is the GafkaCluster ``cluster`` (of API
    group ``group``): each writes ``spec.replicas`` through ``/scale``, as the built-in autoscaler does."""
    names = []
    for hpa in hpas:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        target_group = str(target.get("apiVersion") or "").split("/")[0]
        if target.get("kind") == "GafkaCluster" and target.get("name") == cluster and target_group == group:
            names.append(str((hpa.get("metadata") or {}).get("name")))
    return sorted(names)
