"""Server-side partition assignors of KIP-848: ``uniform`` (sticky, balanced) and ``range``.

Pure functions: members with their subscriptions and the partition counts go in, a target assignment
comes out. The coordinator then moves members towards that target without ever letting two members
own one partition (see :mod:`.group`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set

TopicPartition = tuple[str, int]
Assignment = dict[str, set[TopicPartition]]
Assignor = Callable[[Mapping[str, Set[str]], Mapping[str, int], Mapping[str, Set[TopicPartition]]], Assignment]


def _subscribed_partitions(
    subscriptions: Mapping[str, Set[str]], partition_counts: Mapping[str, int]
) -> list[TopicPartition]:
    topics = sorted({topic for topics in subscriptions.values() for topic in topics if topic in partition_counts})
    return [(topic, partition) for topic in topics for partition in range(partition_counts[topic])]


def uniform(
    subscriptions: Mapping[str, Set[str]],
    partition_counts: Mapping[str, int],
    current: Mapping[str, Set[TopicPartition]],
) -> Assignment:
    """Balanced and sticky: members keep what they own, the rest is dealt to the least loaded eligible
    member, then single moves from the most to the least loaded even out the counts (max - min <= 1
    when the subscriptions allow it). Only those moves take a partition from its owner."""
    members = sorted(subscriptions)
    result: Assignment = {member: set() for member in members}
    if not members:
        return result
    wanted = _subscribed_partitions(subscriptions, partition_counts)
    eligible = {tp: [m for m in members if tp[0] in subscriptions[m]] for tp in wanted}
    owner: dict[TopicPartition, str] = {}
    for member in members:
        for tp in sorted(current.get(member, ())):
            if tp in eligible and member in eligible[tp] and tp not in owner:
                owner[tp] = member
                result[member].add(tp)

    for tp in wanted:
        if tp not in owner:
            member = min(eligible[tp], key=lambda m: (len(result[m]), m))
            owner[tp] = member
            result[member].add(tp)

    _balance(result, eligible, members)
    return result


def _balance(result: Assignment, eligible: Mapping[TopicPartition, list[str]], members: list[str]) -> None:
    """Move one partition at a time from the most to the least loaded member that may take it."""
    while True:
        by_load = sorted(members, key=lambda m: (len(result[m]), m))
        moved = False
        for receiver in by_load:
            for giver in reversed(by_load):
                if len(result[giver]) - len(result[receiver]) <= 1:
                    break
                candidates = sorted(tp for tp in result[giver] if receiver in eligible[tp])
                if candidates:
                    tp = candidates[-1]
                    result[giver].discard(tp)
                    result[receiver].add(tp)
                    moved = True
                    break
            if moved:
                break
        if not moved:
            return


def range_(
    subscriptions: Mapping[str, Set[str]],
    partition_counts: Mapping[str, int],
    current: Mapping[str, Set[TopicPartition]],
) -> Assignment:
    """Kafka's range: per topic, partitions in order over the subscribed members sorted by id, the first
    members getting one extra; co-partitioned topics land together. Not sticky by design."""
    del current
    result: Assignment = {member: set() for member in subscriptions}
    for topic in sorted({topic for topics in subscriptions.values() for topic in topics}):
        count = partition_counts.get(topic, 0)
        takers = sorted(member for member, topics in subscriptions.items() if topic in topics)
        if not count or not takers:
            continue
        share, extra = divmod(count, len(takers))
        start = 0
        for index, member in enumerate(takers):
            size = share + (1 if index < extra else 0)
            result[member].update((topic, partition) for partition in range(start, start + size))
            start += size
    return result


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform, "sticky": uniform, "range": range_}
DEFAULT_ASSIGNOR = "uniform"
