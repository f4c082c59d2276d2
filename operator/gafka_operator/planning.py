"""What to do next, given what the operator observes: pure functions, unit-tested without a cluster.

The reconciler (:mod:`gafka_operator.reconcile`) reads the GafkaCluster, its StatefulSet, its pods and the
controller's metadata, asks these functions for *one* next step, performs it, and comes back on its next pass.
Nothing here remembers anything between passes: every decision is made from the observed state, so an
operator restart (or a fail-over to the standby) in the middle of a scale-down or a rolling restart simply
carries on. The one piece of memory a decision needs, up to which size the replicas were last rebalanced, is
an annotation on the StatefulSet (:data:`BALANCED_ANNOTATION`).

- :func:`pod_state` / :func:`fence_reason`: is a broker pod gone or stuck (fence its broker at once)?
- :func:`plan_scale`: grow, rebalance onto new brokers, refuse / drain / shrink / forget on scale-down.
- :func:`next_pod_to_roll`: the rolling restart after a pod template change, one broker at a time.
- :func:`topic_spec` / :func:`plan_topic`: a GafkaTopic against the topic in the metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from gafka_broker.controller.decisions import hosted_by, reassigning
from gafka_broker.controller.metadata import ClusterMetadata, TopicInfo
from gafka_broker.topic_config import TopicConfig, TopicConfigError
from gafka_operator.leadership import parse_time

__all__ = [
    "BALANCED_ANNOTATION",
    "POD_INDEX_LABEL",
    "REVISION_LABEL",
    "PodState",
    "RollDecision",
    "RollKind",
    "ScaleDecision",
    "ScaleKind",
    "TopicAction",
    "TopicPlan",
    "TopicSpec",
    "TopicSpecError",
    "fence_reason",
    "max_replication_factor",
    "next_pod_to_roll",
    "offline_partitions",
    "plan_scale",
    "plan_topic",
    "pod_state",
    "topic_spec",
    "under_replicated_partitions",
]

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
BALANCED_ANNOTATION = "gafka.dev/balanced-replicas"
"""On the StatefulSet: the broker count the replicas were last spread over (a scale-up rebalances once)."""


# ---------------------------------------------------------------------------------------------------- pods


@dataclass(frozen=True, slots=True)
class PodState:
    """What the decisions need to know about one broker pod."""

    name: str
    broker_id: int
    uid: str = ""
    phase: str = "Pending"
    ready: bool = False
    ready_changed: dt.datetime | None = None
    """lastTransitionTime of the Ready condition (None: the pod never reported one)."""
    created: dt.datetime | None = None
    deleting: bool = False
    deletion_deadline: dt.datetime | None = None
    """metadata.deletionTimestamp: when the kubelet's grace period for the pod ends."""
    revision: str | None = None
    node: str | None = None


