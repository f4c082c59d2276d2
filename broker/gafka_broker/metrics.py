"""Prometheus metrics of the HTTP layer, in the default registry next to the log's own.

Hot paths touch pre-bound children (:class:`TopicMetrics`, one per topic; one histogram child per route)
so a request pays a couple of increments, not label lookups. Per-partition offsets are read at scrape
time by a collector instead of being updated on every append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gafka_broker.broker_stats import BrokerSnapshot
    from gafka_broker.partition import BrokerPartition

__all__ = [
    "BROKER",
    "GROUPS",
    "HTTP_ERRORS",
    "LISTENER_CONNECTIONS",
    "LONG_POLLS",
    "PARTITIONS",
    "REQUEST_LATENCY",
    "GroupStats",
    "TopicMetrics",
    "counter_total",
    "forget_topic",
    "topic_metrics",
]

REQUEST_LATENCY = Histogram(
    "gafka_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (long polls include their wait).",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
HTTP_ERRORS = Counter(
    "gafka_http_errors", "Requests answered with an error, by route and error code.", ["route", "error_code"]
)
BYTES_IN = Counter("gafka_topic_bytes_in", "Record-batch bytes appended, by topic.", ["topic"])
BYTES_OUT = Counter("gafka_topic_bytes_out", "Record-batch bytes fetched, by topic.", ["topic"])
MESSAGES_IN = Counter("gafka_topic_messages_in", "Records appended, by topic.", ["topic"])
MESSAGES_OUT = Counter("gafka_topic_messages_out", "Records fetched, by topic.", ["topic"])
KAFKA_REQUESTS = Counter("gafka_kafka_requests", "Kafka protocol requests served, by API.", ["api"])
LONG_POLLS = Gauge("gafka_fetch_long_polls", "Fetches parked waiting for data right now.")
PRODUCE_FAILURES = Counter(
    "gafka_produce_record_failures", "Records rejected at append time (after validation), by topic.", ["topic"]
)


LISTENER_CONNECTIONS: dict[str, Callable[[], int]] = {}
"""Open connections per listener, read at scrape time (the server registers its listeners here)."""


def counter_total(counter: Counter) -> int:
    """The sum of every child of a labelled counter (e.g. bytes in over all topics)."""
    return int(
        sum(sample.value for metric in counter.collect() for sample in metric.samples if sample.name.endswith("_total"))
    )


class TopicMetrics:
    """The per-topic counter children, bound once."""

    __slots__ = ("bytes_in", "bytes_out", "messages_in", "messages_out", "produce_failures")

    def __init__(self, topic: str) -> None:
        self.bytes_in = BYTES_IN.labels(topic)
        self.bytes_out = BYTES_OUT.labels(topic)
        self.messages_in = MESSAGES_IN.labels(topic)
        self.messages_out = MESSAGES_OUT.labels(topic)
        self.produce_failures = PRODUCE_FAILURES.labels(topic)


_TOPICS: dict[str, TopicMetrics] = {}


def topic_metrics(topic: str) -> TopicMetrics:
    metrics = _TOPICS.get(topic)
    if metrics is None:
        metrics = _TOPICS[topic] = TopicMetrics(topic)
    return metrics


def forget_topic(topic: str) -> None:
    """Drop a deleted topic's series so /metrics does not report it forever."""
    if _TOPICS.pop(topic, None) is None:
        return
    for counter in (BYTES_IN, BYTES_OUT, MESSAGES_IN, MESSAGES_OUT, PRODUCE_FAILURES):
        with contextlib.suppress(KeyError):
            counter.remove(topic)


