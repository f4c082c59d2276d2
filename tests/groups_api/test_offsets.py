"""Committed offsets over HTTP: epoch fencing, the revoke-then-commit contract, lag, reset and delete rules."""

from __future__ import annotations

import httpx
import pytest

from support import wait_for

from .helpers import Member, committed, describe, error, metric_value, settle, unique_group


def _topic(http: httpx.Client, partitions: int, **configs: str) -> str:
    from conftest import unique_topic

    name = unique_topic("off")
    body: dict[str, object] = {"name": name, "partitions": partitions}
    if configs:
        body["configs"] = configs
    response = http.post("/v1/topics", json=body)
    assert response.status_code == 201, response.text
    return name


def _produce(http: httpx.Client, topic: str, partition: int, count: int, timestamp: int | None = None) -> None:
    records = [{"value": f"v{i}", "partition": partition} for i in range(count)]
    if timestamp is not None:
        for i, record in enumerate(records):
            record["timestamp"] = timestamp + i
    response = http.post(f"/v1/topics/{topic}/records", json={"records": records})
    assert response.status_code == 200, response.text


def _admin_commit(http: httpx.Client, group: str, offsets: dict[tuple[str, int], int]) -> httpx.Response:
    body = {"offsets": [{"topic": t, "partition": p, "offset": o} for (t, p), o in offsets.items()]}
    return http.post(f"/v1/groups/{group}/offsets", json=body)


def test_commit_and_fetch_round_trip(http: httpx.Client) -> None:
    topic, group = _topic(http, 2), unique_group()
    member = Member(http, group, [topic])
    member.join()
    response = http.post(
        f"/v1/groups/{group}/offsets",
        json={
            "member_id": member.member_id,
            "member_epoch": member.epoch,
            "offsets": [{"topic": topic, "partition": 1, "offset": 7, "metadata": "checkpoint"}],
        },
    )
    assert response.status_code == 200, response.text
    [stored] = response.json()["offsets"]
    assert (stored["topic"], stored["partition"], stored["offset"], stored["metadata"]) == (topic, 1, 7, "checkpoint")
    assert http.get(f"/v1/groups/{group}/offsets").json()["offsets"] == [stored]
    assert http.get(f"/v1/groups/{unique_group()}/offsets").json() == {"offsets": []}  # unknown group: none


def test_fenced_stale_and_unknown_commits_are_refused_and_write_nothing(http: httpx.Client) -> None:
    topic, group = _topic(http, 4), unique_group()
    first = Member(http, group, [topic])
    first.join()
    old_epoch = first.epoch
    assert first.commit({(topic, 0): 1}).status_code == 200

    assert error(first.commit({(topic, 0): 2}, epoch=old_epoch + 1)) == (409, "FENCED_MEMBER_EPOCH")
    ghost = http.post(
        f"/v1/groups/{group}/offsets",
        json={
            "member_id": "ghost",
            "member_epoch": old_epoch,
            "offsets": [{"topic": topic, "partition": 0, "offset": 3}],
        },
    )
    assert error(ghost) == (404, "UNKNOWN_MEMBER_ID")
    assert error(_admin_commit(http, group, {(topic, 0): 4})) == (404, "UNKNOWN_MEMBER_ID")  # the group has members

    second = Member(http, group, [topic])
    second.join()
    first.heartbeat()  # asked to give two partitions up: same epoch until it confirms
    assert len(first.assignment) == 2 and first.epoch == old_epoch
    revoked = sorted(first.holding - first.assignment)
    # the contract: commit what is being given up before the next heartbeat; that commit is accepted
    assert first.commit({tp: 5 for tp in revoked}).status_code == 200
    first.heartbeat()  # confirms the release and moves to the new epoch
    assert first.epoch > old_epoch
    second.heartbeat()
    assert second.assignment == set(revoked)

    assert error(first.commit({revoked[0]: 6}, epoch=first.epoch)) == (409, "STALE_MEMBER_EPOCH")  # not its own
    assert error(first.commit({min(first.assignment): 6}, epoch=old_epoch)) == (409, "STALE_MEMBER_EPOCH")
    mixed = {min(first.assignment): 9, revoked[0]: 9}
    assert error(first.commit(mixed)) == (409, "STALE_MEMBER_EPOCH")  # all or nothing
    assert committed(http, group) == {(topic, 0): 1, **{tp: 5 for tp in revoked}}
    assert second.commit({revoked[0]: 8}).status_code == 200
    first.leave()
    assert error(first.commit({(topic, 0): 1})) == (404, "UNKNOWN_MEMBER_ID")