def _broker_id(meta: Mapping[str, Any]) -> int | None:
    labels = meta.get("labels") or {}
    raw = labels.get(POD_INDEX_LABEL)
    if raw is None:
        _, _, raw = str(meta.get("name", "")).rpartition("-")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def pod_state(pod: Mapping[str, Any]) -> PodState | None:
    """A broker pod's state; None when the pod has no broker id (not a StatefulSet pod)."""
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    broker_id = _broker_id(meta)
    if broker_id is None:
        return None
    status: Mapping[str, Any] = pod.get("status") or {}
    ready_condition = next(
        (c for c in status.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    deadline = parse_time(meta.get("deletionTimestamp"))
    return PodState(
        name=str(meta.get("name", "")),
        broker_id=broker_id,
        uid=str(meta.get("uid", "")),
        phase=str(status.get("phase") or "Pending"),
        ready=ready_condition is not None and ready_condition.get("status") == "True",
        ready_changed=parse_time(ready_condition.get("lastTransitionTime")) if ready_condition else None,
        created=parse_time(meta.get("creationTimestamp")),
        deleting=deadline is not None,
        deletion_deadline=deadline,
        revision=(meta.get("labels") or {}).get(REVISION_LABEL),
        node=(pod.get("spec") or {}).get("nodeName"),
    )


def fence_reason(pod: PodState, now: dt.datetime, not_ready_grace: dt.timedelta) -> str | None:
    """Why the pod's broker should be fenced now (its leaderships moved), or None.

    - ``PodFailed``: the pod ended (phase Failed or Succeeded): its process is gone.
    - ``PodTerminationOverdue``: deleted, and past its grace period: the broker's own controlled shutdown had
      its chance; the node may be gone with it.
    - ``PodNotReady``: not ready for longer than the grace period (since it last changed, or since creation when
      it never was ready): it serves nothing, whatever its process thinks.

    A pod being deleted within its grace period is left alone: the broker hands its leaderships over itself.
    A pod that is gone (the DELETED watch event) is fenced by the caller without asking.
    """
    if pod.phase in ("Failed", "Succeeded"):
        return "PodFailed"
    if pod.deleting:
        if pod.deletion_deadline is not None and now >= pod.deletion_deadline:
            return "PodTerminationOverdue"
        return None
    if not pod.ready:
        since = pod.ready_changed or pod.created
        if since is not None and now - since >= not_ready_grace:
            return "PodNotReady"
    return None


# ---------------------------------------------------------------------------------------------- metadata


def under_replicated_partitions(metadata: ClusterMetadata, topic: str | None = None) -> int:
    return sum(
        1
        for name, info in metadata.topics.items()
        if topic is None or name == topic
        for state in info.partitions
        if state.under_replicated
    )


def offline_partitions(metadata: ClusterMetadata) -> int:
    return sum(1 for info in metadata.topics.values() for state in info.partitions if state.leader < 0)


def max_replication_factor(metadata: ClusterMetadata) -> int:
    return max((topic.replication_factor for topic in metadata.topics.values()), default=0)


# ------------------------------------------------------------------------------------------------ scaling


class ScaleKind(Enum):
    STEADY = "Steady"
    """Nothing to do (``balanced`` may still be recorded)."""
    GROW = "ScalingUp"
    """Raise the StatefulSet to ``replicas``."""
    REBALANCE = "Rebalancing"
    """Every new broker registered: spread the replicas over ``brokers``."""
    WAIT = "Waiting"
    """Something is in progress (brokers registering, a drain, pods terminating, no controller)."""
    REFUSE = "ScaleDownRefused"
    """The scale-down would leave a topic with fewer brokers than its replication factor."""
    DRAIN = "Draining"
    """Ask the controller to move every replica off ``brokers``."""
    SHRINK = "ScalingDown"
    """The doomed brokers are empty: lower the StatefulSet to ``replicas``."""
    FORGET = "Forgetting"
    """Brokers whose pods are gone and who host nothing: remove them from the metadata."""


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    kind: ScaleKind
    replicas: int
    """What the StatefulSet's replicas should be after this step."""
    balanced: int
    """What :data:`BALANCED_ANNOTATION` should say after this step."""
    brokers: tuple[int, ...] = ()
    message: str = ""

    @property
    def in_progress(self) -> bool:
        return self.kind not in (ScaleKind.STEADY, ScaleKind.REFUSE)


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def plan_scale(
    desired: int,
    current: int | None,
    balanced: int | None,
    metadata: ClusterMetadata | None,
    pod_ids: Iterable[int] = (),
) -> ScaleDecision:
    """The next scaling step. ``current`` is the StatefulSet's replicas (None before it exists), ``balanced``
    its :data:`BALANCED_ANNOTATION`, ``metadata`` the controller's (None when this replica cannot read it),
    ``pod_ids`` the brokers that still have a pod."""
    if current is None:  # a new cluster: no topics to spread yet
        return ScaleDecision(ScaleKind.STEADY, desired, desired)
    recorded = current if balanced is None else balanced
    pods = set(pod_ids)

    if desired > current:
        return ScaleDecision(
            ScaleKind.GROW, desired, recorded, tuple(range(current, desired)),
            f"adding brokers {_ids(range(current, desired))}",
        )  # fmt: skip

    if desired < current:
        doomed = tuple(range(desired, current))
        if metadata is None:
            return ScaleDecision(
                ScaleKind.WAIT, current, recorded, doomed, "waiting for the controller to check the scale-down"
            )
        needed = max_replication_factor(metadata)
        if needed > desired:
            widest = sorted(n for n, t in metadata.topics.items() if t.replication_factor == needed)
            return ScaleDecision(
                ScaleKind.REFUSE,
                current,
                recorded,
                doomed,
                f"scaling down to {desired} brokers would leave topic {widest[0]} (replication factor {needed}) "
                f"with too few brokers; keeping {current}",
            )
        known = [b for b in doomed if b in metadata.brokers]
        if any(not metadata.brokers[b].draining for b in known):
            return ScaleDecision(ScaleKind.DRAIN, current, recorded, doomed, f"draining brokers {_ids(doomed)}")
        left = sum(len(hosted_by(metadata, b)) for b in known)
        if left or reassigning(metadata):
            return ScaleDecision(
                ScaleKind.WAIT, current, recorded, doomed,
                f"draining brokers {_ids(doomed)}: {left} replicas still to move",
            )  # fmt: skip
        return ScaleDecision(ScaleKind.SHRINK, desired, desired, doomed, f"removing drained brokers {_ids(doomed)}")

    # desired == current: finish what a scale left behind
    if metadata is None:
        if recorded < desired:
            return ScaleDecision(ScaleKind.WAIT, current, recorded, (), "waiting for the controller to rebalance")
        return ScaleDecision(ScaleKind.STEADY, current, min(recorded, desired))
    leftovers = sorted(b for b in metadata.brokers if b >= desired)
    gone = tuple(b for b in leftovers if b not in pods and not hosted_by(metadata, b))
    if gone:
        return ScaleDecision(
            ScaleKind.FORGET, current, min(recorded, desired), gone, f"forgetting brokers {_ids(gone)}"
        )
    if any(b in pods for b in leftovers):
        terminating = [b for b in leftovers if b in pods]
        return ScaleDecision(
            ScaleKind.WAIT, current, min(recorded, desired), tuple(terminating),
            f"waiting for the pods of brokers {_ids(terminating)} to terminate",
        )  # fmt: skip
    rejoining = [b for b in range(desired) if b in metadata.brokers and metadata.brokers[b].draining]
    if rejoining:  # a scale-down was cancelled mid-drain: forgotten once empty, they re-register undrained
        empty = tuple(b for b in rejoining if not hosted_by(metadata, b))
        if empty and not reassigning(metadata):
            # recorded below them: once they re-register, the replicas are spread over them again
            return ScaleDecision(
                ScaleKind.FORGET, current, min(recorded, min(empty)), empty,
                f"brokers {_ids(empty)} rejoin after a cancelled drain",
            )  # fmt: skip
        return ScaleDecision(
            ScaleKind.WAIT, current, recorded, tuple(rejoining),
            f"brokers {_ids(rejoining)} finish draining before they rejoin",
        )  # fmt: skip
    if recorded < desired:
        missing = [b for b in range(desired) if b not in metadata.brokers or metadata.brokers[b].fenced]
        if missing:
            return ScaleDecision(
                ScaleKind.WAIT, current, recorded, tuple(missing), f"waiting for brokers {_ids(missing)} to register"
            )
        if reassigning(metadata):
            return ScaleDecision(ScaleKind.WAIT, current, recorded, (), "waiting for reassignments in flight")
        return ScaleDecision(
            ScaleKind.REBALANCE, current, desired, tuple(range(desired)),
            f"spreading replicas over brokers {_ids(range(desired))}",
        )  # fmt: skip
    return ScaleDecision(ScaleKind.STEADY, current, desired)


# ------------------------------------------------------------------------------------------ rolling restart


class RollKind(Enum):
    NONE = "None"
    WAIT = "Waiting"
    RESTART = "Restart"


@dataclass(frozen=True, slots=True)
class RollDecision:
    kind: RollKind
    pod: PodState | None = None
    message: str = ""
    outdated: tuple[str, ...] = ()


def next_pod_to_roll(
    pods: Sequence[PodState],
    replicas: int,
    update_revision: str | None,
    metadata: ClusterMetadata | None,
    *,
    up_to_date: bool = True,
) -> RollDecision:
    """The next broker to restart after a pod template change (``OnDelete`` StatefulSet), or why not yet.

    One at a time: only when every broker pod exists and is ready, every broker is registered and unfenced,
    and no partition is under-replicated or being reassigned; then the outdated pod with the highest ordinal
    (the order CFK uses). ``up_to_date`` is False while the StatefulSet controller has not yet observed the
    latest template (its ``updateRevision`` is stale).
    """
    if update_revision is None or not up_to_date:
        return RollDecision(RollKind.NONE)
    outdated = sorted((p for p in pods if p.revision != update_revision), key=lambda p: p.broker_id, reverse=True)
    if not outdated:
        return RollDecision(RollKind.NONE)
    names = tuple(p.name for p in outdated)
    if metadata is None:
        return RollDecision(RollKind.WAIT, None, "waiting for the controller before restarting brokers", names)
    by_id = {p.broker_id: p for p in pods}
    for broker_id in range(replicas):
        pod = by_id.get(broker_id)
        if pod is None or pod.deleting or not pod.ready:
            what = "to be recreated" if pod is None or pod.deleting else "to be ready"
            return RollDecision(RollKind.WAIT, None, f"waiting for broker {broker_id}'s pod {what}", names)
        broker = metadata.brokers.get(broker_id)
        if broker is None or broker.fenced:
            return RollDecision(RollKind.WAIT, None, f"waiting for broker {broker_id} to register", names)
    urp = under_replicated_partitions(metadata)
    if urp:
        return RollDecision(RollKind.WAIT, None, f"waiting for {urp} under-replicated partitions to catch up", names)
    if reassigning(metadata):
        return RollDecision(RollKind.WAIT, None, "waiting for reassignments in flight", names)
    return RollDecision(RollKind.RESTART, outdated[0], f"restarting {outdated[0].name} ({len(outdated)} left)", names)


# ------------------------------------------------------------------------------------------------- topics


class TopicSpecError(ValueError):
    """The GafkaTopic's spec cannot become a topic (its message names the field)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    cluster: str
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    """Kafka-named overrides, rendered as the controller stores them."""


def topic_spec(spec: Mapping[str, Any], object_name: str) -> TopicSpec:
    """A GafkaTopic's spec (CRD defaults applied again here, as for clusters)."""
    cluster = spec.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise TopicSpecError("spec.cluster is required")
    name = spec.get("topicName") or object_name
    partitions = spec.get("partitions", 1)
    factor = spec.get("replicationFactor", 3)
    for field, value in (("partitions", partitions), ("replicationFactor", factor)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TopicSpecError(f"spec.{field} must be a positive integer, got {value!r}")
    try:
        configs = TopicConfig.from_configs(spec.get("config") or {}).overrides
    except TopicConfigError as exc:
        raise TopicSpecError(f"spec.config: {exc}") from None
    return TopicSpec(str(cluster), str(name), int(partitions), int(factor), dict(sorted(configs.items())))


class TopicAction(Enum):
    CREATE = "Create"
    ADD_PARTITIONS = "AddPartitions"
    ALTER_CONFIGS = "AlterConfigs"


@dataclass(frozen=True, slots=True)
class TopicPlan:
    actions: tuple[TopicAction, ...] = ()
    conflict: str | None = None
    """A reason (CamelCase) the spec cannot be applied to the existing topic."""
    message: str = ""


def plan_topic(spec: TopicSpec, existing: TopicInfo | None) -> TopicPlan:
    if existing is None:
        return TopicPlan((TopicAction.CREATE,))
    if existing.replication_factor != spec.replication_factor:
        return TopicPlan(
            conflict="ReplicationFactorMismatch",
            message=f"topic {spec.name} exists with replication factor {existing.replication_factor}, "
            f"not {spec.replication_factor}",
        )
    actions: list[TopicAction] = []
    if spec.partitions < len(existing.partitions):
        return TopicPlan(
            conflict="PartitionsCannotShrink",
            message=f"topic {spec.name} has {len(existing.partitions)} partitions; spec.partitions is "
            f"{spec.partitions} and partitions can only grow",
        )
    if spec.partitions > len(existing.partitions):
        actions.append(TopicAction.ADD_PARTITIONS)
    if dict(existing.configs) != dict(spec.configs):
        actions.append(TopicAction.ALTER_CONFIGS)
    return TopicPlan(tuple(actions))
