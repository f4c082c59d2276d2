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
                "items": {"type": "object", "properties": {"id": {"type": "integer"}, "url": {"type": "string"}}},
            },
            "controller": {"type": "integer"},
            "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
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
        "properties": {
            name: {"type": "integer"}
            for name in ("partition", "leader", "leader_epoch", "log_start_offset", "high_watermark", "log_end_offset")
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
        "properties": {
            "key_format": _FORMAT,
            "value_format": _FORMAT,
            "records": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
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
            "high_watermark": {"type": "integer"},
            "log_start_offset": {"type": "integer"},
            "next_offset": {"type": "integer"},
        },
    },
    "Offset": {
        "type": "object",
        "required": ["offset"],
        "properties": {"offset": {"type": "integer"}, "timestamp": {"type": "integer"}},
    },
}


def _paths() -> dict[str, Any]:
    partition = "/v1/topics/{topic}/partitions/{partition}"
    not_found = _error("UNKNOWN_TOPIC_OR_PARTITION")
    unavailable = _error("BROKER_NOT_AVAILABLE: still recovering")
    return {
        "/v1/cluster": {
            "get": {
                "summary": "Cluster id, brokers, controller and request limits",
                "responses": {"200": _json(_ref("Cluster"), "The cluster")},
            }
        },
        "/v1/topics": {
            "get": {
                "summary": "List topics",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"topics": {"type": "array", "items": _ref("TopicSummary")}}},
                        "Every topic",
                    ),
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
                "responses": {"200": _json(_ref("Topic"), "The topic"), "404": not_found},
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
                "responses": {"204": {"description": "Deleted"}, "404": not_found},
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
                    "413": _error("RECORD_LIST_TOO_LARGE or MESSAGE_TOO_LARGE"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                    "503": _error("NOT_ENOUGH_REPLICAS or BROKER_NOT_AVAILABLE"),
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
                    "413": _error("MESSAGE_TOO_LARGE or RECORD_LIST_TOO_LARGE"),
                    "415": _error("UNSUPPORTED_MEDIA_TYPE"),
                    "503": _error("NOT_ENOUGH_REPLICAS or BROKER_NOT_AVAILABLE"),
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
                    "429": _error("THROTTLING_QUOTA_EXCEEDED: too many parked fetches"),
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
                },
            },
        },
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