class PartitionCollector(Collector):
    """Offsets and sizes of every partition, read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[BrokerPartition]] = tuple

    def collect(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        end = GaugeMetricFamily("gafka_partition_log_end_offset", "Next offset to be assigned.", labels=labels)
        start = GaugeMetricFamily("gafka_partition_log_start_offset", "First offset still stored.", labels=labels)
        high = GaugeMetricFamily("gafka_partition_high_watermark", "Last committed offset + 1.", labels=labels)
        size = GaugeMetricFamily("gafka_partition_size_bytes", "Bytes of the partition's segments.", labels=labels)
        for partition in self.source():
            values = [partition.topic, str(partition.partition)]
            log = partition.log
            end.add_metric(values, log.log_end_offset)
            start.add_metric(values, log.log_start_offset)
            high.add_metric(values, partition.high_watermark)
            size.add_metric(values, log.size_bytes)
        yield from (end, start, high, size)


PARTITIONS = PartitionCollector()
REGISTRY.register(PARTITIONS)


class GroupStats(NamedTuple):
    """What /metrics shows of one consumer group."""

    group: str
    members: int
    epoch: int
    rebalances: int
    commits: int
    lag: Sequence[tuple[str, int, int]]
    """(topic, partition, high watermark - committed offset) for every committed partition this broker leads."""
    committed: Sequence[tuple[str, int, int]] = ()
    """(topic, partition, committed offset) for every committed partition, wherever it is led."""


class GroupCollector(Collector):
    """Members, epochs, rebalances, commits and lag of every group, computed when Prometheus scrapes."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[GroupStats]] = tuple

    def collect(self) -> Iterator[Metric]:
        group = ["group"]
        members = GaugeMetricFamily("gafka_group_members", "Members of the group now.", labels=group)
        epoch = GaugeMetricFamily(
            "gafka_group_epoch", "The group epoch (bumped by every membership change).", labels=group
        )
        rebalances = CounterMetricFamily(
            "gafka_group_rebalances", "Target assignments computed since the broker started.", labels=group
        )
        commits = CounterMetricFamily(
            "gafka_group_offset_commits", "Offset commits accepted since the broker started.", labels=group
        )
        lag = GaugeMetricFamily(
            "gafka_group_lag",
            "High watermark minus the committed offset, per committed partition.",
            labels=["group", "topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "gafka_group_committed_offset",
            "The group's committed offset (the next to read), per partition; with the leaders' high watermarks it "
            "gives the lag of partitions the coordinator does not lead.",
            labels=["group", "topic", "partition"],
        )
        for stats in self.source():
            for topic, partition, value in stats.committed:
                committed.add_metric([stats.group, topic, str(partition)], value)
            members.add_metric([stats.group], stats.members)
            epoch.add_metric([stats.group], stats.epoch)
            rebalances.add_metric([stats.group], stats.rebalances)
            commits.add_metric([stats.group], stats.commits)
            for topic, partition, value in stats.lag:
                lag.add_metric([stats.group, topic, str(partition)], value)
        yield from (members, epoch, rebalances, commits, lag, committed)


GROUPS = GroupCollector()
REGISTRY.register(GROUPS)


class BrokerCollector(Collector):
    """Disk, connections and the cluster's health as this broker sees it, read when Prometheus scrapes.

    Every broker reports the ``gafka_cluster_*`` gauges from its own copy of the metadata, so queries take
    ``max`` over brokers (any live broker answers; a dead one simply drops out)."""

    def __init__(self) -> None:
        self.source: Callable[[], BrokerSnapshot | None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        stats = self.source()
        if stats is None:
            return
        info = GaugeMetricFamily(
            "gafka_broker_info", "1, labelled with the broker's id and rack.", labels=["broker_id", "rack"]
        )
        info.add_metric([str(stats.broker_id), stats.rack or ""], 1)
        free = GaugeMetricFamily("gafka_log_dir_free_bytes", "Free bytes on the file system of the data directory.")
        free.add_metric([], stats.disk_free_bytes)
        capacity = GaugeMetricFamily("gafka_log_dir_capacity_bytes", "Size of the file system of the data directory.")
        capacity.add_metric([], stats.disk_capacity_bytes)
        connections = GaugeMetricFamily(
            "gafka_listener_connections", "Open client connections, per listener.", labels=["listener"]
        )
        for listener, count in stats.connections.items():
            connections.add_metric([listener], count)
        yield from (info, free, capacity, connections)
        if stats.health is None:
            return
        health = stats.health
        brokers = GaugeMetricFamily(
            "gafka_cluster_brokers",
            "Brokers the cluster metadata knows, by state (unfenced or fenced).",
            labels=["state"],
        )
        brokers.add_metric(["unfenced"], stats.live_brokers)
        brokers.add_metric(["fenced"], stats.fenced_brokers)
        partitions = GaugeMetricFamily(
            "gafka_cluster_partitions",
            "Partitions of every topic, by state (all, under_replicated, under_min_isr, offline).",
            labels=["state"],
        )
        for state, value in health.to_json().items():
            partitions.add_metric(["all" if state == "total" else state], value)
        controller = GaugeMetricFamily(
            "gafka_cluster_controller_id", "Id of the controlling broker, -1 for a controller process of its own."
        )
        controller.add_metric([], stats.controller_id)
        leaders = GaugeMetricFamily("gafka_broker_leader_partitions", "Partitions this broker leads.")
        load = health.brokers.get(stats.broker_id)
        leaders.add_metric([], load.leaders if load is not None else 0)
        yield from (brokers, partitions, controller, leaders)


BROKER = BrokerCollector()
REGISTRY.register(BROKER)
