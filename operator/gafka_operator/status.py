"""Status the kubectl way, as pure functions: conditions that keep their ``lastTransitionTime`` while their
status holds, and the ``status`` of GafkaClusters and GafkaTopics built from what the reconciler observed.

Condition vocabulary (``docs/kubernetes.md``):

- GafkaCluster: ``Ready`` (every broker pod ready), ``Reconciling`` (the operator is changing something or waits
  for something it started), ``Degraded`` (something is wrong that the operator cannot fix by itself right
  now), ``Warning`` only while an operation is refused (e.g. ``ScaleDownRefused``, ``VolumeShrinkRefused``), and
  ``StorageResizing`` while a broker volume is smaller than its claim asks for (reported, never waited for).
- GafkaTopic: ``Ready`` (the topic exists as specified; reason ``ClusterNotFound`` when its cluster is missing),
  ``Reconciling``, ``Degraded`` (under-replicated or offline partitions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gafka_broker.controller.metadata import ClusterMetadata, TopicInfo
from gafka_operator.planning import PodState, under_replicated_partitions

__all__ = [
    "MAX_STATUS_PARTITIONS",
    "Condition",
    "broker_statuses",
    "condition",
    "merge_conditions",
    "rfc3339",
    "topic_health",
    "topic_partitions",
]

MAX_STATUS_PARTITIONS = 1000
"""status.partitions of a GafkaTopic lists at most this many (the CRD's maxItems)."""


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None
    """True, False, or None for Unknown."""
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def condition(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    """The condition of ``kind`` in a status' list, if any."""
    return next((c for c in conditions or () if c.get("type") == kind), None)


def merge_conditions(
    old: Sequence[Mapping[str, Any]] | None,
    new: Iterable[Condition],
    *,
    now: dt.datetime,
    generation: int,
    managed: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The new condition list: each of ``new`` keeps its old ``lastTransitionTime`` when its status did not
    change; types in ``managed`` that are not in ``new`` are removed; conditions of other types are kept."""
    previous = {str(c.get("type")): c for c in old or () if isinstance(c, Mapping)}
    wanted = {c.type: c for c in new}
    drop = set(managed) - set(wanted)
    merged: list[dict[str, Any]] = []
    for kind, cond in wanted.items():
        before = previous.get(kind)
        changed = before is None or before.get("status") != cond.status_text
        merged.append(
            {
                "type": kind,
                "status": cond.status_text,
                "reason": cond.reason,
                "message": cond.message[:32768],
                "lastTransitionTime": rfc3339(now) if changed or before is None else before.get("lastTransitionTime"),
                "observedGeneration": generation,
            }
        )
    for kind, before in previous.items():
        if kind not in wanted and kind not in drop:
            merged.append(dict(before))
    order = {"Ready": 0, "Reconciling": 1, "Degraded": 2, "Warning": 3}
    return sorted(merged, key=lambda c: (order.get(str(c["type"]), 9), str(c["type"])))


def broker_statuses(
    replicas: int,
    pods: Sequence[PodState],
    metadata: ClusterMetadata | None,
    pod_racks: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """status.brokers: one entry per broker that has a pod or is known to the controller."""
    by_id = {p.broker_id: p for p in pods}
    known = set(metadata.brokers) if metadata is not None else set()
    leaders: dict[int, int] = {}
    hosted: dict[int, int] = {}
    if metadata is not None:
        for topic in metadata.topics.values():
            for state in topic.partitions:
                if state.leader >= 0:
                    leaders[state.leader] = leaders.get(state.leader, 0) + 1
                for replica in state.replicas:
                    hosted[replica] = hosted.get(replica, 0) + 1
    entries: list[dict[str, Any]] = []
    for broker_id in sorted(set(by_id) | known | set(range(replicas))):
        entry: dict[str, Any] = {"id": broker_id}
        pod = by_id.get(broker_id)
        if pod is not None:
            entry["pod"] = pod.name
            entry["ready"] = pod.ready and not pod.deleting
            rack = (pod_racks or {}).get(pod.name)
            if rack:
                entry["rack"] = rack
        else:
            entry["ready"] = False
        info = metadata.brokers.get(broker_id) if metadata is not None else None
        if info is not None:
            entry["url"] = info.url
            entry["fenced"] = info.fenced
            if info.rack and "rack" not in entry:
                entry["rack"] = info.rack
        if metadata is not None:
            entry["leaders"] = leaders.get(broker_id, 0)
            entry["replicas"] = hosted.get(broker_id, 0)
        entries.append(entry)
    return entries


def topic_partitions(topic: TopicInfo) -> list[dict[str, Any]]:
    """status.partitions of a GafkaTopic (the first :data:`MAX_STATUS_PARTITIONS`)."""
    return [
        {
            "partition": index,
            "leader": state.leader,
            "leaderEpoch": state.leader_epoch,
            "replicas": list(state.replicas),
            "isr": list(state.isr),
        }
        for index, state in enumerate(topic.partitions[:MAX_STATUS_PARTITIONS])
    ]


def topic_health(metadata: ClusterMetadata, name: str) -> tuple[int, int]:
    """(under-replicated, offline) partitions of one topic."""
    topic = metadata.topics.get(name)
    if topic is None:
        return 0, 0
    return under_replicated_partitions(metadata, name), sum(1 for s in topic.partitions if s.leader < 0)
