"""The OpenAPI 3.1 document served at ``/openapi.json``, kept next to the code it describes.

Written out by hand (the handlers take raw requests for speed, so there is nothing to introspect); a
test checks that every route of :func:`gafka_broker.app.route_table` appears here.
"""

from __future__ import annotations

from typing import Any

from gafka import __version__
from gafka_broker.errors import HTTP_STATUS

__all__ = ["openapi_document"]

JSON = "application/json"
BATCHES = "application/vnd.gafka.record-batch.v2"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": schema_type}}


def _query(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_TOPIC = _path_param("topic", "Topic name.")
_PARTITION = _path_param("partition", "Partition index, from 0.", "integer")
_ACKS = _query(
    "acks",
    "0: answer without waiting for an fsync; 1 (default): after the append; all: also checks min.insync.replicas.",
    {"type": "string", "enum": ["0", "1", "all", "-1"], "default": "1"},
)
_FORMAT = {"type": "string", "enum": ["string", "json", "base64"], "default": "string"}
_GROUP = _path_param("group", "Group id: 1 to 249 characters of [a-zA-Z0-9._:-].")
_NULLABLE_INT = {"type": ["integer", "null"]}
_TOPIC_PARTITIONS_ITEM = {
    "type": "object",
    "required": ["topic"],
    "properties": {
        "topic": {"type": "string"},
        "partitions": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}},
    },
    "additionalProperties": False,
}
"""KIP-848's TopicPartitions as a request carries them (what the broker accepts, nothing more)."""
_TOPIC_PARTITIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["topic", "partitions"],
        "properties": {"topic": {"type": "string"}, "partitions": {"type": "array", "items": {"type": "integer"}}},
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {
            "error_code": {"type": "string", "enum": sorted(code.value for code in HTTP_STATUS)},
            "message": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "Cluster": {
        "type": "object",
        "properties": {
            "cluster_id": {"type": "string"},
            "brokers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "url": {"type": "string"},
                        "fenced": {"type": "boolean"},
                        "rack": {"type": ["string", "null"]},
                        "leaders": {"type": "integer", "description": "Partitions it leads."},
                        "replicas": {"type": "integer", "description": "Partition replicas it hosts."},
                    },
                },
            },
            "controller": {"type": "integer"},
            "partitions": {
                "type": ["object", "null"],
                "description": "Partition health (null until the broker has the cluster metadata).",
                "properties": {
                    "total": {"type": "integer"},
                    "under_replicated": {"type": "integer"},
                    "under_min_isr": {"type": "integer"},
                    "offline": {"type": "integer"},
                },
            },
            "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "BrokerStats": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "rack": {"type": ["string", "null"]},
            "ready": {"type": "boolean"},
            "time_ms": {"type": "integer"},
            "leaders": {"type": "integer"},
            "replicas": {"type": "integer"},
            "bytes_in_total": {"type": "integer"},
            "bytes_out_total": {"type": "integer"},
            "messages_in_total": {"type": "integer"},
            "messages_out_total": {"type": "integer"},
            "log_size_bytes": {"type": "integer"},
            "disk_free_bytes": {"type": "integer"},
            "disk_capacity_bytes": {"type": "integer"},
            "connections": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "CreateTopic": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"},
            "partitions": {"type": "integer", "minimum": 1},
            "replication_factor": {"type": "integer", "minimum": 1},
            "configs": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]}},
        },
        "additionalProperties": False,
    },
    "AlterTopic": {
        "type": "object",
        "properties": {
            "partitions": {"type": "integer", "minimum": 1, "description": "New total; can only grow."},
            "configs": {
                "type": "object",
                "description": "Overrides to set; null removes one.",
                "additionalProperties": {"type": ["string", "integer", "boolean", "null"]},
            },
        },
        "additionalProperties": False,
    },
    "TopicSummary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "partitions": {"type": "integer"},
            "replication_factor": {"type": "integer"},
        },
    },
    "Topic": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "topic_id": {"type": "string"},
            "replication_factor": {"type": "integer"},
            "partitions": {"type": "array", "items": _ref("Partition")},
            "configs": {"type": "object", "additionalProperties": {"type": "string"}},
            "config_overrides": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Partition": {
        "type": "object",
        "properties": {name: {"type": "integer"} for name in ("partition", "leader", "leader_epoch")}
        | {
            # null when the leader did not answer; high_watermark also while a new leader does not know it (KIP-207)
            name: {"type": ["integer", "null"]}
            for name in ("log_start_offset", "high_watermark", "log_end_offset", "size_bytes")
        }
        | {
            "replicas": {"type": "array", "items": {"type": "integer"}},
            "isr": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Header": {
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": {"type": "string"},
            "value": {"type": ["string", "null"]},
            "format": {"type": "string", "enum": ["string", "base64"]},
        },
    },
    "ProduceRequest": {
        "type": "object",
        "required": ["records"],
        "additionalProperties": False,
        "properties": {
            "key_format": _FORMAT,
            "value_format": _FORMAT,
            "records": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "key": {},
                        "value": {},
                        "headers": {
                            "oneOf": [
                                {"type": "array", "items": _ref("Header")},
                                {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                            ]
                        },
                        "partition": {"type": "integer", "minimum": 0},
                        "timestamp": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
    "ProduceResponse": {
        "type": "object",
        "properties": {
            "offsets": {
                "type": "array",
                "description": "One entry per record, in request order: an offset, or an error (207).",
                "items": {
                    "type": "object",
                    "properties": {
                        "partition": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "timestamp": {"type": "integer"},
                        "error_code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            }
        },
    },
    "BatchesResponse": {
        "type": "object",
        "properties": {
            name: {"type": "integer"}
            for name in ("partition", "base_offset", "last_offset", "record_count", "log_append_time")
        },
    },
    "FetchResponse": {
        "type": "object",
        "properties": {
            "records": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "offset": {"type": "integer"},
                        "timestamp": {"type": "integer"},
                        "key": {},
                        "value": {},
                        "headers": {"type": "array", "items": _ref("Header")},
                        "key_format": {"type": "string", "enum": ["base64"]},
                        "value_format": {"type": "string", "enum": ["base64"]},
                    },
                },
            },
            "high_watermark": {"type": ["integer", "null"]},
            "log_start_offset": {"type": "integer"},
            "next_offset": {"type": "integer"},
        },
    },
    "Offset": {
        "type": "object",
        "required": ["offset"],
        "properties": {"offset": {"type": "integer"}, "timestamp": {"type": "integer"}},
    },
    "HeartbeatRequest": {
        "type": "object",
        "required": ["member_epoch"],
        "properties": {
            "member_id": {"type": ["string", "null"], "description": "Required unless member_epoch is 0."},
            "member_epoch": {
                "type": "integer",
                "minimum": -2,
                "description": "0 joins, -1 leaves, -2 pauses a static member, else the current epoch.",
            },
            "topics": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Required to join."},
            "instance_id": {"type": ["string", "null"], "description": "Static membership."},
            "rebalance_timeout_ms": _NULLABLE_INT,
            "owned": {
                "type": ["array", "null"],
                "items": _TOPIC_PARTITIONS_ITEM,
                "description": "Partitions still held.",
            },
            "assignor": {"type": ["string", "null"], "enum": ["uniform", "sticky", "range", None]},
        },
        "additionalProperties": False,
    },
    "HeartbeatResponse": {
        "type": "object",
        "properties": {
            "member_id": {"type": "string"},
            "member_epoch": {"type": "integer"},
            "heartbeat_interval_ms": {"type": "integer"},
            "assignment": {**_TOPIC_PARTITIONS, "description": "Partitions the member may consume now."},
        },
    },
    "CommitRequest": {
        "type": "object",
        "required": ["offsets"],
        "properties": {
            "member_id": {"type": ["string", "null"]},
            "member_epoch": {"type": "integer", "minimum": -1},
            "offsets": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["topic", "partition", "offset"],
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": {"type": "integer", "minimum": 0},
                        "offset": {"type": "integer", "minimum": 0, "description": "The next offset to read."},
                        "metadata": {"type": ["string", "null"], "maxLength": 4096},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
    "CommittedOffsets": {
        "type": "object",
        "properties": {
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": {"type": "integer"},
                        "offset": {"type": "integer", "description": "The next offset to read."},
                        "metadata": {"type": "string"},
                        "commit_timestamp": {"type": "integer"},
                    },
                },
            }
        },
    },
    "ResetRequest": {
        "type": "object",
        "required": ["to"],
        "properties": {
            "to": {
                "oneOf": [
                    {"type": "string", "enum": ["earliest", "latest"]},
                    {
                        "type": "object",
                        "required": ["timestamp"],
                        "properties": {"timestamp": {"type": "integer", "minimum": 0}},
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["offset"],
                        "properties": {"offset": {"type": "integer", "minimum": 0}},
                        "additionalProperties": False,
                    },
                ]
            },
            "topics": {
                "type": ["array", "null"],
                "minItems": 1,
                "items": {"oneOf": [{"type": "string"}, _TOPIC_PARTITIONS_ITEM]},
                "description": "Null or absent: every partition the group has committed.",
            },
            "dry_run": {
                "type": "boolean",
                "default": False,
                "description": "Only answer what would be committed (with current_offset); write nothing.",
            },
        },
        "additionalProperties": False,
    },
    "GroupSummary": {
        "type": "object",
        "properties": {
            "group": {"type": "string"},
            "state": {"type": "string", "enum": ["Empty", "Assigning", "Reconciling", "Stable"]},
            "group_epoch": {"type": "integer"},
            "assignor": {"type": "string"},
            "member_count": {"type": "integer"},
        },
    },
    "Group": {
        "type": "object",
        "properties": {
            "group": {"type": "string"},
            "state": {"type": "string", "enum": ["Empty", "Assigning", "Reconciling", "Stable"]},
            "group_epoch": {"type": "integer"},
            "assignment_epoch": {"type": "integer"},
            "assignor": {"type": "string"},
            "member_count": {"type": "integer"},
            "coordinator": {"type": "integer"},
            "offsets_partition": {"type": "integer"},
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "member_id": {"type": "string"},
                        "instance_id": {"type": ["string", "null"]},
                        "member_epoch": {"type": "integer"},
                        "subscriptions": {"type": "array", "items": {"type": "string"}},
                        "assignment": _TOPIC_PARTITIONS,
                        "pending_revocation": _TOPIC_PARTITIONS,
                        "target_assignment": _TOPIC_PARTITIONS,
                        "rebalance_timeout_ms": {"type": "integer"},
                        "session_timeout_ms": {"type": "integer"},
                        "left_temporarily": {"type": "boolean"},
                    },
                },
            },
            "partitions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": {"type": "integer"},
                        "member_id": {"type": ["string", "null"]},
                        "committed_offset": _NULLABLE_INT,
                        "metadata": {"type": ["string", "null"]},
                        "log_end_offset": {**_NULLABLE_INT, "description": "The high watermark."},
                        "lag": {**_NULLABLE_INT, "description": "log_end_offset - committed_offset."},
                    },
                },
            },
        },
    },
}


