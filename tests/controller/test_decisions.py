"""The controller's decisions, pure: placement, elections, fencing, ISR changes, reassignment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gafka_broker.controller import decisions
from gafka_broker.controller.controller import Controller, ControllerSettings
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import NO_LEADER, ClusterMetadata, PartitionState
from gafka_broker.controller.placement import PlacementError, place_replicas, rebalance_targets
from gafka_broker.controller.store import FileMetadataStore, MemoryMetadataStore, VersionConflictError


def _cluster(brokers: int = 3, now: int = 0, imbalance_check_ms: int = 1000) -> Controller:
    settings = ControllerSettings(broker_session_timeout_ms=1000, leader_imbalance_check_interval_ms=imbalance_check_ms)
    controller = Controller(MemoryMetadataStore(), settings, "c1")
    for broker_id in range(brokers):
        controller.register_broker(broker_id, f"http://127.0.0.1:{9092 + broker_id}", None, f"inc-{broker_id}", now)
    return controller


# -- placement -------------------------------------------------------------------------------------
@given(partitions=st.integers(1, 60), rf=st.integers(1, 5), brokers=st.integers(1, 7), start=st.integers(0, 100))
def test_placement_uses_distinct_brokers_and_spreads_leaders(
    partitions: int, rf: int, brokers: int, start: int
) -> None:
    if rf > brokers:
        with pytest.raises(PlacementError):
            place_replicas(partitions, rf, list(range(brokers)))
        return
    placements = place_replicas(partitions, rf, list(range(brokers)), start=start)
    assert all(len(set(replicas)) == rf for replicas in placements)
    leaders = [replicas[0] for replicas in placements]
    counts = [leaders.count(b) for b in range(brokers)]
    assert max(counts) - min(counts) <= 1
    replica_counts = [sum(b in replicas for replicas in placements) for b in range(brokers)]
    assert max(replica_counts) - min(replica_counts) <= rf


def test_placement_spreads_racks() -> None:
    racks = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    for replicas in place_replicas(12, 3, list(racks), racks):
        assert len({racks[b] for b in replicas}) == 3


def test_rebalance_targets_move_little_and_spread_evenly() -> None:
    current = {("t", i): replicas for i, replicas in enumerate(place_replicas(12, 3, [0, 1, 2]))}
    targets = rebalance_targets(current, [0, 1, 2, 3, 4])
    loads = [sum(b in r for r in targets.values()) for b in range(5)]
    assert max(loads) - min(loads) <= 1
    moved = sum(len(set(current[k]) - set(targets[k])) for k in current)
    assert moved <= 36 - 3 * 7  # at most what the new brokers must take
    drained = rebalance_targets(current, [0, 1, 2, 3, 4, 5])
    assert all(len(set(r)) == 3 for r in drained.values())
    with pytest.raises(PlacementError):
        rebalance_targets(current, [0, 1])


def test_rebalance_spreads_each_topic_not_just_the_total() -> None:
    """Scale 3 -> 5 with a big internal topic beside a small one: the small one must spread too (balancing only
    the totals piled it onto the new brokers)."""
    current = {("__consumer_offsets", i): r for i, r in enumerate(place_replicas(50, 3, [0, 1, 2]))}
    current |= {("payments", i): r for i, r in enumerate(place_replicas(6, 3, [0, 1, 2]))}
    targets = rebalance_targets(current, [0, 1, 2, 3, 4])
    for topic in ("__consumer_offsets", "payments"):
        loads = [sum(b in r for (t, _), r in targets.items() if t == topic) for b in range(5)]
        assert max(loads) - min(loads) <= 1, (topic, loads)


def test_rebalance_keeps_replicas_on_distinct_racks() -> None:
    """5 brokers on 3 racks: every partition keeps one replica per rack, so the lone broker of rack c holds one
    replica of each partition and the others share the rest evenly within their rack."""
    racks = {0: "a", 1: "b", 2: "c", 3: "a", 4: "b"}
    current = {("payments", i): r for i, r in enumerate(place_replicas(12, 3, [0, 1, 2], racks))}
    targets = rebalance_targets(current, [0, 1, 2, 3, 4], racks)
    for replicas in targets.values():
        assert len({racks[b] for b in replicas}) == 3, replicas
    loads = {b: sum(b in r for r in targets.values()) for b in racks}
    assert loads == {0: 6, 1: 6, 2: 12, 3: 6, 4: 6}


@given(
    topics=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 3)), min_size=1, max_size=4),
    before=st.integers(3, 6),
    after=st.integers(3, 7),
)
@example(topics=[(3, 3), (1, 2), (7, 1)], before=4, after=7)  # a broker moved out and back into another slot
def test_rebalance_balances_every_topic_and_the_cluster(topics: list[tuple[int, int]], before: int, after: int) -> None:
    current = {}
    for n, (partitions, rf) in enumerate(topics):
        for i, replicas in enumerate(place_replicas(partitions, rf, list(range(before)), start=n)):
            current[(f"t{n}", i)] = replicas
    allowed = list(range(after))
    targets = rebalance_targets(current, allowed)
    assert targets.keys() == current.keys()
    for key, replicas in targets.items():
        assert len(set(replicas)) == len(current[key]) and set(replicas) <= set(allowed)
        kept = set(current[key]) & set(replicas)
        assert all(current[key].index(b) == replicas.index(b) for b in kept)  # moved in place: order kept
    for n in range(len(topics)):
        loads = [sum(b in r for (t, _), r in targets.items() if t == f"t{n}") for b in allowed]
        assert max(loads) - min(loads) <= 1
    totals = [sum(b in r for r in targets.values()) for b in allowed]
    assert max(totals) - min(totals) <= 1


# -- elections and fencing -------------------------------------------------------------------------
def test_leader_fails_over_within_the_isr_and_comes_back_preferred() -> None:
    controller = _cluster()
    controller.create_topic("orders", 3, 3, {"min.insync.replicas": "2"})
    metadata = controller.metadata()
    state = metadata.partition("orders", 0)
    assert state is not None and state.leader == state.replicas[0] and set(state.isr) == {0, 1, 2}
    victim = state.leader
    for broker_id in {0, 1, 2} - {victim}:
        controller.heartbeat(broker_id, f"inc-{broker_id}", 900)
    after = controller.tick(1500)  # also the controller's first imbalance check: the next is due at 2500
    moved = after.partition("orders", 0)
    assert moved is not None and moved.leader != victim and moved.leader in moved.isr
    assert victim not in moved.isr and moved.leader_epoch == state.leader_epoch + 1
    assert after.brokers[victim].fenced
    # the broker restarts, catches up (the leader puts it back into the ISR), and leadership returns
    controller.register_broker(victim, "http://x", None, "inc-new", 1600)
    current = controller.metadata().partition("orders", 0)
    assert current is not None
    controller.alter_partition(
        "orders",
        0,
        leader=current.leader,
        leader_epoch=current.leader_epoch,
        partition_epoch=current.partition_epoch,
        isr=[*current.isr, victim],
    )
    for broker_id in range(3):
        controller.heartbeat(broker_id, "inc-new" if broker_id == victim else f"inc-{broker_id}", 1700)
    # in the ISR but not (reported) caught up, and before the imbalance check: leadership stays
    assert controller.tick(1700).partition("orders", 0) == controller.metadata().partition("orders", 0)
    assert controller.metadata().partition("orders", 0).leader != victim  # type: ignore[union-attr]
    controller.heartbeat(victim, "inc-new", 2000, caught_up=[("orders", 0)])
    early = controller.tick(2000).partition("orders", 0)
    assert early is not None and early.leader != victim  # caught up, but the interval has not passed
    back = controller.tick(2600).partition("orders", 0)
    assert back is not None and back.leader == victim and back.leader_epoch == state.leader_epoch + 2


def test_preferred_leadership_only_returns_to_a_caught_up_replica() -> None:
    """The issue's case: a restarted broker back in the ISR but not caught up (it may not know the high
    watermark yet) does not get leadership at the imbalance check; once it reports itself caught up, it does."""
    controller = _cluster(imbalance_check_ms=500)
    controller.create_topic("t", 1, 3, {})
    state = controller.metadata().partition("t", 0)
    assert state is not None
    preferred = state.leader
    controller.tick(0)
    controller.register_broker(preferred, "http://x", None, "again", 100)  # a restart: leadership moves
    moved = controller.metadata().partition("t", 0)
    assert moved is not None and moved.leader != preferred
    controller.alter_partition(
        "t",
        0,
        leader=moved.leader,
        leader_epoch=moved.leader_epoch,
        partition_epoch=moved.partition_epoch,
        isr=[*moved.isr, preferred],
    )
    for broker_id in range(3):
        controller.heartbeat(broker_id, "again" if broker_id == preferred else f"inc-{broker_id}", 600)
    stays = controller.tick(600).partition("t", 0)
    assert stays is not None and stays.leader == moved.leader
    controller.heartbeat(preferred, "again", 700, caught_up=[("t", 0)])
    back = controller.tick(1200).partition("t", 0)
    assert back is not None and back.leader == preferred


def test_a_damaged_replica_leaves_the_isr_and_its_leadership_moves() -> None:
    controller = _cluster()
    controller.create_topic("t", 1, 3, {})
    state = controller.metadata().partition("t", 0)
    assert state is not None
    damaged = state.leader
    moved = controller.replica_damaged(damaged, "t", 0).partition("t", 0)
    assert moved is not None and moved.leader != damaged and damaged not in moved.isr
    assert moved.leader_epoch == state.leader_epoch + 1 and moved.leader in state.isr
    # a follower that reports damage only leaves the ISR; the last in-sync replica is never removed
    follower = next(b for b in moved.isr if b != moved.leader)
    shrunk = controller.replica_damaged(follower, "t", 0).partition("t", 0)
    assert shrunk is not None and shrunk.isr == (moved.leader,) and shrunk.leader == moved.leader
    alone = controller.replica_damaged(moved.leader, "t", 0).partition("t", 0)
    assert alone == shrunk


def test_no_unclean_election_by_default() -> None:
    state = PartitionState(replicas=(0, 1, 2), leader=0, leader_epoch=5, isr=(0,))
    offline = decisions.elect(state, live={1, 2})
    assert offline.leader == NO_LEADER and offline.isr == (0,)
    unclean = decisions.elect(state, live={1, 2}, unclean=True)
    assert unclean.leader == 1 and unclean.isr == (1,)


def test_last_in_sync_replica_is_kept_and_leads_again_when_back() -> None:
    controller = _cluster()
    controller.create_topic("t", 1, 3, {})
    state = controller.metadata().partition("t", 0)
    assert state is not None
    leader = state.leader
    others = [b for b in range(3) if b != leader]
    controller.alter_partition(
        "t", 0, leader=leader, leader_epoch=state.leader_epoch, partition_epoch=state.partition_epoch, isr=[leader]
    )
    controller.heartbeat(others[0], f"inc-{others[0]}", 1400)
    controller.heartbeat(others[1], f"inc-{others[1]}", 1400)
    offline = controller.tick(1500).partition("t", 0)
    assert offline is not None and offline.leader == NO_LEADER and offline.isr == (leader,)
    controller.heartbeat(leader, f"inc-{leader}", 1600)
    again = controller.metadata().partition("t", 0)
    assert again is not None and again.leader == leader


def test_quick_restart_counts_as_absence() -> None:
    controller = _cluster()
    controller.create_topic("t", 3, 3, {})
    led = [i for i, s in enumerate(controller.metadata().topics["t"].partitions) if s.leader == 1]
    assert led
    metadata = controller.register_broker(1, "http://127.0.0.1:9093", None, "inc-1-restarted", 10)
    for index in led:
        state = metadata.partition("t", index)
        assert state is not None and state.leader != 1 and 1 not in state.isr


def test_alter_partition_is_compare_and_set() -> None:
    controller = _cluster()
    controller.create_topic("t", 1, 3, {})
    state = controller.metadata().partition("t", 0)
    assert state is not None
    with pytest.raises(ControllerError) as error:
        controller.alter_partition(
            "t",
            0,
            leader=state.leader,
            leader_epoch=state.leader_epoch + 1,
            partition_epoch=state.partition_epoch,
            isr=[state.leader],
        )
    assert error.value.code == "FENCED_LEADER_EPOCH"
    controller.alter_partition(
        "t",
        0,
        leader=state.leader,
        leader_epoch=state.leader_epoch,
        partition_epoch=state.partition_epoch,
        isr=[state.leader],
    )
    with pytest.raises(ControllerError) as error:  # same request again: its partition epoch is now stale
        controller.alter_partition(
            "t",
            0,
            leader=state.leader,
            leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch,
            isr=list(state.isr),
        )
    assert error.value.code == "INVALID_UPDATE_VERSION"
    with pytest.raises(ControllerError):
        controller.alter_partition(
            "t",
            0,
            leader=state.leader,
            leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch + 1,
            isr=[9],
        )


def test_controlled_shutdown_hands_leadership_over() -> None:
    controller = _cluster()
    controller.create_topic("t", 6, 3, {})
    metadata = controller.controlled_shutdown(0)
    assert all(state.leader != 0 for state in metadata.topics["t"].partitions)
    # it also leaves the ISRs it follows in, so acks=all does not wait for it (never emptying one)
    assert all(0 not in state.isr for state in metadata.topics["t"].partitions)
    controller.create_topic("alone", 1, 1, {})
    state = controller.controlled_shutdown(controller.metadata().topics["alone"].partitions[0].leader)
    assert len(state.topics["alone"].partitions[0].isr) == 1


def test_a_broker_in_controlled_shutdown_is_never_put_back_into_an_isr() -> None:
    """KIP-841: it keeps fetching until it stops (so no acks=all waits on it before the leaders learn the new
    ISR), but no leader may add it back, and no election picks it; a new process of it starts afresh."""
    controller = _cluster()
    controller.create_topic("t", 3, 3, {})
    metadata = controller.controlled_shutdown(2)
    assert metadata.brokers[2].shutting_down and 2 not in metadata.live_brokers()
    state = metadata.partition("t", 0)
    assert state is not None and 2 not in state.isr
    with pytest.raises(ControllerError) as error:
        controller.alter_partition(
            "t",
            0,
            leader=state.leader,
            leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch,
            isr=[*state.isr, 2],
        )
    assert error.value.code == "INELIGIBLE_REPLICA"
    assert ClusterMetadata.from_json(metadata.to_json()).brokers[2].shutting_down
    restarted = controller.register_broker(2, "http://x", None, "inc-2-again", 10)
    assert not restarted.brokers[2].shutting_down and 2 in restarted.live_brokers()


def test_producer_ids_are_handed_out_in_disjoint_blocks(tmp_path: Path) -> None:
    store = FileMetadataStore(tmp_path / "cluster.json")
    first = Controller(store).allocate_producer_ids(1000)
    second = Controller(store).allocate_producer_ids(10)  # a restarted controller carries on from the store
    assert (first, second) == (0, 1000)
    assert Controller(store).metadata().next_producer_id == 1010
    with pytest.raises(ControllerError):
        decisions.allocate_producer_ids(store.load() or ClusterMetadata("c"), 0)


def test_topic_rules() -> None:
    controller = _cluster(brokers=2)
    with pytest.raises(ControllerError) as error:
        controller.create_topic("t", 1, 3, {})
    assert error.value.code == "INVALID_REPLICATION_FACTOR"
    controller.create_topic("t", 2, 2, {})
    with pytest.raises(ControllerError) as error:
        controller.create_topic("t", 2, 2, {})
    assert error.value.code == "TOPIC_ALREADY_EXISTS"
    with pytest.raises(ControllerError):
        controller.add_partitions("t", 2)
    assert len(controller.add_partitions("t", 5).topics["t"].partitions) == 5
    assert "t" not in controller.delete_topic("t").topics


def test_reassignment_adds_catches_up_switches_and_drops() -> None:
    controller = _cluster(brokers=3)
    controller.create_topic("t", 1, 2, {})
    controller.register_broker(3, "http://n", None, "inc-3", 0)
    state = controller.metadata().partition("t", 0)
    assert state is not None
    target = (3, state.replicas[1])
    metadata = decisions.start_reassignment(controller.metadata(), {("t", 0): target})
    moving = metadata.partition("t", 0)
    assert moving is not None and moving.adding == (3,) and state.replicas[0] in moving.removing
    assert decisions.advance_reassignments(metadata) == metadata  # not caught up yet
    caught_up = metadata.with_partition("t", 0, moving.with_change(isr=(*moving.isr, 3)))
    done = decisions.advance_reassignments(caught_up).partition("t", 0)
    assert done is not None and done.replicas == target and not done.adding and not done.removing
    assert done.leader in target and set(done.isr) <= set(target)


def test_drain_refuses_to_go_below_the_replication_factor() -> None:
    controller = _cluster(brokers=3)
    controller.create_topic("t", 3, 3, {})
    with pytest.raises(ControllerError):
        controller.drain([2])
    controller.register_broker(3, "http://n", None, "inc-3", 0)
    metadata = controller.drain([0])
    assert metadata.brokers[0].draining
    assert all(0 in s.removing for s in metadata.topics["t"].partitions if 0 in s.replicas)


def test_file_store_compare_and_set(tmp_path: Path) -> None:
    store = FileMetadataStore(tmp_path / "meta.json")
    assert store.load() is None
    first = store.compare_and_set(0, ClusterMetadata("c"))
    assert first.version == 1 and store.load() == first
    with pytest.raises(VersionConflictError):
        store.compare_and_set(0, ClusterMetadata("c"))
    controller = Controller(store)
    controller.register_broker(0, "http://a", None, "i", 0)
    controller.create_topic("t", 2, 1, {"retention.ms": "1000"})
    again = Controller(FileMetadataStore(tmp_path / "meta.json")).metadata()
    assert again.topics["t"].configs == {"retention.ms": "1000"} and len(again.topics["t"].partitions) == 2


class ClusterMachine(RuleBasedStateMachine):
    """Brokers die, return, restart and leaders change their ISR in random order."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.controller = _cluster(brokers=4)
        self.controller.create_topic("t", 6, 3, {})
        self.incarnations = {b: f"inc-{b}" for b in range(4)}
        self.alive = {0, 1, 2, 3}
        self.epochs = {i: s.leader_epoch for i, s in enumerate(self.controller.metadata().topics["t"].partitions)}

    @rule(broker=st.integers(0, 3))
    def kill(self, broker: int) -> None:
        self.alive.discard(broker)

    @rule(broker=st.integers(0, 3), restart=st.booleans())
    def revive(self, broker: int, restart: bool) -> None:
        if restart:
            self.incarnations[broker] += "'"
            self.controller.register_broker(broker, "http://x", None, self.incarnations[broker], self.now)
            self.alive.add(broker)
        elif broker in self.alive or not self.controller.metadata().brokers[broker].fenced:
            self.alive.add(broker)

    @rule(step=st.integers(100, 1500))
    def time_passes(self, step: int) -> None:
        self.now += step
        for broker in self.alive:
            try:
                self.controller.heartbeat(broker, self.incarnations[broker], self.now)
            except ControllerError:
                self.controller.register_broker(broker, "http://x", None, self.incarnations[broker], self.now)
        self.controller.tick(self.now)

    @rule(index=st.integers(0, 5), data=st.data())
    def leader_changes_isr(self, index: int, data: st.DataObject) -> None:
        metadata = self.controller.metadata()
        state = metadata.partition("t", index)
        assert state is not None
        if state.leader == NO_LEADER:
            return
        others = [b for b in state.replicas if b != state.leader and b in metadata.live_brokers()]
        chosen = data.draw(st.lists(st.sampled_from(others), unique=True) if others else st.just([]))
        self.controller.alter_partition(
            "t",
            index,
            leader=state.leader,
            leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch,
            isr=[state.leader, *chosen],
        )

    @invariant()
    def partitions_are_sane(self) -> None:
        metadata = self.controller.metadata()
        live = set(metadata.live_brokers())
        for index, state in enumerate(metadata.topics["t"].partitions):
            assert state.isr, "an ISR is never empty"
            assert set(state.isr) <= set(state.replicas)
            assert state.leader_epoch >= self.epochs[index]
            self.epochs[index] = state.leader_epoch
            if state.leader != NO_LEADER:
                assert state.leader in state.isr and state.leader in live
            else:
                assert not set(state.isr) & live, "offline although an in-sync replica is alive"


ClusterMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestClusterMachine = ClusterMachine.TestCase
