"""Malformed group requests get a 4xx with a Kafka-named code and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .helpers import Member, describe, error, unique_group


@pytest.fixture
def topic(http: httpx.Client) -> str:
    from conftest import unique_topic

    name = unique_topic("val")
    assert http.post("/v1/topics", json={"name": name, "partitions": 2}).status_code == 201
    return name


def _beat(http: httpx.Client, group: str, body: Any) -> httpx.Response:
    return http.post(f"/v1/groups/{group}/heartbeat", json=body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"topics": ["t"]}, "INVALID_REQUEST"),  # no member_epoch
        ({"member_epoch": 0}, "INVALID_REQUEST"),  # a join must name its topics
        ({"member_epoch": 3}, "INVALID_REQUEST"),  # no member_id
        ({"member_epoch": -3, "member_id": "m"}, "INVALID_REQUEST"),
        ({"member_epoch": "0", "topics": ["t"]}, "INVALID_REQUEST"),
        ({"member_epoch": True, "topics": ["t"]}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": "t"}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["bad name"]}, "INVALID_TOPIC_EXCEPTION"),
        ({"member_epoch": 0, "topics": ["t"], "surprise": 1}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["t"], "member_id": ""}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["t"], "instance_id": "x" * 300}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["t"], "rebalance_timeout_ms": 10}, "INVALID_REQUEST"),  # below the minimum
        ({"member_epoch": 0, "topics": ["t"], "owned": [{"partitions": [0]}]}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["t"], "owned": [{"topic": "t", "partitions": [-1]}]}, "INVALID_REQUEST"),
        ({"member_epoch": 0, "topics": ["t"], "assignor": "roundrobin"}, "UNSUPPORTED_ASSIGNOR"),
        ([1, 2], "INVALID_REQUEST"),
    ],
)
def test_bad_heartbeats(http: httpx.Client, body: Any, expected: str) -> None:
    group = unique_group()
    assert error(_beat(http, group, body)) == (400, expected)
    assert error(http.get(f"/v1/groups/{group}")) == (404, "GROUP_ID_NOT_FOUND")  # nothing was created


def test_bad_group_ids_and_bodies(http: httpx.Client) -> None:
    for bad in ("has space", "x" * 250, "caf%C3%A9"):
        assert error(_beat(http, bad, {"member_epoch": 0, "topics": ["t"]})) == (400, "INVALID_GROUP_ID")
        assert error(http.get(f"/v1/groups/{bad}")) == (400, "INVALID_GROUP_ID")
    group = unique_group()
    not_json = http.post(f"/v1/groups/{group}/heartbeat", content=b"{}", headers={"content-type": "text/plain"})
    assert error(not_json) == (415, "UNSUPPORTED_MEDIA_TYPE")
    broken = http.post(f"/v1/groups/{group}/heartbeat", content=b"{", headers={"content-type": "application/json"})
    assert error(broken) == (400, "INVALID_REQUEST")


def test_heartbeats_refused_by_the_group(http: httpx.Client, topic: str) -> None:
    group = unique_group()
    assert error(_beat(http, group, {"member_id": "nobody", "member_epoch": 1})) == (404, "UNKNOWN_MEMBER_ID")
    member = Member(http, group, [topic])
    member.join()
    ahead = _beat(http, group, {"member_id": member.member_id, "member_epoch": member.epoch + 1})
    assert error(ahead) == (409, "FENCED_MEMBER_EPOCH")
    assert error(_beat(http, group, {"member_id": member.member_id, "member_epoch": -2})) == (400, "INVALID_REQUEST")
    switch = _beat(http, group, {"member_epoch": 0, "topics": [topic], "assignor": "range"})
    assert error(switch) == (400, "INVALID_REQUEST")  # the assignor changes only while the group is empty
    [entry] = describe(http, group)["members"]
    assert entry["member_id"] == member.member_id and entry["member_epoch"] == member.epoch


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, (400, "INVALID_REQUEST")),
        ({"offsets": []}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 0}]}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 0, "offset": -1}]}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 0, "offset": 1, "extra": 1}]}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 0, "offset": 1, "metadata": "m" * 4097}]}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 0, "offset": 1}] * 2}, (400, "INVALID_REQUEST")),
        ({"member_id": "m", "offsets": [{"topic": "T", "partition": 0, "offset": 1}]}, (400, "INVALID_REQUEST")),
        ({"offsets": [{"topic": "T", "partition": 5, "offset": 1}]}, (404, "UNKNOWN_TOPIC_OR_PARTITION")),
        ({"offsets": [{"topic": "missing-topic", "partition": 0, "offset": 1}]}, (404, "UNKNOWN_TOPIC_OR_PARTITION")),
    ],
)
def test_bad_commits(http: httpx.Client, topic: str, body: dict[str, Any], expected: tuple[int, str]) -> None:
    group = unique_group()
    for entry in body.get("offsets", []):
        if entry.get("topic") == "T":
            entry["topic"] = topic
    assert error(http.post(f"/v1/groups/{group}/offsets", json=body)) == expected
    assert http.get(f"/v1/groups/{group}/offsets").json() == {"offsets": []}