def _paths() -> dict[str, Any]:
    partition = "/v1/topics/{topic}/partitions/{partition}"
    not_found = _error("UNKNOWN_TOPIC_OR_PARTITION")
    unavailable = _error("BROKER_NOT_AVAILABLE: still recovering")
    not_leader = _error("NOT_LEADER_OR_FOLLOWER: another broker leads the partition (leader_id, leader_url)")
    return {
        "/v1/cluster": {
            "get": {
                "summary": "Cluster id, brokers, controller and request limits",
                "responses": {"200": _json(_ref("Cluster"), "The cluster")},
            }
        },
        "/v1/broker": {
            "get": {
                "summary": "This broker's traffic counters, disk and connections",
                "responses": {"200": _json(_ref("BrokerStats"), "The broker's own numbers")},
            }
        },
        "/v1/topics": {
            "get": {
                "summary": "List topics",
                "parameters": [
                    _query(
                        "internal",
                        "Also list internal topics (__consumer_offsets).",
                        {"type": "boolean", "default": False},
                    )
                ],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"topics": {"type": "array", "items": _ref("TopicSummary")}}},
                        "Every topic",
                    ),
                    "400": _error("INVALID_REQUEST: internal is not true or false"),
                    "503": unavailable,
                },
            },
            "post": {
                "summary": "Create a topic",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("CreateTopic")}}},
                "responses": {
                    "201": _json(_ref("Topic"), "Created"),
                    "400": _error(
                        "INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, "
                        "INVALID_CONFIG or INVALID_REQUEST"
                    ),
                    "409": _error("TOPIC_ALREADY_EXISTS"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                },
            },
        },
        "/v1/topics/{topic}": {
            "parameters": [_TOPIC],
            "get": {
                "summary": "Describe a topic: partitions with offsets, and effective configs",
                "responses": {"200": _json(_ref("Topic"), "The topic"), "404": not_found, "503": unavailable},
            },
            "patch": {
                "summary": "Add partitions and/or change config overrides",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AlterTopic")}}},
                "responses": {
                    "200": _json(_ref("Topic"), "The altered topic"),
                    "400": _error("INVALID_PARTITIONS, INVALID_CONFIG or INVALID_REQUEST"),
                    "404": not_found,
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                },
            },
            "delete": {
                "summary": "Delete a topic and its data",
                "responses": {
                    "204": {"description": "Deleted"},
                    "400": _error("INVALID_REQUEST: an internal topic (__consumer_offsets) cannot be deleted"),
                    "404": not_found,
                },
            },
        },
        "/v1/topics/{topic}/records": {
            "parameters": [_TOPIC],
            "post": {
                "summary": "Produce JSON records",
                "parameters": [_ACKS],
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ProduceRequest")}}},
                "responses": {
                    "200": _json(_ref("ProduceResponse"), "Every record appended"),
                    "207": _json(_ref("ProduceResponse"), "Some records failed; see their error_code"),
                    "400": _error("INVALID_REQUEST, INVALID_RECORD or INVALID_TIMESTAMP"),
                    "404": not_found,
                    "409": _error("OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH, for every record"),
                    "413": _error("RECORD_LIST_TOO_LARGE or MESSAGE_TOO_LARGE"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                    "421": _error("NOT_LEADER_OR_FOLLOWER: every record's partition moved while it was forwarded"),
                    "500": _error("KAFKA_STORAGE_ERROR, for every record"),
                    "502": _error("the leaders every record was forwarded to failed with a code of their own"),
                    "503": _error("NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE or BROKER_NOT_AVAILABLE"),
                    "504": _error("REQUEST_TIMED_OUT: acks=all not reached by the in-sync replicas in time"),
                },
            },
        },
        f"{partition}/batches": {
            "parameters": [_TOPIC, _PARTITION],
            "post": {
                "summary": "Produce raw RecordBatch v2 bytes (appended without re-encoding)",
                "parameters": [_ACKS],
                "requestBody": {
                    "required": True,
                    "content": {
                        BATCHES: {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "200": _json(_ref("BatchesResponse"), "Appended"),
                    "400": _error("CORRUPT_MESSAGE, INVALID_RECORD or INVALID_REQUEST"),
                    "404": not_found,
                    "409": _error("OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH (idempotent producers)"),
                    "413": _error("MESSAGE_TOO_LARGE or RECORD_LIST_TOO_LARGE"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                    "421": not_leader,
                    "500": _error("KAFKA_STORAGE_ERROR"),
                    "503": _error("NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE or BROKER_NOT_AVAILABLE"),
                    "504": _error("REQUEST_TIMED_OUT: acks=all not reached by the in-sync replicas in time"),
                },
            },
        },
        f"{partition}/records": {
            "parameters": [_TOPIC, _PARTITION],
            "get": {
                "summary": "Fetch records from an offset, long-polling for min_bytes",
                "parameters": [
                    _query("offset", "First offset wanted.", {"type": "integer"}, required=True),
                    _query(
                        "max_bytes",
                        "Byte budget (at least one batch is returned).",
                        {"type": "integer", "default": 1048576},
                    ),
                    _query("min_bytes", "Wait until this many bytes are available.", {"type": "integer", "default": 1}),
                    _query("max_wait_ms", "Longest wait for min_bytes.", {"type": "integer", "default": 500}),
                    _query("key_format", "How keys are shown.", _FORMAT),
                    _query("value_format", "How values are shown.", _FORMAT),
                ],
                "responses": {
                    "200": {
                        "description": "Records (JSON), or raw batches when Accept asks for " + BATCHES,
                        "content": {
                            JSON: {"schema": _ref("FetchResponse")},
                            BATCHES: {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "400": _error("INVALID_REQUEST"),
                    "404": not_found,
                    "416": _error("OFFSET_OUT_OF_RANGE, with log_start_offset and high_watermark"),
                    "421": not_leader,
                    "429": _error("THROTTLING_QUOTA_EXCEEDED: too many parked fetches"),
                    "500": _error(
                        "KAFKA_STORAGE_ERROR (healing: retry) or CORRUPT_MESSAGE (no good copy): a batch damaged on "
                        "disk, with its offset"
                    ),
                    "503": _error("LEADER_NOT_AVAILABLE or BROKER_NOT_AVAILABLE"),
                },
            },
        },
        f"{partition}/offsets": {
            "parameters": [_TOPIC, _PARTITION],
            "get": {
                "summary": "Earliest, latest, or first offset at/after a timestamp",
                "parameters": [
                    _query("at", "earliest, latest (default) or a timestamp in ms", {"type": "string"}),
                ],
                "responses": {
                    "200": _json(_ref("Offset"), "The offset"),
                    "400": _error("INVALID_REQUEST"),
                    "404": not_found,
                    "421": not_leader,
                    "503": _error(
                        "LEADER_NOT_AVAILABLE, BROKER_NOT_AVAILABLE, or OFFSET_NOT_AVAILABLE: a new leader does not "
                        "know its high watermark yet (KIP-207)"
                    ),
                },
            },
        },
        **_group_paths(),
        **_replication_paths(),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {}}}},
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "Alive")}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: logs recovered",
                "responses": {"200": _json({"type": "object"}, "Ready"), "503": unavailable},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }


def _group_paths() -> dict[str, Any]:
    no_group = _error("GROUP_ID_NOT_FOUND")
    bad_group = _error("INVALID_GROUP_ID or INVALID_REQUEST")
    member_refused = _error("FENCED_MEMBER_EPOCH, STALE_MEMBER_EPOCH or UNRELEASED_INSTANCE_ID")
    return {
        "/v1/groups": {
            "get": {
                "summary": "List consumer groups",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"groups": {"type": "array", "items": _ref("GroupSummary")}}},
                        "Every group",
                    )
                },
            }
        },
        "/v1/groups/{group}": {
            "parameters": [_GROUP],
            "get": {
                "summary": "Describe a group: state, epochs, members, committed offsets and lag",
                "responses": {"200": _json(_ref("Group"), "The group"), "400": bad_group, "404": no_group},
            },
            "delete": {
                "summary": "Delete an empty group and its committed offsets",
                "responses": {
                    "204": {"description": "Deleted"},
                    "400": bad_group,
                    "404": no_group,
                    "409": _error("NON_EMPTY_GROUP"),
                },
            },
        },
        "/v1/groups/{group}/heartbeat": {
            "parameters": [_GROUP],
            "post": {
                "summary": "Join, heartbeat, leave: the answer is what the member may consume now",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("HeartbeatRequest")}}},
                "responses": {
                    "200": _json(_ref("HeartbeatResponse"), "The member's epoch and assignment"),
                    "400": _error("INVALID_REQUEST, INVALID_GROUP_ID, INVALID_TOPIC_EXCEPTION or UNSUPPORTED_ASSIGNOR"),
                    "404": _error("UNKNOWN_MEMBER_ID: rejoin with epoch 0"),
                    "409": member_refused,
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                },
            },
        },
        "/v1/groups/{group}/offsets": {
            "parameters": [_GROUP],
            "get": {
                "summary": "Committed offsets (the next offset to read, per partition)",
                "responses": {"200": _json(_ref("CommittedOffsets"), "Committed offsets"), "400": bad_group},
            },
            "post": {
                "summary": "Commit offsets, fenced by the member epoch; all or nothing",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("CommitRequest")}}},
                "responses": {
                    "200": _json(_ref("CommittedOffsets"), "Committed"),
                    "400": bad_group,
                    "404": _error("UNKNOWN_MEMBER_ID or UNKNOWN_TOPIC_OR_PARTITION"),
                    "409": member_refused,
                    "413": _error("RECORD_LIST_TOO_LARGE"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                },
            },
        },
        "/v1/groups/{group}/offsets/reset": {
            "parameters": [_GROUP],
            "post": {
                "summary": "Set committed offsets to earliest, latest, a timestamp or an offset (no members only)",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ResetRequest")}}},
                "responses": {
                    "200": _json(_ref("CommittedOffsets"), "The new committed offsets"),
                    "400": bad_group,
                    "404": _error("GROUP_ID_NOT_FOUND or UNKNOWN_TOPIC_OR_PARTITION"),
                    "409": _error("NON_EMPTY_GROUP"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                    "503": _error(
                        "OFFSET_NOT_AVAILABLE (a new leader does not know its high watermark yet) or "
                        "BROKER_NOT_AVAILABLE (a partition's leader did not answer)"
                    ),
                },
            },
        },
    }


