"""The OpenAPI document against real answers: the shared client checks every answer (tests/openapi_check.py);
these are the answers a fuzzer found the document did not declare, and the bodies it was too loose about."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from openapi_check import check_response

if TYPE_CHECKING:
    from conftest import BrokerProcess


@pytest.fixture
def http(shared_broker: BrokerProcess) -> httpx.Client:
    return shared_broker.client()


def test_the_checker_refuses_what_the_document_does_not_say(shared_broker: BrokerProcess) -> None:
    with httpx.Client(base_url=shared_broker.url, timeout=30) as plain:  # a client without the check
        answer = plain.get("/v1/cluster")
    check_response(answer)
    answer.request.method = "POST"
    with pytest.raises(AssertionError, match="not in the OpenAPI document"):
        check_response(answer)
    answer.request.method = "GET"
    answer.status_code = 418
    with pytest.raises(AssertionError, match="does not declare"):
        check_response(answer)


def test_undeclared_400s_are_declared_now(http: httpx.Client) -> None:
    for method, path, kwargs in (
        ("DELETE", "/v1/topics/__consumer_offsets", {}),
        ("GET", "/v1/topics", {"params": {"internal": "null"}}),
        ("POST", "/v1/replication/fetch", {}),
    ):
        response = http.request(method, path, **kwargs)  # the client's check fails the test when undeclared
        assert 400 <= response.status_code < 500, (method, path, response.text)


REFUSED = [
    ("/v1/topics/{topic}/records", "ProduceRequest", {"records": [{"val": "x"}]}),
    ("/v1/topics/{topic}/records", "ProduceRequest", {"records": [{"value": "x"}], "acks": "all"}),
    (
        "/v1/groups/g-contract/offsets",
        "CommitRequest",
        {"offsets": [{"topic": "{topic}", "partition": 0, "offset": 0, "leader_epoch": 3}]},
    ),
    (
        "/v1/groups/g-contract/heartbeat",
        "HeartbeatRequest",
        {"member_epoch": 0, "topics": ["{topic}"], "owned": [{"topic": "{topic}", "partition": [0]}]},
    ),
    ("/v1/groups/g-contract-reset/offsets/reset", "ResetRequest", {"to": {"timestamp": 1, "offset": 2}}),
    ("/v1/groups/g-contract-reset/offsets/reset", "ResetRequest", {"to": {"offest": 2}}),
    ("/v1/groups/g-contract-reset/offsets/reset", "ResetRequest", {"to": "earliest", "topics": [{"name": "t"}]}),
]


@pytest.mark.parametrize(("path", "schema", "body"), REFUSED, ids=[f"{s}-{i}" for i, (_, s, _) in enumerate(REFUSED)])
def test_request_schemas_refuse_what_the_broker_refuses(
    http: httpx.Client, topic: str, path: str, schema: str, body: dict[str, object]
) -> None:
    """Each body here is a 400 from the broker, so the document must not call it valid (a client generated from
    the document would send it)."""
    import json

    body = json.loads(json.dumps(body).replace("{topic}", topic))
    http.post("/v1/topics", json={"name": topic, "partitions": 1})
    operations = _validator_for(schema)
    assert list(operations.iter_errors(body)), f"the {schema} schema accepts {body}"
    response = http.post(path.replace("{topic}", topic), json=body)
    assert response.status_code == 400, response.text


def _validator_for(name: str) -> Any:
    from openapi_check import schema_validator

    return schema_validator({"$ref": f"#/components/schemas/{name}"})
