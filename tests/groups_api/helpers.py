"""A consumer-group member as a client sees it, and small HTTP helpers for the group endpoints."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from typing import Any

import httpx

TopicPartition = tuple[str, int]
_ids = itertools.count()


def unique_group(prefix: str = "g") -> str:
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def partitions_of(assignment: Iterable[dict[str, Any]]) -> set[TopicPartition]:
    """``[{"topic", "partitions"}]`` as a set of (topic, partition)."""
    return {(entry["topic"], index) for entry in assignment for index in entry["partitions"]}


def as_assignment(partitions: Iterable[TopicPartition]) -> list[dict[str, Any]]:
    by_topic: dict[str, list[int]] = {}
    for topic, index in sorted(partitions):
        by_topic.setdefault(topic, []).append(index)
    return [{"topic": topic, "partitions": indexes} for topic, indexes in by_topic.items()]


def error(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error_code"]


def describe(http: httpx.Client, group: str) -> dict[str, Any]:
    response = http.get(f"/v1/groups/{group}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def committed(http: httpx.Client, group: str) -> dict[TopicPartition, int]:
    response = http.get(f"/v1/groups/{group}/offsets")
    assert response.status_code == 200, response.text
    return {(o["topic"], o["partition"]): o["offset"] for o in response.json()["offsets"]}


class Member:
    """One consumer process: what the broker last gave it, and what it is actually still reading.

    ``holding`` is what the process consumes. A prompt member drops revoked partitions before its next
    heartbeat (the contract); a slow one keeps reading them and says so in ``owned``.
    """

    def __init__(self, http: httpx.Client, group: str, topics: Iterable[str], instance_id: str | None = None) -> None:
        self.http = http
        self.group = group
        self.topics = sorted(topics)
        self.instance_id = instance_id
        self.member_id: str | None = None
        self.epoch = 0
        self.assignment: set[TopicPartition] = set()
        self.holding: set[TopicPartition] = set()

    def send(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/v1/groups/{self.group}/heartbeat", json=body)

    def _apply(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        self.member_id = answer["member_id"]
        self.epoch = answer["member_epoch"]
        self.assignment = partitions_of(answer["assignment"])
        self.holding |= self.assignment
        return answer

    def join(self, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"member_epoch": 0, "topics": self.topics, **extra}
        if self.instance_id is not None:
            body["instance_id"] = self.instance_id
        self.holding = set()  # a (re)starting process reads nothing yet
        return self._apply(self.send(body))

    def heartbeat(self, *, release: bool = True, report_owned: bool = True, **extra: Any) -> dict[str, Any]:
        """``release``: stop reading revoked partitions first (and commit them, in a real consumer)."""
        if release:
            self.holding = set(self.assignment)
        body: dict[str, Any] = {"member_id": self.member_id, "member_epoch": self.epoch, **extra}
        if report_owned or not release:
            body["owned"] = as_assignment(self.holding)
        return self._apply(self.send(body))

    def leave(self, epoch: int = -1) -> dict[str, Any]:
        response = self.send({"member_id": self.member_id, "member_epoch": epoch})
        assert response.status_code == 200, response.text
        self.holding = set()
        self.assignment = set()
        return dict(response.json())

    def commit(self, offsets: dict[TopicPartition, int], epoch: int | None = None) -> httpx.Response:
        return self.http.post(
            f"/v1/groups/{self.group}/offsets",
            json={
                "member_id": self.member_id,
                "member_epoch": self.epoch if epoch is None else epoch,
                "offsets": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(offsets.items())],
            },
        )


def settle(members: Iterable[Member], rounds: int = 10) -> None:
    """Heartbeat every member, releasing promptly, until the group is stable (or ``rounds`` pass)."""
    members = list(members)
    if not members:
        return
    for _ in range(rounds):
        for member in members:
            member.heartbeat()
        if describe(members[0].http, members[0].group)["state"] == "Stable":
            return


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text page, or None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return None
