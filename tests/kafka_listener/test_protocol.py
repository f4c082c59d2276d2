"""The listener at the byte level: every advertised API version answers, versions are negotiated as Kafka
does, and bad frames cost only their own connection (hypothesis feeds random and truncated ones)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from tests.conftest import BrokerProcess, unique_topic
from tests.kafka_listener.wire import WireClient, encode_request

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.kafka.apis import APIS
from gafka_broker.kafka.codec import make


@pytest.fixture
def wire(bootstrap: str) -> Iterator[WireClient]:
    client = WireClient(bootstrap)
    yield client
    client.close()


def _request(api_key: int, version: int, values: dict[str, Any]) -> Any:
    return make(load_request_schema(api_key, version), values)


def _values(api_key: int, topic: str, group: str) -> dict[str, Any]:
    """One request's plain values, for every version of the API (each version takes the fields it has)."""
    batch = encode_batch([NewRecord(b"k", b"v")])
    partition = {
        "index": 0,
        "partition": 0,
        "partition_index": 0,
        "records": batch,
        "fetch_offset": 0,
        "partition_max_bytes": 1 << 20,
        "timestamp": -1,
        "committed_offset": 1,
        "committed_metadata": "m",
    }
    topic_values = {
        "name": topic,
        "topic": topic,
        "partition_data": [partition],
        "partitions": [partition],
        "partition_indexes": [0],
    }
    return {
        0: {"acks": 1, "timeout": 10_000, "topic_data": [topic_values]},
        1: {"max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0, "topics": [topic_values]},
        2: {"replica_id": -1, "isolation_level": 0, "topics": [topic_values]},
        3: {
            "topics": [{"name": topic}],
            "allow_auto_topic_creation": True,
            "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False,
        },
        8: {
            "group_id": group,
            "generation_id": -1,
            "generation_id_or_member_epoch": -1,
            "member_id": "",
            "retention_time": -1,
            "topics": [topic_values],
        },
        9: {"group_id": group, "topics": [topic_values]},
        10: {"key": group, "key_type": 0, "coordinator_keys": [group]},
        18: {"client_software_name": "wire", "client_software_version": "1"},
        11: {
            "group_id": group,
            "session_timeout": 30_000,
            "rebalance_timeout": 30_000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"m"}],
        },
        12: {"group_id": group, "generation_id": 1, "member_id": "m"},
        13: {"group_id": group, "member_id": "m", "members": [{"member_id": "m"}]},
        14: {
            "group_id": group,
            "generation_id": 1,
            "member_id": "m",
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": "m", "assignment": b"a"}],
        },
        15: {"groups": [group], "include_authorized_operations": False},
        16: {"states_filter": []},
        19: {
            "topics": [
                {
                    "name": f"{topic}-new",
                    "num_partitions": 2,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [{"name": "retention.ms", "value": "60000"}],
                }
            ],
            "timeout": 10_000,
            "validate_only": False,
        },
        20: {"topic_names": [f"{topic}-new"], "topics": [{"name": f"{topic}-new"}], "timeout": 10_000},
        23: {
            "replica_id": -1,
            "topics": [
                {"topic": topic, "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}
            ],
        },
        32: {
            "resources": [{"resource_type": 2, "resource_name": topic, "configuration_keys": None}],
            "include_synonyms": False,
            "include_documentation": False,
        },
        37: {"topics": [{"name": topic, "count": 1, "assignments": None}], "timeout": 10_000, "validate_only": False},
        42: {"groups_names": [group]},
        44: {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": topic,
                    "configs": [{"name": "retention.ms", "config_operation": 0, "value": "3600000"}],
                }
            ],
            "validate_only": False,
        },
        60: {"include_cluster_authorized_operations": False, "endpoint_type": 1},
        22: {"transactional_id": None, "transaction_timeout": 60_000, "producer_id": -1, "producer_epoch": -1},
    }[api_key]


