"""Error codes: Kafka's names, one HTTP status each, and client mistakes never 5xx."""

from __future__ import annotations

from pathlib import Path

import orjson

from gafka_broker.api.http_errors import api_error_response
from gafka_broker.errors import HTTP_STATUS, ApiError, ErrorCode

CLIENT_MISTAKES = {
    "INVALID_REQUEST": 400,
    "INVALID_TOPIC_EXCEPTION": 400,
    "INVALID_CONFIG": 400,
    "INVALID_PARTITIONS": 400,
    "INVALID_REPLICATION_FACTOR": 400,
    "CORRUPT_MESSAGE": 400,
    "INVALID_RECORD": 400,
    "UNKNOWN_TOPIC_OR_PARTITION": 404,
    "TOPIC_ALREADY_EXISTS": 409,
    "MESSAGE_TOO_LARGE": 413,
    "RECORD_LIST_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "OFFSET_OUT_OF_RANGE": 416,
    "THROTTLING_QUOTA_EXCEEDED": 429,
}


def test_every_code_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    for code, status in CLIENT_MISTAKES.items():
        assert ErrorCode(code).status == status
    assert ErrorCode.NOT_ENOUGH_REPLICAS.status == 503
    assert ErrorCode.BROKER_NOT_AVAILABLE.status == 503


def test_api_error_body_and_response() -> None:
    error = ApiError(ErrorCode.OFFSET_OUT_OF_RANGE, "out", log_start_offset=0, high_watermark=5)
    response = api_error_response(error)
    assert response.status_code == 416
    assert response.media_type == "application/json"
    assert orjson.loads(bytes(response.body)) == {
        "error_code": "OFFSET_OUT_OF_RANGE",
        "message": "out",
        "log_start_offset": 0,
        "high_watermark": 5,
    }


def test_every_code_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    for code, status in HTTP_STATUS.items():
        assert f"`{code.value}`" in doc, code
        assert f"| `{code.value}` | {status} |" in doc, code
