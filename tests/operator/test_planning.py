"""The operator's pure decisions: fencing lost broker pods, scaling steps, the rolling restart, topics."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from gafka_broker.controller.metadata import BrokerInfo, ClusterMetadata, PartitionState, TopicInfo
from gafka_operator.planning import (
    PodState,
    RollKind,
    ScaleKind,
    TopicAction,
    TopicSpec,
    TopicSpecError,
    fence_reason,
    next_pod_to_roll,
    plan_scale,
    plan_topic,
    pod_state,
    topic_spec,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(seconds=30)


def _metadata(
    brokers: range | list[int], topics: dict[str, list[tuple[int, ...]]] | None = None, **flags: object
) -> ClusterMetadata:
    infos = {b: BrokerInfo(b, f"http://b{b}", fenced=False, incarnation=f"i{b}") for b in brokers}
    metadata = ClusterMetadata(cluster_id="c", brokers=infos)
    for name, placements in (topics or {}).items():
        parts = tuple(PartitionState(replicas, replicas[0], 0, replicas) for replicas in placements)
        factor = len(placements[0]) if placements else 1
        metadata = metadata.with_topic(TopicInfo(name, f"id-{name}", {}, parts, factor), name)
    return metadata


def _pod(broker_id: int, **changes: object) -> PodState:
    base = PodState(
        name=f"demo-{broker_id}",
        broker_id=broker_id,
        uid=f"uid-{broker_id}",
        phase="Running",
        ready=True,
        ready_changed=NOW - dt.timedelta(hours=1),
        created=NOW - dt.timedelta(hours=1),
        revision="new",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- pods


def test_pod_state_reads_what_the_decisions_need() -> None:
    pod = {
        "metadata": {
            "name": "demo-2",
            "uid": "u",
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "labels": {"apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "demo-abc"},
        },
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:01:00Z"}],
        },
    }
    state = pod_state(pod)
    assert state is not None
    assert (state.broker_id, state.ready, state.revision, state.node, state.deleting) == (
        2,
        True,
        "demo-abc",
        "n1",
        False,
    )
    assert state.ready_changed == dt.datetime(2026, 1, 1, 11, 1, tzinfo=dt.UTC)
    # no index label (Kubernetes < 1.28): the ordinal from the name
    assert pod_state({"metadata": {"name": "demo-7"}}).broker_id == 7  # type: ignore[union-attr]
    assert pod_state({"metadata": {"name": "standalone"}}) is None


def test_fence_reasons() -> None:
    assert fence_reason(_pod(0), NOW, GRACE) is None
    assert fence_reason(_pod(0, phase="Failed", ready=False), NOW, GRACE) == "PodFailed"
    # a pod being deleted hands its leaderships over by itself, until its grace period is over
    deleting = _pod(0, deleting=True, deletion_deadline=NOW + dt.timedelta(seconds=10))
    assert fence_reason(deleting, NOW, GRACE) is None
    assert fence_reason(replace(deleting, deletion_deadline=NOW), NOW, GRACE) == "PodTerminationOverdue"
    # not ready: only past the grace period, counted from the last change (or creation when never ready)
    flapping = _pod(0, ready=False, ready_changed=NOW - dt.timedelta(seconds=10))
    assert fence_reason(flapping, NOW, GRACE) is None
    assert fence_reason(replace(flapping, ready_changed=NOW - GRACE), NOW, GRACE) == "PodNotReady"
    pending = _pod(0, phase="Pending", ready=False, ready_changed=None, created=NOW - dt.timedelta(minutes=5))
    assert fence_reason(pending, NOW, GRACE) == "PodNotReady"


# ------------------------------------------------------------------------------------------------ scaling


def test_a_new_cluster_is_created_at_its_size() -> None:
    decision = plan_scale(3, None, None, None)
    assert (decision.kind, decision.replicas, decision.balanced) == (ScaleKind.STEADY, 3, 3)


def test_steady() -> None:
    decision = plan_scale(3, 3, 3, _metadata(range(3)), range(3))
    assert (decision.kind, decision.replicas, decision.in_progress) == (ScaleKind.STEADY, 3, False)


def test_scale_up_grows_then_waits_for_the_new_brokers_then_rebalances_once() -> None:
    metadata = _metadata(range(3), {"t": [(0, 1), (1, 2), (2, 0)]})
    grow = plan_scale(5, 3, 3, metadata, range(3))
    assert (grow.kind, grow.replicas, grow.balanced, grow.brokers) == (ScaleKind.GROW, 5, 3, (3, 4))
    # growing needs no controller (no metadata)
    assert plan_scale(5, 3, 3, None).kind is ScaleKind.GROW

    wait = plan_scale(5, 5, 3, metadata, range(5))
    assert (wait.kind, wait.brokers, wait.replicas) == (ScaleKind.WAIT, (3, 4), 5)
    assert "3, 4" in wait.message
    fenced = _metadata(range(5))
    fenced = fenced.with_broker(replace(fenced.brokers[4], fenced=True))
    assert plan_scale(5, 5, 3, fenced, range(5)).brokers == (4,)

    rebalance = plan_scale(5, 5, 3, _metadata(range(5)), range(5))
    assert (rebalance.kind, rebalance.brokers, rebalance.balanced) == (ScaleKind.REBALANCE, (0, 1, 2, 3, 4), 5)
    # recorded: no second rebalance
    assert plan_scale(5, 5, 5, _metadata(range(5)), range(5)).kind is ScaleKind.STEADY
    # no controller here: wait for it rather than forgetting the rebalance
    assert plan_scale(5, 5, 3, None).kind is ScaleKind.WAIT


def test_rebalance_waits_for_reassignments_in_flight() -> None:
    metadata = _metadata(range(4), {"t": [(0, 1)]})
    moving = metadata.with_partition("t", 0, replace(metadata.topics["t"].partitions[0], adding=(3,)))
    assert plan_scale(4, 4, 3, moving, range(4)).kind is ScaleKind.WAIT


def test_scale_down_is_refused_below_the_replication_factor() -> None:
    metadata = _metadata(range(3), {"orders": [(0, 1, 2)], "small": [(0,)]})
    decision = plan_scale(2, 3, 3, metadata, range(3))
    assert (decision.kind, decision.replicas, decision.in_progress) == (ScaleKind.REFUSE, 3, False)
    assert "orders" in decision.message and "replication factor 3" in decision.message


def test_scale_down_without_the_controller_waits() -> None:
    decision = plan_scale(2, 3, 3, None, range(3))
    assert (decision.kind, decision.replicas) == (ScaleKind.WAIT, 3)


def test_scale_down_drains_waits_shrinks_then_forgets() -> None:
    metadata = _metadata(range(4), {"t": [(0, 3), (3, 1), (1, 2)]})
    drain = plan_scale(3, 4, 4, metadata, range(4))
    assert (drain.kind, drain.brokers, drain.replicas) == (ScaleKind.DRAIN, (3,), 4)

    draining = metadata.with_broker(replace(metadata.brokers[3], draining=True))
    wait = plan_scale(3, 4, 4, draining, range(4))
    assert (wait.kind, wait.replicas) == (ScaleKind.WAIT, 4)
    assert "2 replicas still to move" in wait.message

    drained = _metadata(range(4), {"t": [(0, 2), (2, 1), (1, 2)]})
    drained = drained.with_broker(replace(drained.brokers[3], draining=True))
    shrink = plan_scale(3, 4, 4, drained, range(4))
    assert (shrink.kind, shrink.replicas, shrink.balanced) == (ScaleKind.SHRINK, 3, 3)

    # the StatefulSet shrank; its pod still terminates: wait, then forget the broker
    terminating = plan_scale(3, 3, 3, drained, range(4))
    assert (terminating.kind, terminating.brokers) == (ScaleKind.WAIT, (3,))
    forget = plan_scale(3, 3, 3, drained, range(3))
    assert (forget.kind, forget.brokers, forget.replicas) == (ScaleKind.FORGET, (3,), 3)


def test_brokers_never_registered_do_not_block_a_scale_down() -> None:
    metadata = _metadata(range(3))
    assert plan_scale(3, 5, 5, metadata, range(5)).kind is ScaleKind.SHRINK


def test_a_cancelled_drain_lets_the_brokers_rejoin() -> None:
    """5 -> 3 started draining 3 and 4, then the user went back to 5."""
    metadata = _metadata(range(5), {"t": [(0, 1), (1, 2)]})
    for broker_id in (3, 4):
        metadata = metadata.with_broker(replace(metadata.brokers[broker_id], draining=True))
    forget = plan_scale(5, 5, 5, metadata, range(5))
    assert (forget.kind, forget.brokers, forget.balanced) == (ScaleKind.FORGET, (3, 4), 3)
    # once they re-registered (undrained), the balance below 5 brings a rebalance
    assert plan_scale(5, 5, 3, _metadata(range(5)), range(5)).kind is ScaleKind.REBALANCE
    # broker 3 still hosts a replica: only the empty broker 4 goes now
    busy = metadata.with_partition("t", 0, PartitionState((0, 3), 0, 0, (0, 3)))
    partial = plan_scale(5, 5, 5, busy, range(5))
    assert (partial.kind, partial.brokers, partial.balanced) == (ScaleKind.FORGET, (4,), 4)
    # while the drain still moves replicas: wait for it to end first
    moving = metadata.with_partition("t", 0, PartitionState((0, 1, 3), 0, 0, (0, 1), adding=(0,), removing=(3,)))
    assert plan_scale(5, 5, 5, moving, range(5)).kind is ScaleKind.WAIT


# ------------------------------------------------------------------------------------------ rolling restart


def test_nothing_to_roll() -> None:
    pods = [_pod(i) for i in range(3)]
    assert next_pod_to_roll(pods, 3, "new", _metadata(range(3))).kind is RollKind.NONE
    # the StatefulSet controller has not seen the new template yet: its updateRevision is stale
    stale = [_pod(i, revision="old") for i in range(3)]
    assert next_pod_to_roll(stale, 3, "new", _metadata(range(3)), up_to_date=False).kind is RollKind.NONE


def test_rolls_the_highest_outdated_ordinal_when_everything_is_in_sync() -> None:
    pods = [_pod(0, revision="old"), _pod(1, revision="old"), _pod(2)]
    decision = next_pod_to_roll(pods, 3, "new", _metadata(range(3), {"t": [(0, 1, 2)]}))
    assert decision.kind is RollKind.RESTART and decision.pod is not None
    assert decision.pod.name == "demo-1"
    assert decision.outdated == ("demo-1", "demo-0")


@pytest.mark.parametrize(
    ("pods", "metadata", "why"),
    [
        ([_pod(0, revision="old"), _pod(1), _pod(2, ready=False)], _metadata(range(3)), "broker 2's pod to be ready"),
        ([_pod(0, revision="old"), _pod(1)], _metadata(range(3)), "broker 2's pod to be recreated"),
        ([_pod(0, revision="old"), _pod(1), _pod(2, deleting=True)], _metadata(range(3)), "to be recreated"),
        ([_pod(0, revision="old"), _pod(1), _pod(2)], _metadata(range(2)), "broker 2 to register"),
        ([_pod(0, revision="old"), _pod(1), _pod(2)], None, "controller"),
    ],
)
def test_one_broker_at_a_time(pods: list[PodState], metadata: ClusterMetadata | None, why: str) -> None:
    decision = next_pod_to_roll(pods, 3, "new", metadata)
    assert decision.kind is RollKind.WAIT
    assert why in decision.message


def test_waits_for_every_partition_back_in_sync() -> None:
    metadata = _metadata(range(3), {"t": [(0, 1, 2), (1, 2, 0)]})
    lagging = metadata.with_partition("t", 1, PartitionState((1, 2, 0), 1, 1, (1, 2)))
    pods = [_pod(0, revision="old"), _pod(1), _pod(2)]
    decision = next_pod_to_roll(pods, 3, "new", lagging)
    assert decision.kind is RollKind.WAIT and "1 under-replicated" in decision.message
    fenced = metadata.with_broker(replace(metadata.brokers[1], fenced=True))
    assert "broker 1 to register" in next_pod_to_roll(pods, 3, "new", fenced).message


# ------------------------------------------------------------------------------------------------- topics


def test_topic_spec_defaults_and_names() -> None:
    spec = topic_spec({"cluster": "demo"}, "orders")
    assert spec == TopicSpec("demo", "orders", 1, 3, {})
    named = topic_spec(
        {
            "cluster": "demo",
            "topicName": "Orders_V2",
            "partitions": 6,
            "config": {"retention.ms": 1000, "unclean.leader.election.enable": True},
        },
        "orders-v2",
    )
    assert named.name == "Orders_V2" and named.partitions == 6
    assert named.configs == {"retention.ms": "1000", "unclean.leader.election.enable": "true"}
    with pytest.raises(TopicSpecError, match=r"spec\.config"):
        topic_spec({"cluster": "demo", "config": {"retention.ms": "soon"}}, "x")
    with pytest.raises(TopicSpecError, match="cluster"):
        topic_spec({}, "x")


def test_plan_topic() -> None:
    spec = TopicSpec("demo", "t", 3, 2, {"retention.ms": "1000"})
    assert plan_topic(spec, None).actions == (TopicAction.CREATE,)
    existing = _metadata(range(3), {"t": [(0, 1), (1, 2), (2, 0)]}).topics["t"]
    assert plan_topic(spec, existing).actions == (TopicAction.ALTER_CONFIGS,)
    assert plan_topic(replace(spec, configs={}), existing).actions == ()
    grown = plan_topic(replace(spec, partitions=5), existing)
    assert grown.actions == (TopicAction.ADD_PARTITIONS, TopicAction.ALTER_CONFIGS)
    mismatch = plan_topic(replace(spec, replication_factor=3), existing)
    assert mismatch.conflict == "ReplicationFactorMismatch" and not mismatch.actions
    assert plan_topic(replace(spec, partitions=2), existing).conflict == "PartitionsCannotShrink"
