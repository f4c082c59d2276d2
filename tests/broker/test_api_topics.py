"""Topic administration against a real broker: create, list, describe, alter, delete, and every error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .helpers import create_topic, fetch, produce

if TYPE_CHECKING:
    from conftest import BrokerProcess


@pytest.fixture
def http(shared_broker: BrokerProcess) -> Iterator[httpx.Client]:
    with shared_broker.client() as client:
        yield client


def test_cluster_is_one_node_that_controls_itself(shared_broker: BrokerProcess, http: httpx.Client) -> None:
    body = http.get("/v1/cluster").json()
    (me,) = body["brokers"]
    assert {key: me[key] for key in ("id", "url", "fenced", "rack")} == {
        "id": 0,
        "url": shared_broker.url,
        "fenced": False,
        "rack": None,
    }
    assert me["leaders"] == me["replicas"] == body["partitions"]["total"]  # one node leads everything
    assert body["controller"] == 0
    assert isinstance(body["cluster_id"], str) and body["cluster_id"]
    assert body["limits"]["max_records_per_request"] == 10_000


def test_create_describe_list(http: httpx.Client, topic: str) -> None:
    response = http.post(
        "/v1/topics",
        json={"name": topic, "partitions": 3, "replication_factor": 1, "configs": {"retention.ms": 60000}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == topic
    described = http.get(f"/v1/topics/{topic}").json()
    assert described == created
    assert described["replication_factor"] == 1
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    for partition in described["partitions"]:
        assert partition == {
            "partition": partition["partition"],
            "leader": 0,
            "replicas": [0],
            "isr": [0],
            "leader_epoch": 0,
            "log_start_offset": 0,
            "high_watermark": 0,
            "log_end_offset": 0,
            "size_bytes": 0,
        }
    assert described["configs"]["retention.ms"] == "60000"
    assert described["configs"]["cleanup.policy"] == "delete"
    assert described["config_overrides"] == {"retention.ms": "60000"}
    listed = http.get("/v1/topics").json()["topics"]
    assert {"name": topic, "partitions": 3, "replication_factor": 1} in listed


def test_describe_shows_offsets(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce(http, topic, [{"value": "a"}, {"value": "b"}])
    [partition] = http.get(f"/v1/topics/{topic}").json()["partitions"]
    assert (partition["log_start_offset"], partition["high_watermark"], partition["log_end_offset"]) == (0, 2, 2)


def test_defaults_apply(http: httpx.Client, topic: str) -> None:
    response = http.post("/v1/topics", json={"name": topic})
    assert response.status_code == 201
    assert len(response.json()["partitions"]) == 1
    assert response.json()["replication_factor"] == 1


def test_alter_adds_partitions_and_changes_configs(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 1, retention_ms=1000, max_message_bytes=5000)
    response = http.patch(
        f"/v1/topics/{topic}", json={"partitions": 4, "configs": {"retention.ms": None, "segment.ms": "3600000"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["partitions"]) == 4
    assert body["config_overrides"] == {"max.message.bytes": "5000", "segment.ms": "3600000"}
    assert body["configs"]["retention.ms"] == str(7 * 24 * 3600 * 1000)
    # The new partitions take records.
    offsets = produce(http, topic, [{"value": "x", "partition": 3}])
    assert offsets == [{"partition": 3, "offset": 0, "timestamp": offsets[0]["timestamp"]}]
    after = http.get(f"/v1/topics/{topic}").json()
    assert after["partitions"][3]["size_bytes"] > 0
    assert after == body | {
        "partitions": [
            *body["partitions"][:3],
            body["partitions"][3]
            | {"high_watermark": 1, "log_end_offset": 1, "size_bytes": after["partitions"][3]["size_bytes"]},
        ]
    }


def test_alter_config_takes_effect(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    assert http.patch(f"/v1/topics/{topic}", json={"configs": {"max.message.bytes": 200}}).status_code == 200
    response = http.post(f"/v1/topics/{topic}/records", json={"records": [{"value": "v" * 500}]})
    assert response.status_code == 413
    assert response.json()["error_code"] == "MESSAGE_TOO_LARGE"


def test_delete_removes_topic_and_data(shared_broker: BrokerProcess, http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2)
    produce(http, topic, [{"value": "a", "partition": 0}, {"value": "b", "partition": 1}])
    assert (shared_broker.data_dir / f"{topic}-0").is_dir()
    response = http.delete(f"/v1/topics/{topic}")
    assert response.status_code == 204
    assert http.get(f"/v1/topics/{topic}").status_code == 404
    assert topic not in [t["name"] for t in http.get("/v1/topics").json()["topics"]]
    assert not [path for path in shared_broker.data_dir.iterdir() if path.name.startswith(f"{topic}-")]
    # The name can be used again, starting from scratch.
    create_topic(http, topic)
    assert fetch(http, topic, 0, 0)["records"] == []


def err(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error_code", "message"}, body
    assert body["message"]
    return response.status_code, body["error_code"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "bad name"}, "INVALID_TOPIC_EXCEPTION"),
        ({"name": ""}, "INVALID_TOPIC_EXCEPTION"),
        ({"name": ".."}, "INVALID_TOPIC_EXCEPTION"),
        ({"name": "x" * 250}, "INVALID_TOPIC_EXCEPTION"),
        ({"name": 12}, "INVALID_TOPIC_EXCEPTION"),
        ({"partitions": 1}, "INVALID_TOPIC_EXCEPTION"),
        ({"name": "ok-{n}", "partitions": 0}, "INVALID_PARTITIONS"),
        ({"name": "ok-{n}", "partitions": "3"}, "INVALID_PARTITIONS"),
        ({"name": "ok-{n}", "replication_factor": 3}, "INVALID_REPLICATION_FACTOR"),
        ({"name": "ok-{n}", "replication_factor": 0}, "INVALID_REPLICATION_FACTOR"),
        ({"name": "ok-{n}", "configs": {"retention.ms": "soon"}}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "configs": {"no.such.config": "1"}}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "configs": {"cleanup.policy": "shred"}}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "configs": {"min.insync.replicas": 0}}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "configs": {"message.timestamp.type": "Sometimes"}}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "configs": ["retention.ms"]}, "INVALID_CONFIG"),
        ({"name": "ok-{n}", "colour": "red"}, "INVALID_REQUEST"),
    ],
)
def test_create_rejections_write_nothing(
    shared_broker: BrokerProcess, http: httpx.Client, topic: str, body: dict[str, Any], code: str
) -> None:
    if isinstance(body.get("name"), str):
        body = body | {"name": body["name"].replace("{n}", topic)}
    response = http.post("/v1/topics", json=body)
    assert err(response) == (400, code)
    if isinstance(body.get("name"), str) and body["name"]:
        assert http.get(f"/v1/topics/{body['name']}").status_code == 404
        assert not list(shared_broker.data_dir.glob(f"{body['name']}-*"))


def test_duplicate_and_colliding_names(http: httpx.Client, topic: str) -> None:
    create_topic(http, f"{topic}.a")
    assert err(http.post("/v1/topics", json={"name": f"{topic}.a"})) == (409, "TOPIC_ALREADY_EXISTS")
    assert err(http.post("/v1/topics", json={"name": f"{topic}_a"})) == (400, "INVALID_TOPIC_EXCEPTION")


def test_admin_content_type_and_json_errors(http: httpx.Client, topic: str) -> None:
    assert err(http.post("/v1/topics", content=b'{"name": "x"}')) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert err(http.post("/v1/topics", content=b'{"name": "x"}', headers={"content-type": "text/plain"})) == (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    assert err(http.post("/v1/topics", content=b"{nope", headers={"content-type": "application/json"})) == (
        400,
        "INVALID_REQUEST",
    )
    assert err(http.post("/v1/topics", content=b"[1]", headers={"content-type": "application/json"})) == (
        400,
        "INVALID_REQUEST",
    )
    create_topic(http, topic)
    assert err(http.patch(f"/v1/topics/{topic}", content=b"{", headers={"content-type": "application/json"})) == (
        400,
        "INVALID_REQUEST",
    )
    assert err(http.patch(f"/v1/topics/{topic}", content=b"{}")) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_alter_rejections_change_nothing(http: httpx.Client, topic: str) -> None:
    before = create_topic(http, topic, 2, retention_ms=5000)
    assert err(http.patch(f"/v1/topics/{topic}", json={"partitions": 1})) == (400, "INVALID_PARTITIONS")
    assert err(http.patch(f"/v1/topics/{topic}", json={"partitions": 0})) == (400, "INVALID_PARTITIONS")
    assert err(http.patch(f"/v1/topics/{topic}", json={"partitions": 5, "configs": {"retention.ms": "x"}})) == (
        400,
        "INVALID_CONFIG",
    )
    assert err(http.patch(f"/v1/topics/{topic}", json={"replication_factor": 2})) == (400, "INVALID_REQUEST")
    assert http.get(f"/v1/topics/{topic}").json() == before


def test_unknown_topic_is_404_everywhere(http: httpx.Client) -> None:
    for response in (
        http.get("/v1/topics/missing-topic"),
        http.patch("/v1/topics/missing-topic", json={"partitions": 2}),
        http.delete("/v1/topics/missing-topic"),
        http.post("/v1/topics/missing-topic/records", json={"records": [{"value": "v"}]}),
        http.get("/v1/topics/missing-topic/partitions/0/records", params={"offset": 0}),
        http.get("/v1/topics/missing-topic/partitions/0/offsets"),
        http.post(
            "/v1/topics/missing-topic/partitions/0/batches",
            content=b"x",
            headers={"content-type": "application/octet-stream"},
        ),
    ):
        assert err(response) == (404, "UNKNOWN_TOPIC_OR_PARTITION"), response.request.url


def test_unknown_partition_is_404(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2)
    for partition in ("2", "-1", "abc", "99999999999999999999"):
        response = http.get(f"/v1/topics/{topic}/partitions/{partition}/records", params={"offset": 0})
        assert err(response) == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    response = http.post(
        f"/v1/topics/{topic}/records", json={"records": [{"value": "a"}, {"value": "b", "partition": 2}]}
    )
    assert err(response) == (404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert response.json()["record_index"] == 1
    assert fetch(http, topic, 0, 0)["high_watermark"] + fetch(http, topic, 1, 0)["high_watermark"] == 0


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert err(http.get("/v1/nothing-here")) == (404, "NOT_FOUND")
    assert err(http.put("/v1/topics")) == (405, "METHOD_NOT_ALLOWED")