@pytest.mark.parametrize(("produced", "commit_at"), [(10, 0), (10, 4), (25, 25), (3, 1)])
def test_lag_is_high_watermark_minus_committed(http: httpx.Client, produced: int, commit_at: int) -> None:
    topic, group = _topic(http, 2), unique_group()
    _produce(http, topic, 0, produced)
    _produce(http, topic, 1, 2)
    member = Member(http, group, [topic])
    member.join()
    assert member.commit({(topic, 0): commit_at}).status_code == 200
    rows = {(row["topic"], row["partition"]): row for row in describe(http, group)["partitions"]}
    assert rows[(topic, 0)]["committed_offset"] == commit_at
    assert rows[(topic, 0)]["log_end_offset"] == produced
    assert rows[(topic, 0)]["lag"] == produced - commit_at
    assert rows[(topic, 0)]["member_id"] == member.member_id
    assert (rows[(topic, 1)]["committed_offset"], rows[(topic, 1)]["lag"]) == (None, None)  # nothing committed
    assert rows[(topic, 1)]["log_end_offset"] == 2
    text = http.get("/metrics").text
    assert metric_value(text, "gafka_group_lag", group=group, topic=topic, partition="0") == produced - commit_at
    assert metric_value(text, "gafka_group_lag", group=group, topic=topic, partition="1") is None
    _produce(http, topic, 0, 5)  # lag follows the log without another commit
    assert describe(http, group)["partitions"][0]["lag"] == produced + 5 - commit_at


def test_reset_needs_an_empty_group_and_resolves_every_target(http: httpx.Client) -> None:
    # records from 1970: without retention.ms=-1 the retention pass may delete them in the middle of the test
    topic, group = _topic(http, 2, **{"retention.ms": "-1"}), unique_group()
    _produce(http, topic, 0, 5, timestamp=1_000)  # offsets 0..4 at 1000..1004
    _produce(http, topic, 0, 5, timestamp=2_000)  # offsets 5..9 at 2000..2004
    member = Member(http, group, [topic], instance_id="pod-0")
    member.join()
    assert member.commit({(topic, 0): 3}).status_code == 200
    reset = f"/v1/groups/{group}/offsets/reset"
    assert error(http.post(reset, json={"to": "earliest"})) == (409, "NON_EMPTY_GROUP")
    member.leave(epoch=-2)  # a paused static member is still a member
    assert error(http.post(reset, json={"to": "earliest"})) == (409, "NON_EMPTY_GROUP")
    Member(http, group, [topic], instance_id="pod-0").join()
    assert describe(http, group)["members"]
    http.post(
        f"/v1/groups/{group}/heartbeat",
        json={"member_id": describe(http, group)["members"][0]["member_id"], "member_epoch": -1},
    )
    assert describe(http, group)["state"] == "Empty"

    def reset_to(to: object, topics: object = None) -> dict[tuple[str, int], int]:
        body: dict[str, object] = {"to": to}
        if topics is not None:
            body["topics"] = topics
        response = http.post(reset, json=body)
        assert response.status_code == 200, response.text
        return {(o["topic"], o["partition"]): o["offset"] for o in response.json()["offsets"]}

    assert reset_to("latest") == {(topic, 0): 10}  # without topics: what the group has committed
    assert reset_to("earliest") == {(topic, 0): 0}
    assert reset_to({"timestamp": 2_002}) == {(topic, 0): 7}
    assert reset_to({"timestamp": 1_500}) == {(topic, 0): 5}
    assert reset_to({"timestamp": 9_999_999_999_999}) == {(topic, 0): 10}  # after every record: the end
    assert reset_to({"offset": 4}) == {(topic, 0): 4}
    assert reset_to({"offset": 400}) == {(topic, 0): 10}  # clamped into the log
    assert reset_to("latest", [topic]) == {(topic, 0): 10, (topic, 1): 0}
    assert reset_to({"offset": 2}, [{"topic": topic, "partitions": [1]}]) == {(topic, 1): 0}
    assert committed(http, group) == {(topic, 0): 10, (topic, 1): 0}

    assert error(http.post(reset, json={"to": "middle"})) == (400, "INVALID_REQUEST")
    assert error(http.post(reset, json={"to": {"offset": -1}})) == (400, "INVALID_REQUEST")
    assert error(http.post(reset, json={"to": "earliest", "topics": ["nope"]})) == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    missing = f"/v1/groups/{unique_group()}/offsets/reset"
    assert error(http.post(missing, json={"to": "earliest"})) == (404, "GROUP_ID_NOT_FOUND")
    fresh = unique_group()
    created = http.post(f"/v1/groups/{fresh}/offsets/reset", json={"to": "latest", "topics": [topic]})
    assert created.status_code == 200  # like kafka-consumer-groups --reset-offsets on a new group
    assert committed(http, fresh) == {(topic, 0): 10, (topic, 1): 0}


