"""The controller's decisions as pure functions: old metadata in, new metadata out, no I/O, no clock.

Rules (Kafka's, KRaft flavour):
- a broker that misses heartbeats for the session timeout is fenced: it leaves every ISR (never emptying
  one) and loses its leaderships;
- leaders are elected only from the ISR, preferred replica first; with no eligible replica the partition
  stays offline (leader -1) unless ``unclean.leader.election.enable`` allows any live replica;
- a restarted broker (new incarnation) is treated as having been away: out of every ISR, leaderships moved;
- the preferred replica gets leadership back once it is alive, in sync and fully caught up (it reported that its
  last fetch reached the leader's log end offset and high watermark), at each imbalance check only;
- a replica that found damage on disk leaves the ISR and loses its leadership (Kafka: a failed log directory);
- reassignment: add the new replicas, let them catch up into the ISR, switch, then drop the old ones.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace

from gafka_broker.controller.metadata import (
    NO_LEADER,
    BrokerInfo,
    ClusterMetadata,
    PartitionState,
    TopicInfo,
)
from gafka_broker.controller.placement import PlacementError, place_replicas


class ControllerError(ValueError):
    """A request the controller refuses; ``code`` is Kafka's name for the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_topic_id() -> str:
    """A random UUID in Kafka's text form (22 characters of URL-safe base64), as ``partition.metadata`` has it."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


# -- elections ---------------------------------------------------------------------------------------
def elect(state: PartitionState, live: set[int], *, unclean: bool = False) -> PartitionState:
    """Keep a live in-sync leader; otherwise pick the first live ISR member in replica order."""
    if state.leader in live and state.leader in state.isr:
        return state
    candidates = [replica for replica in state.replicas if replica in state.isr and replica in live]
    if candidates:
        return state.with_change(leader=candidates[0], leader_epoch=state.leader_epoch + 1)
    if unclean:
        survivors = [replica for replica in state.replicas if replica in live]
        if survivors:
            return state.with_change(leader=survivors[0], leader_epoch=state.leader_epoch + 1, isr=(survivors[0],))
    if state.leader == NO_LEADER:
        return state
    return state.with_change(leader=NO_LEADER, leader_epoch=state.leader_epoch + 1)


def without_broker(state: PartitionState, broker_id: int, live: set[int], *, unclean: bool) -> PartitionState:
    """``broker_id`` is gone (fenced or restarted): drop it from the ISR unless that would empty the ISR,
    then re-elect if it led."""
    isr = tuple(replica for replica in state.isr if replica != broker_id)
    changed = state
    if isr != state.isr and isr:
        changed = state.with_change(isr=isr)
    if changed.leader == broker_id or changed.leader not in live:
        live_without = live - {broker_id}
        elected = elect(changed, live_without, unclean=unclean)
        if elected.leader != NO_LEADER and broker_id in elected.isr and len(elected.isr) > 1:
            elected = replace(elected, isr=tuple(r for r in elected.isr if r != broker_id))
        return elected
    return changed


def _unclean(topic: TopicInfo) -> bool:
    return str(topic.configs.get("unclean.leader.election.enable", "false")).lower() == "true"


def _map_partitions(
    metadata: ClusterMetadata, change: Callable[[TopicInfo, PartitionState], PartitionState]
) -> ClusterMetadata:
    """Apply ``change(topic, state) -> state`` to every partition."""
    topics: dict[str, TopicInfo] = {}
    for name, topic in metadata.topics.items():
        partitions = tuple(change(topic, state) for state in topic.partitions)
        topics[name] = replace(topic, partitions=partitions) if partitions != topic.partitions else topic
    return replace(metadata, topics=topics)


# -- brokers -----------------------------------------------------------------------------------------
def register_broker(
    metadata: ClusterMetadata,
    broker_id: int,
    url: str,
    rack: str | None,
    incarnation: str,
    now_ms: int,
    kafka_address: str | None = None,
) -> ClusterMetadata:
    """A broker process (re)starts. A new incarnation of a known broker counts as a return from absence."""
    previous = metadata.brokers.get(broker_id)
    restarted = previous is not None and previous.incarnation != incarnation
    broker = BrokerInfo(
        broker_id=broker_id,
        url=url,
        rack=rack,
        fenced=False,
        last_heartbeat_ms=now_ms,
        incarnation=incarnation,
        draining=previous.draining if previous is not None else False,
        kafka_address=kafka_address,
    )
    updated = metadata.with_broker(broker)
    if restarted:
        updated = _map_partitions(updated, _leaving(broker_id, set(updated.live_brokers()) - {broker_id}))
    return elect_offline(updated)


def heartbeat(metadata: ClusterMetadata, broker_id: int, incarnation: str, now_ms: int) -> ClusterMetadata:
    """Liveness from a registered broker; an unknown or stale incarnation must register first."""
    broker = metadata.brokers.get(broker_id)
    if broker is None or broker.incarnation != incarnation:
        raise ControllerError("UNKNOWN_BROKER", f"broker {broker_id} ({incarnation}) must register first")
    updated = metadata.with_broker(replace(broker, last_heartbeat_ms=now_ms, fenced=False))
    return elect_offline(updated) if broker.fenced else updated


def fence_expired(
    metadata: ClusterMetadata, now_ms: int, session_timeout_ms: int, last_heartbeats: Mapping[int, int]
) -> ClusterMetadata:
    """Fence brokers whose last heartbeat (``last_heartbeats``: broker id -> time, kept by the controller
    in memory) is older than the session timeout, and move their leaderships."""
    expired = [
        broker.broker_id
        for broker in metadata.brokers.values()
        if not broker.fenced
        and now_ms - last_heartbeats.get(broker.broker_id, broker.last_heartbeat_ms) > session_timeout_ms
    ]
    return fence(metadata, expired)


def fence(metadata: ClusterMetadata, broker_ids: Iterable[int]) -> ClusterMetadata:
    updated = metadata
    for broker_id in broker_ids:
        broker = updated.brokers.get(broker_id)
        if broker is None:
            continue
        updated = updated.with_broker(replace(broker, fenced=True))
        updated = _map_partitions(updated, _leaving(broker_id, set(updated.live_brokers())))
    return updated


def _leaving(broker_id: int, live: set[int]) -> Callable[[TopicInfo, PartitionState], PartitionState]:
    def change(topic: TopicInfo, state: PartitionState) -> PartitionState:
        return without_broker(state, broker_id, live, unclean=_unclean(topic))

    return change


def elect_offline(metadata: ClusterMetadata) -> ClusterMetadata:
    """Give offline partitions a leader again where an in-sync replica is back."""
    live = set(metadata.live_brokers())
    return _map_partitions(
        metadata,
        lambda topic, state: elect(state, live, unclean=_unclean(topic)) if state.leader == NO_LEADER else state,
    )


def elect_preferred(metadata: ClusterMetadata, caught_up: Mapping[int, Collection[tuple[str, int]]]) -> ClusterMetadata:
    """Move leadership back to the preferred replica wherever it is alive, in sync and caught up.

    ``caught_up``: broker id -> the partitions it reported as fully caught up (log end offset and high
    watermark of the leader's last answer). A replica just back in the ISR may not know the high watermark
    yet; made leader then, it would have to answer OFFSET_NOT_AVAILABLE until it learns it (KIP-207)."""
    live = set(metadata.live_brokers())
    updated = metadata
    for name, topic in metadata.topics.items():
        for index, state in enumerate(topic.partitions):
            preferred = state.preferred_leader
            if (
                state.leader != preferred
                and preferred in live
                and preferred in state.isr
                and (name, index) in caught_up.get(preferred, ())
                and not metadata.brokers[preferred].draining
            ):
                moved = state.with_change(leader=preferred, leader_epoch=state.leader_epoch + 1)
                updated = updated.with_partition(name, index, moved)
    return updated


def controlled_shutdown(metadata: ClusterMetadata, broker_id: int) -> ClusterMetadata:
    """A broker asks to stop: hand its leaderships to other in-sync replicas first (no offline window), and
    leave the ISRs it follows in, so ``acks=all`` does not wait for it until its session expires (KRaft).

    It is marked ``shutting_down`` (KIP-841): it keeps fetching until it stops, which covers the moment before
    the leaders apply this change, but no leader may add it back to an ISR, and it is elected nowhere."""
    broker = metadata.brokers.get(broker_id)
    if broker is not None and not broker.shutting_down:
        metadata = metadata.with_broker(replace(broker, shutting_down=True))
    live = set(metadata.live_brokers()) - {broker_id}

    def hand_over(topic: TopicInfo, state: PartitionState) -> PartitionState:
        if state.leader != broker_id:
            if broker_id in state.isr and len(state.isr) > 1:
                return state.with_change(isr=tuple(r for r in state.isr if r != broker_id))
            return state
        others = [r for r in state.replicas if r in state.isr and r in live]
        if not others:
            return state  # nobody to take over: keep leading until the process is gone
        return state.with_change(
            leader=others[0], leader_epoch=state.leader_epoch + 1, isr=tuple(r for r in state.isr if r != broker_id)
        )

    return _map_partitions(metadata, hand_over)


def replica_damaged(metadata: ClusterMetadata, broker_id: int, topic_name: str, index: int) -> ClusterMetadata:
    """``broker_id`` found a batch of its replica damaged on disk: it leaves the ISR and, if it led, leadership
    moves to another live in-sync replica. Never empties the ISR (with no good copy elsewhere nothing changes;
    the damaged replica answers CORRUPT_MESSAGE). It rejoins after truncating and fetching again."""
    topic = _topic(metadata, topic_name)
    if not 0 <= index < len(topic.partitions):
        raise ControllerError("UNKNOWN_TOPIC_OR_PARTITION", f"{topic_name}-{index} does not exist")
    state = topic.partitions[index]
    isr = tuple(r for r in state.isr if r != broker_id)
    if not isr or isr == state.isr:
        return metadata
    if state.leader != broker_id:
        return metadata.with_partition(topic_name, index, state.with_change(isr=isr))
    live = set(metadata.live_brokers()) - {broker_id}
    candidates = [r for r in state.replicas if r in isr and r in live]
    if not candidates:
        return metadata
    moved = state.with_change(leader=candidates[0], leader_epoch=state.leader_epoch + 1, isr=isr)
    return metadata.with_partition(topic_name, index, moved)


# -- topics ------------------------------------------------------------------------------------------
def create_topic(
    metadata: ClusterMetadata,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str],
    *,
    placement_start: int = 0,
) -> ClusterMetadata:
    if name in metadata.topics:
        raise ControllerError("TOPIC_ALREADY_EXISTS", f"topic {name!r} already exists")
    candidates = [b for b in metadata.live_brokers() if not metadata.brokers[b].draining]
    try:
        placements = place_replicas(
            partitions,
            replication_factor,
            candidates,
            {b: metadata.brokers[b].rack for b in candidates},
            start=placement_start,
        )
    except PlacementError as exc:
        raise ControllerError("INVALID_REPLICATION_FACTOR", str(exc)) from None
    topic = TopicInfo(
        name=name,
        topic_id=new_topic_id(),
        configs=dict(configs),
        replication_factor=replication_factor,
        partitions=tuple(PartitionState(replicas, replicas[0], 0, replicas) for replicas in placements),
    )
    return metadata.with_topic(topic, name)


def add_partitions(metadata: ClusterMetadata, name: str, total: int) -> ClusterMetadata:
    topic = _topic(metadata, name)
    current = len(topic.partitions)
    if total <= current:
        raise ControllerError("INVALID_PARTITIONS", f"topic {name!r} has {current} partitions; it can only grow")
    candidates = [b for b in metadata.live_brokers() if not metadata.brokers[b].draining]
    try:
        placements = place_replicas(
            total - current,
            topic.replication_factor,
            candidates,
            {b: metadata.brokers[b].rack for b in candidates},
            first_partition=current,
        )
    except PlacementError as exc:
        raise ControllerError("INVALID_REPLICATION_FACTOR", str(exc)) from None
    added = tuple(PartitionState(replicas, replicas[0], 0, replicas) for replicas in placements)
    return metadata.with_topic(replace(topic, partitions=topic.partitions + added), name)


def alter_configs(metadata: ClusterMetadata, name: str, configs: Mapping[str, str]) -> ClusterMetadata:
    topic = _topic(metadata, name)
    return metadata.with_topic(replace(topic, configs=dict(configs)), name)


def delete_topic(metadata: ClusterMetadata, name: str) -> ClusterMetadata:
    _topic(metadata, name)
    return metadata.with_topic(None, name)


def _topic(metadata: ClusterMetadata, name: str) -> TopicInfo:
    topic = metadata.topics.get(name)
    if topic is None:
        raise ControllerError("UNKNOWN_TOPIC_OR_PARTITION", f"topic {name!r} does not exist")
    return topic


# -- ISR changes (AlterPartition) --------------------------------------------------------------------
def alter_partition(
    metadata: ClusterMetadata,
    topic_name: str,
    index: int,
    *,
    leader: int,
    leader_epoch: int,
    partition_epoch: int,
    isr: Iterable[int],
) -> ClusterMetadata:
    """The leader asks to change its ISR; refused unless it still leads at that epoch and state."""
    topic = _topic(metadata, topic_name)
    if not 0 <= index < len(topic.partitions):
        raise ControllerError("UNKNOWN_TOPIC_OR_PARTITION", f"{topic_name}-{index} does not exist")
    state = topic.partitions[index]
    if state.leader != leader or state.leader_epoch != leader_epoch:
        raise ControllerError(
            "FENCED_LEADER_EPOCH",
            f"{topic_name}-{index}: broker {leader} at epoch {leader_epoch} is not the leader "
            f"(leader {state.leader}, epoch {state.leader_epoch})",
        )
    if state.partition_epoch != partition_epoch:
        raise ControllerError(
            "INVALID_UPDATE_VERSION",
            f"{topic_name}-{index}: partition epoch {partition_epoch} is stale (now {state.partition_epoch})",
        )
    new_isr = tuple(dict.fromkeys(isr))
    eligible = set(state.replicas) | set(state.adding)
    if leader not in new_isr or not set(new_isr) <= eligible:
        raise ControllerError("INVALID_REQUEST", f"ISR {list(new_isr)} must hold the leader and only replicas")
    live = set(metadata.live_brokers())
    added = set(new_isr) - set(state.isr)
    if added - live:
        raise ControllerError("INELIGIBLE_REPLICA", f"brokers {sorted(added - live)} are fenced")
    return metadata.with_partition(topic_name, index, state.with_change(isr=new_isr))


# -- reassignment ------------------------------------------------------------------------------------
def start_reassignment(
    metadata: ClusterMetadata, targets: Mapping[tuple[str, int], tuple[int, ...]]
) -> ClusterMetadata:
    """Begin moving partitions to ``targets``: new replicas are added and start catching up."""
    updated = metadata
    for (name, index), target in targets.items():
        state = _topic(updated, name).partitions[index]
        if tuple(target) == state.replicas and not state.adding:
            continue
        adding = tuple(b for b in target if b not in state.replicas)
        removing = tuple(b for b in state.replicas if b not in target)
        replicas = tuple(target) + removing  # old replicas stay until the switch
        updated = updated.with_partition(
            name, index, state.with_change(replicas=replicas, adding=adding, removing=removing)
        )
    return updated


def advance_reassignments(metadata: ClusterMetadata) -> ClusterMetadata:
    """Finish reassignments whose new replicas have all joined the ISR: switch, re-elect, drop the old."""
    live = set(metadata.live_brokers())

    def advance(topic: TopicInfo, state: PartitionState) -> PartitionState:
        if not state.adding and not state.removing:
            return state
        if not set(state.adding) <= set(state.isr):
            return state
        target = tuple(b for b in state.replicas if b not in state.removing)
        isr = tuple(b for b in state.isr if b in target) or target[:1]
        switched = state.with_change(replicas=target, isr=isr, adding=(), removing=())
        if switched.leader not in target:
            switched = elect(replace(switched, leader=NO_LEADER), live, unclean=False)
        return switched

    return _map_partitions(metadata, advance)


# -- producer ids ------------------------------------------------------------------------------------
def allocate_producer_ids(metadata: ClusterMetadata, count: int) -> tuple[ClusterMetadata, int]:
    """Hand out ``count`` producer ids; returns the metadata that records it and the first id of the block."""
    if count < 1:
        raise ControllerError("INVALID_REQUEST", f"count must be positive, got {count}")
    start = metadata.next_producer_id
    if start + count > (1 << 63) - 1:
        raise ControllerError("UNKNOWN_SERVER_ERROR", "producer ids are exhausted")
    return replace(metadata, next_producer_id=start + count), start


def reassigning(metadata: ClusterMetadata) -> bool:
    return any(state.adding or state.removing for topic in metadata.topics.values() for state in topic.partitions)


def hosted_by(metadata: ClusterMetadata, broker_id: int) -> list[tuple[str, int]]:
    return [
        (name, index)
        for name, topic in sorted(metadata.topics.items())
        for index, state in enumerate(topic.partitions)
        if broker_id in state.replicas
    ]
