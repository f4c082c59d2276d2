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
    """New replica lists that spread load evenly over ``brokers`` (after a scale-up, or to drain the
    brokers missing from ``brokers``), moving as few replicas as possible.

    Replicas on brokers not in ``brokers`` move first; then one replica at a time goes from the most to
    the least loaded broker (one that does not hold that partition yet) until loads differ by at most one.
    The preferred leader stays first when it stays at all.
    """
    del racks  # balance first; rack spread is kept by placement of new topics
    allowed = sorted(brokers)
    if not allowed:
        raise PlacementError("no broker to place replicas on")
    replicas = {key: list(current[key]) for key in sorted(current)}
    load = dict.fromkeys(allowed, 0)
    for key, members in replicas.items():
        if len(members) > len(allowed):
            raise PlacementError(f"{key[0]}-{key[1]} needs {len(members)} brokers, only {len(allowed)} would remain")
        for broker in members:
            if broker in load:
                load[broker] += 1

    def least_loaded(excluded: list[int]) -> int:
        return min((b for b in allowed if b not in excluded), key=lambda b: (load[b], b))

    for members in replicas.values():
        for slot, broker in enumerate(members):
            if broker not in load:
                target = least_loaded(members)
                members[slot] = target
                load[target] += 1
    while True:
        busiest = max(allowed, key=lambda b: (load[b], -b))
        idlest = min(allowed, key=lambda b: (load[b], b))
        if load[busiest] - load[idlest] <= 1:
            break
        movable = [key for key, members in replicas.items() if busiest in members and idlest not in members]
        if not movable:
            break
        members = replicas[movable[-1]]
        members[members.index(busiest)] = idlest
        load[busiest] -= 1
        load[idlest] += 1
    return {key: tuple(members) for key, members in replicas.items()}
