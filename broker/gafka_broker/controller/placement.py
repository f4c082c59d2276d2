"""Replica placement: spread each partition's replicas over distinct brokers, and racks when known.

Kafka's rack-aware rule in spirit: order brokers by alternating racks, start each partition one broker
further along, so leaders (first replicas) and followers spread evenly and no two replicas of a partition
share a broker (or a rack, while racks outnumber the replication factor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class PlacementError(ValueError):
    """Not enough brokers for the replication factor."""


def rack_alternating(brokers: Sequence[int], racks: Mapping[int, str | None]) -> list[int]:
    """Brokers ordered so consecutive ones sit on different racks where possible: r1b1, r2b1, r1b2, r2b2..."""
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(brokers):
        by_rack.setdefault(racks.get(broker) or "", []).append(broker)
    ordered: list[int] = []
    queues = [by_rack[rack] for rack in sorted(by_rack)]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def place_replicas(
    partitions: int,
    replication_factor: int,
    brokers: Sequence[int],
    racks: Mapping[int, str | None] | None = None,
    *,
    first_partition: int = 0,
    start: int = 0,
) -> list[tuple[int, ...]]:
    """Replica lists for partitions ``first_partition .. first_partition + partitions - 1``."""
    if replication_factor < 1:
        raise PlacementError("replication factor must be at least 1")
    if replication_factor > len(brokers):
        raise PlacementError(
            f"replication factor {replication_factor} is larger than the {len(brokers)} available brokers"
        )
    ordered = rack_alternating(brokers, racks or {})
    count = len(ordered)
    placements: list[tuple[int, ...]] = []
    for index in range(first_partition, first_partition + partitions):
        first = (start + index) % count
        shift = 1 + (index // count) % max(count - 1, 1)  # later rounds vary the follower spacing
        replicas = [ordered[first]]
        step = 0
        while len(replicas) < replication_factor:
            step += 1
            candidate = ordered[(first + step * shift) % count] if count > 1 else ordered[0]
            if candidate in replicas:
                candidate = next(b for b in ordered[first:] + ordered[:first] if b not in replicas)
            replicas.append(candidate)
        placements.append(tuple(replicas))
    return placements


def rebalance_targets(
    current: Mapping[tuple[str, int], tuple[int, ...]],
    brokers: Sequence[int],
    racks: Mapping[int, str | None] | None = None,
) -> dict[tuple[str, int], tuple[int, ...]]:
    """New replica lists that spread every topic, and the cluster as a whole, evenly over ``brokers`` (after a
    scale-up, or to drain the brokers missing from ``brokers``), moving as few replicas as possible.

    1. Replicas on brokers not in ``brokers`` move to the least loaded broker that can take them.
    2. Per topic, one replica at a time moves from the broker holding most of the topic to the one holding least,
       until they differ by at most one (a topic's traffic follows its partitions: balancing only the cluster
       total could pile one busy topic onto the new brokers).
    3. Over all topics, replicas move from the most to the least loaded broker, only where that keeps the topic
       balanced, until totals differ by at most one.

    A move never puts two replicas of a partition on one broker, nor on one rack while enough racks remain to
    avoid it. A replica moves in place, so the preferred leader stays first when it stays at all.
    """
    allowed = sorted(brokers)
    if not allowed:
        raise PlacementError("no broker to place replicas on")
    rack_names = racks or {}

    def rack(broker: int) -> str:
        return rack_names.get(broker) or f"broker-{broker}"  # no rack: a rack of its own

    rack_count = len({rack(b) for b in allowed})
    replicas = {key: list(current[key]) for key in sorted(current)}
    total = dict.fromkeys(allowed, 0)
    by_topic: dict[str, dict[int, int]] = {}
    keys_of: dict[str, list[tuple[str, int]]] = {}
    for (topic, index), members in replicas.items():
        keys_of.setdefault(topic, []).append((topic, index))
        if len(members) > len(allowed):
            raise PlacementError(f"{topic} needs {len(members)} brokers, only {len(allowed)} would remain")
        counts = by_topic.setdefault(topic, dict.fromkeys(allowed, 0))
        for broker in members:
            if broker in total:
                total[broker] += 1
                counts[broker] += 1

    def fits(members: list[int], slot: int, target: int, *, strict: bool = True) -> bool:
        if target in members:
            return False
        others = {rack(b) for i, b in enumerate(members) if i != slot}
        spreadable = rack_count >= len(members)
        return not (strict and spreadable and rack(target) in others)

    def move(key: tuple[str, int], slot: int, target: int) -> None:
        members = replicas[key]
        source = members[slot]
        members[slot] = target
        for counts in (total, by_topic[key[0]]):
            if source in counts:
                counts[source] -= 1
            counts[target] += 1

    for key, members in replicas.items():  # 1. drain
        for slot, broker in enumerate(members):
            if broker in total:
                continue
            counts = by_topic[key[0]]
            order = sorted(allowed, key=lambda b: (counts[b], total[b], b))
            target = next((b for b in order if fits(members, slot, b)), None)
            if target is None:
                target = next(b for b in order if fits(members, slot, b, strict=False))
            move(key, slot, target)

    def best_move(topic: str | None) -> tuple[tuple[str, int], int, int] | None:
        """The first feasible move from a heavier to a lighter broker (by topic, or by total)."""
        load = by_topic[topic] if topic is not None else total
        sources = sorted(allowed, key=lambda b: (-load[b], -total[b], b))
        targets = sorted(allowed, key=lambda b: (load[b], total[b], b))
        for source in sources:
            for target in targets:
                if load[source] - load[target] <= 1:
                    break
                for key in keys_of[topic] if topic is not None else replicas:
                    members = replicas[key]
                    if source not in members:
                        continue
                    if topic is None and by_topic[key[0]][source] <= by_topic[key[0]][target]:
                        continue  # would unbalance the topic
                    slot = members.index(source)
                    if fits(members, slot, target):
                        return key, slot, target
        return None

    for topic in sorted(by_topic):  # 2. each topic
        while (found := best_move(topic)) is not None:
            move(*found)
    while (found := best_move(None)) is not None:  # 3. the cluster
        move(*found)
    return {key: _in_place(current[key], members) for key, members in replicas.items()}


def _in_place(before: Sequence[int], after: Sequence[int]) -> tuple[int, ...]:
    """``after``'s brokers with each one that stays back at its old index: moves may carry a broker out of one
    slot and another move bring it back into a different one, which would change the preferred leader for
    nothing."""
    kept = {broker: index for index, broker in enumerate(before) if broker in after}
    fresh = iter(broker for broker in after if broker not in kept)
    slots = {index: broker for broker, index in kept.items()}
    return tuple(slots[index] if index in slots else next(fresh) for index in range(len(after)))
