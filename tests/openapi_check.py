"""Every answer a test receives through the shared broker client is checked against the broker's own OpenAPI
document: its status must be declared for the operation, and a JSON body must match the declared schema. So
the document cannot drift from the code (the handlers, docs/api.md and the SDK's parsers are checked against
real answers elsewhere)."""

from __future__ import annotations

import functools
import re
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from gafka_broker.openapi import openapi_document

__all__ = ["check_response", "schema_validator"]

_METHODS = ("get", "post", "put", "patch", "delete")


class _Operations:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        from referencing.jsonschema import DRAFT202012

        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource("urn:gafka-openapi", resource)
        self.routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []
        for template, item in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
            for method in _METHODS:
                if method in item:
                    self.routes.append((pattern, method, item[method]))
        # literal paths before templated ones (/v1/topics/x vs /v1/topics/{topic})
        self.routes.sort(key=lambda route: route[0].pattern.count("[^/]+"))

    def find(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, route_method, operation in self.routes:
            if route_method == method and pattern.match(path):
                return operation
        return None

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(_rebase(schema), registry=self.registry)


def _rebase(node: Any) -> Any:
    """``#/components/...`` references point into the OpenAPI document."""
    if isinstance(node, dict):
        return {
            key: (
                "urn:gafka-openapi" + value
                if key == "$ref" and isinstance(value, str) and value.startswith("#")
                else _rebase(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebase(item) for item in node]
    return node


@functools.cache
def _operations() -> _Operations:
    return _Operations(openapi_document())


def check_response(response: httpx.Response) -> None:
    """Fail the request (an AssertionError from the client call) when the answer is not what the document says."""
    request = response.request
    path = request.url.path
    operation = _operations().find(request.method.lower(), path)
    if operation is None:
        if response.status_code in (404, 405):
            return  # a route that does not exist: nothing is declared for it
        raise AssertionError(
            f"{request.method} {path} answered {response.status_code} but is not in the OpenAPI document"
        )
    declared = operation.get("responses", {})
    status = str(response.status_code)
    answer = declared.get(status) or declared.get("default")
    if answer is None:
        response.read()
        raise AssertionError(
            f"{request.method} {path} answered {status}, which its OpenAPI operation does not declare "
            f"({', '.join(sorted(declared))}): {response.text[:300]}"
        )
    schema = (answer.get("content") or {}).get("application/json", {}).get("schema")
    if schema is None or not response.headers.get("content-type", "").startswith("application/json"):
        return
    response.read()
    body = orjson.loads(response.content)
    errors = sorted(_operations().validator(schema).iter_errors(body), key=lambda error: list(error.path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path))
        raise AssertionError(
            f"{request.method} {path} {status}: the answer breaks its OpenAPI schema at '{where}': {errors[0].message}"
        )


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in the broker's document."""
    return _operations().validator(schema)