def test_api_versions_lists_exactly_what_is_served(wire: WireClient) -> None:
    answer = wire.call(_request(18, 3, _values(18, "", "")))
    assert answer.error_code == ErrorCode.none
    assert {(k.api_key, k.min_version, k.max_version) for k in answer.api_keys} == {
        (key, api.min_version, api.max_version) for key, api in APIS.items()
    }


def test_api_versions_newer_than_served_gets_unsupported_version_in_v0(wire: WireClient) -> None:
    request = _request(18, 3, _values(18, "", ""))
    frame = bytearray(encode_request(request, correlation_id=9))
    struct.pack_into(">h", frame, 6, 99)  # the request header's api_version
    wire.send_raw(bytes(frame))
    answer = wire.read_frame()
    assert answer is not None
    correlation_id, error_code = struct.unpack_from(">ih", answer)
    assert (correlation_id, error_code) == (9, ErrorCode.unsupported_version.value)


def test_every_advertised_version_answers(bootstrap: str, kafka_broker: BrokerProcess) -> None:
    topic = unique_topic("versions")
    with httpx.Client(base_url=kafka_broker.url) as http:
        assert http.post("/v1/topics", json={"name": topic, "partitions": 1}).status_code == 201
    for api_key, api in sorted(APIS.items()):
        if api_key in _CLASSIC_GROUP_APIS:
            continue  # a sequence of their own: test_classic_group_every_version
        for version in range(api.min_version, api.max_version + 1):
            values = _values(api_key, topic, f"g-{api_key}-{version}")
            if api_key == 37:  # each version grows the topic by one partition
                values["topics"][0]["count"] = 2 + version
            client = WireClient(bootstrap)
            try:
                if api_key == 20:  # each version deletes a topic of its own
                    client.call(_request(19, 7, _values(19, f"{topic}-{version}", "")))
                    values = _values(20, f"{topic}-{version}", "")
                if api_key == 42:  # each version deletes a group that has offsets
                    client.call(_request(8, 8, values | _values(8, topic, f"g-{api_key}-{version}")))
                answer = client.call(_request(api_key, version, values))
                if api_key == 19:  # leave the name free for the next version
                    client.call(_request(20, 6, _values(20, topic, "")))
            finally:
                client.close()
            assert answer.__version__ == version, (api.name, version)
            codes = [getattr(answer, "error_code", ErrorCode.none)]
            for part in _partitions(answer):
                codes.append(part.error_code)
            assert set(codes) == {ErrorCode.none}, (api.name, version, codes)


_CLASSIC_GROUP_APIS = (11, 12, 13, 14)


def test_classic_group_every_version(bootstrap: str) -> None:
    """Join (learning the member id first from v4), sync, heartbeat and leave at every advertised version."""
    join, heartbeat, leave, sync = (APIS[key] for key in _CLASSIC_GROUP_APIS)
    rounds = max(api.max_version - api.min_version + 1 for api in (join, heartbeat, leave, sync))
    for turn in range(rounds):
        versions = [
            api.min_version + turn % (api.max_version - api.min_version + 1) for api in (join, heartbeat, leave, sync)
        ]
        join_v, heartbeat_v, leave_v, sync_v = versions
        group = unique_topic("classic")
        client = WireClient(bootstrap)
        try:
            values = _values(11, "", group)
            joined = client.call(_request(11, join_v, values))
            if joined.error_code == ErrorCode.member_id_required:
                values["member_id"] = joined.member_id
                joined = client.call(_request(11, join_v, values))
            assert joined.error_code == ErrorCode.none, (versions, joined)
            assert joined.leader == joined.member_id and joined.generation_id == 1
            assert [bytes(m.metadata) for m in joined.members] == [b"m"]
            member = joined.member_id
            synced = client.call(
                _request(
                    14,
                    sync_v,
                    {
                        **_values(14, "", group),
                        "member_id": member,
                        "assignments": [{"member_id": member, "assignment": b"a"}],
                    },
                )
            )
            assert (synced.error_code, bytes(synced.assignment)) == (ErrorCode.none, b"a"), versions
            beat = client.call(_request(12, heartbeat_v, {**_values(12, "", group), "member_id": member}))
            assert beat.error_code == ErrorCode.none, versions
            stale = client.call(
                _request(12, heartbeat_v, {**_values(12, "", group), "member_id": member, "generation_id": 7})
            )
            assert stale.error_code == ErrorCode.illegal_generation, versions
            left = client.call(
                _request(13, leave_v, {"group_id": group, "member_id": member, "members": [{"member_id": member}]})
            )
            assert left.error_code == ErrorCode.none, versions
            gone = client.call(_request(12, heartbeat_v, {**_values(12, "", group), "member_id": member}))
            assert gone.error_code == ErrorCode.unknown_member_id, versions
        finally:
            client.close()


