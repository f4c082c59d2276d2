"""The leader's view of its followers, and the pure rules built on it (Kafka's ``Replica`` and ``Partition``).

No I/O and no clock: callers pass ``now_ms``. The rules:

- a follower is *caught up* when it has fetched up to the leader's log end offset, or did so within
  ``replica.lag.time.max.ms`` (``lastCaughtUpTime`` moves to the time of a fetch that reached the leader's
  log end offset as it was at the previous fetch);
- the high watermark is the smallest log end offset over the ISR (and over caught-up replicas about to join
  it), and it only moves while the ISR has at least ``min.insync.replicas`` members;
- a follower outside the ISR may join once it has reached the high watermark and the start of the current
  leader epoch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["UNKNOWN_OFFSET", "ReplicaState", "eligible_to_join", "high_watermark", "out_of_sync"]

UNKNOWN_OFFSET = -1


@dataclass(slots=True)
class ReplicaState:
    """What the leader knows about one follower, from its fetches."""

    broker_id: int
    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = UNKNOWN_OFFSET
    last_fetch_ms: int = 0

    def reset(self, now_ms: int, leader_leo: int, *, in_isr: bool) -> None:
        """On becoming leader: ISR members get a full lag period to show up, others must earn it."""
        self.log_end_offset = UNKNOWN_OFFSET
        self.last_fetch_leader_leo = leader_leo
        self.last_fetch_ms = now_ms
        self.last_caught_up_ms = now_ms if in_isr else 0

    def record_fetch(self, fetch_offset: int, leader_leo: int, now_ms: int) -> None:
        """Kafka's ``Replica.updateFetchState``: the follower has everything below ``fetch_offset``."""
        if fetch_offset >= leader_leo:
            self.last_caught_up_ms = max(self.last_caught_up_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_leo:
            self.last_caught_up_ms = max(self.last_caught_up_ms, self.last_fetch_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_leo = leader_leo
        self.last_fetch_ms = now_ms

    def is_caught_up(self, leader_leo: int, now_ms: int, max_lag_ms: int) -> bool:
        return self.log_end_offset == leader_leo or now_ms - self.last_caught_up_ms <= max_lag_ms


def high_watermark(
    current: int,
    leader_id: int,
    leader_leo: int,
    isr: Collection[int],
    followers: Mapping[int, ReplicaState],
    *,
    min_isr: int,
    now_ms: int,
    max_lag_ms: int,
    eligible: Collection[int] = (),
) -> int:
    """The new high watermark (never below ``current``).

    Bounded by every ISR follower's log end offset (unknown counts as not yet fetched) and by followers
    outside the ISR that are caught up and ``eligible`` to join, so they can reach it and get in.
    """
    if len(isr) < min_isr:
        return current
    candidate = leader_leo
    for broker_id, state in followers.items():
        joining = broker_id not in isr and broker_id in eligible and state.is_caught_up(leader_leo, now_ms, max_lag_ms)
        if broker_id in isr or joining:
            candidate = min(candidate, state.log_end_offset)
    if any(broker_id != leader_id and broker_id not in followers for broker_id in isr):
        return current  # an ISR member we track nothing for: never commit past it blindly
    return max(current, candidate)


def out_of_sync(
    isr: Iterable[int],
    leader_id: int,
    followers: Mapping[int, ReplicaState],
    leader_leo: int,
    now_ms: int,
    max_lag_ms: int,
) -> list[int]:
    """ISR followers that have not caught up within ``max_lag_ms`` (Kafka's ``getOutOfSyncReplicas``)."""
    lagging = []
    for broker_id in isr:
        if broker_id == leader_id:
            continue
        state = followers.get(broker_id)
        if state is None or not state.is_caught_up(leader_leo, now_ms, max_lag_ms):
            lagging.append(broker_id)
    return lagging


def eligible_to_join(state: ReplicaState, high_watermark_: int, epoch_start_offset: int) -> bool:
    """Kafka's ``isFollowerInSync``: reached the high watermark and the start of the leader's epoch."""
    return state.log_end_offset >= high_watermark_ and state.log_end_offset >= epoch_start_offset