def _replication_paths() -> dict[str, Any]:
    return {
        "/v1/producers": {
            "post": {
                "summary": "A new idempotent producer id (epoch 0), unique across the cluster",
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {"producer_id": {"type": "integer"}, "producer_epoch": {"type": "integer"}},
                        },
                        "The producer id; batches then carry it with the epoch and their base sequence",
                    ),
                    "503": _error("BROKER_NOT_AVAILABLE: the controller did not answer"),
                },
            }
        },
        "/v1/replication/fetch": {
            "post": {
                "summary": "Internal: a follower fetches from the leader (JSON request, framed binary answer)",
                "responses": {
                    "200": {"description": "application/vnd.gafka.replication.v1, see docs/api.md"},
                    "400": {
                        "description": "INVALID_REQUEST (no body, or a malformed one), as a framed "
                        "application/vnd.gafka.replication.v1 error"
                    },
                },
            }
        },
        "/v1/replication/offsets/{topic}": {
            "parameters": [_TOPIC],
            "get": {
                "summary": "Internal: offsets of the partitions of a topic this broker leads",
                "responses": {"200": {"description": "{partitions: [{partition, leader_epoch, offsets}]}"}},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gafka broker API",
            "version": __version__,
            "description": "HTTP API v1 of a gafka broker; see docs/api.md for the full reference.",
        },
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS},
    }