def _partitions(answer: Any) -> Iterator[Any]:
    for name in ("responses", "topics", "results", "groups"):
        for topic in getattr(answer, name, ()) or ():
            if hasattr(topic, "error_code"):
                yield topic
            for field in ("partition_responses", "partitions"):
                yield from getattr(topic, field, ()) or ()


def test_produce_to_internal_topic_and_unknown_partition_are_refused(wire: WireClient) -> None:
    values = _values(0, "__consumer_offsets", "")
    answer = wire.call(_request(0, 9, values))
    assert answer.responses[0].partition_responses[0].error_code == ErrorCode.invalid_topic_exception
    topic = unique_topic("few")
    wire.call(_request(3, 12, _values(3, topic, "")))  # auto-creates 3 partitions
    values = _values(0, topic, "")
    values["topic_data"][0]["partition_data"][0]["index"] = 7
    answer = wire.call(_request(0, 9, values))
    assert answer.responses[0].partition_responses[0].error_code == ErrorCode.unknown_topic_or_partition


def test_oversized_frame_closes_only_that_connection(bootstrap: str, wire: WireClient) -> None:
    wire.send_raw(struct.pack(">i", 1 << 30))
    assert wire.read_frame() is None
    other = WireClient(bootstrap)
    try:
        assert other.call(_request(18, 3, _values(18, "", ""))).error_code == ErrorCode.none
    finally:
        other.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_and_truncated_frames_never_take_the_broker_down(bootstrap: str, data: st.DataObject) -> None:
    api_key = data.draw(st.sampled_from(sorted(APIS)))
    api = APIS[api_key]
    version = data.draw(st.integers(api.min_version, api.max_version))
    valid = encode_request(_request(api_key, version, _values(api_key, "fuzz", "fuzz-group")))[4:]
    body = data.draw(
        st.one_of(
            st.binary(max_size=200),
            st.integers(0, len(valid)).map(lambda cut: valid[:cut]),
            st.tuples(st.integers(8, max(8, len(valid) - 1)), st.binary(min_size=1, max_size=8)).map(
                lambda edit: valid[: edit[0]] + edit[1] + valid[edit[0] + len(edit[1]) :]
            ),
        )
    )
    client = WireClient(bootstrap, timeout=30)
    try:
        client.send_raw(struct.pack(">i", len(body)) + body)
        client.sock.shutdown(1)  # no more requests: the broker answers or closes
        client.read_frame()
    finally:
        client.close()
    check = WireClient(bootstrap)
    try:
        assert check.call(_request(18, 3, _values(18, "", ""))).error_code == ErrorCode.none
    finally:
        check.close()


def test_connections_are_counted_per_listener(bootstrap: str, kafka_broker: BrokerProcess, wire: WireClient) -> None:
    assert wire.call(_request(18, 3, _values(18, "", ""))).error_code == ErrorCode.none
    with httpx.Client(base_url=kafka_broker.url) as http:
        metrics = http.get("/metrics").text
    counted = [line for line in metrics.splitlines() if line.startswith('gafka_listener_connections{listener="kafka"}')]
    assert counted and float(counted[0].split()[-1]) >= 1, counted