def test_reset_to_earliest_follows_retention(http: httpx.Client) -> None:
    topic, group = _topic(http, 1, **{"segment.bytes": "1024", "retention.bytes": "1024"}), unique_group()
    for _ in range(30):
        _produce(http, topic, 0, 5)

    def trimmed() -> bool:
        return int(http.get(f"/v1/topics/{topic}/partitions/0/offsets?at=earliest").json()["offset"]) > 0

    wait_for(trimmed)
    start = http.get(f"/v1/topics/{topic}/partitions/0/offsets?at=earliest").json()["offset"]
    response = http.post(f"/v1/groups/{group}/offsets/reset", json={"to": "earliest", "topics": [topic]})
    assert response.json()["offsets"][0]["offset"] >= start > 0


def test_reset_dry_run_previews_without_writing(http: httpx.Client) -> None:
    """``dry_run`` answers what a reset would commit, next to what is committed now, and changes nothing."""
    topic, group = _topic(http, 2, **{"retention.ms": "-1"}), unique_group()
    _produce(http, topic, 0, 5)
    member = Member(http, group, [topic])
    member.join()
    assert member.commit({(topic, 0): 2}).status_code == 200
    reset = f"/v1/groups/{group}/offsets/reset"
    assert error(http.post(reset, json={"to": "latest", "dry_run": True})) == (409, "NON_EMPTY_GROUP")
    member.leave()
    preview = http.post(reset, json={"to": "latest", "topics": [topic], "dry_run": True})
    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "dry_run": True,
        "offsets": [
            {"topic": topic, "partition": 0, "offset": 5, "current_offset": 2},
            {"topic": topic, "partition": 1, "offset": 0, "current_offset": None},
        ],
    }
    assert committed(http, group) == {(topic, 0): 2}
    assert error(http.post(reset, json={"to": "latest", "dry_run": "yes"})) == (400, "INVALID_REQUEST")
    done = http.post(reset, json={"to": "latest", "topics": [topic]})
    assert done.status_code == 200
    assert committed(http, group) == {(topic, 0): 5, (topic, 1): 0}


def test_delete_needs_an_empty_group_and_takes_the_offsets(http: httpx.Client) -> None:
    topic, group = _topic(http, 1), unique_group()
    member = Member(http, group, [topic])
    member.join()
    assert member.commit({(topic, 0): 1}).status_code == 200
    assert error(http.delete(f"/v1/groups/{group}")) == (409, "NON_EMPTY_GROUP")
    member.leave()
    assert http.delete(f"/v1/groups/{group}").status_code == 204
    assert error(http.get(f"/v1/groups/{group}")) == (404, "GROUP_ID_NOT_FOUND")
    assert error(http.delete(f"/v1/groups/{group}")) == (404, "GROUP_ID_NOT_FOUND")
    assert committed(http, group) == {}
    assert group not in [g["group"] for g in http.get("/v1/groups").json()["groups"]]


def test_list_and_describe(http: httpx.Client) -> None:
    topic, group = _topic(http, 3), unique_group()
    members = [Member(http, group, [topic]) for _ in range(2)]
    for member in members:
        member.join(assignor="range")
    settle(members)
    [summary] = [g for g in http.get("/v1/groups").json()["groups"] if g["group"] == group]
    assert summary == {
        "group": group,
        "state": "Stable",
        "group_epoch": summary["group_epoch"],
        "assignor": "range",
        "member_count": 2,
    }
    described = describe(http, group)
    assert described["assignment_epoch"] == described["group_epoch"]
    assert 0 <= described["offsets_partition"] < 5
    by_id = {m["member_id"]: m for m in described["members"]}
    ordered = sorted(by_id)  # range: members in id order, the first one gets the extra partition
    assert by_id[ordered[0]]["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
    assert by_id[ordered[1]]["assignment"] == [{"topic": topic, "partitions": [2]}]
    assert all(m["assignment"] == m["target_assignment"] and m["pending_revocation"] == [] for m in by_id.values())
    text = http.get("/metrics").text
    assert metric_value(text, "gafka_group_members", group=group) == 2
    assert (metric_value(text, "gafka_group_rebalances_total", group=group) or 0) >= 1
    assert metric_value(text, "gafka_group_epoch", group=group) == described["group_epoch"]
    members[0].commit({min(members[0].assignment): 0})
    text = http.get("/metrics").text
    assert metric_value(text, "gafka_group_offset_commits_total", group=group) == 1
