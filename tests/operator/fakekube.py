"""An in-memory stand-in for :class:`gafka_operator.kube.KubeApi`: get / create / replace / merge_patch with the
API server's compare-and-set rules (resourceVersion, 404, 409), enough for the store and the Lease logic."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from gafka_operator.kube import ObjectRef


def _error(status: int) -> ApiException:
    return ApiException(status=status, reason={404: "NotFound", 409: "Conflict"}.get(status, "Error"))


class FakeKubeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        self._versions = itertools.count(1)
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def _key(ref: ObjectRef) -> tuple[str, str | None, str | None]:
        return ref.kind, ref.namespace, ref.name

    def get(self, ref: ObjectRef, subresource: str | None = None) -> dict[str, Any] | None:
        self.calls.append(("get", ref.kind))
        obj = self.objects.get(self._key(ref))
        return copy.deepcopy(obj) if obj is not None else None

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", str(obj["kind"])))
        key = self._key(ObjectRef.of(obj))
        if key in self.objects:
            raise _error(409)
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("replace", str(obj["kind"])))
        key = self._key(ObjectRef.of(obj))
        current = self.objects.get(key)
        if current is None:
            raise _error(404)
        wanted = obj["metadata"].get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise _error(409)
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def delete(self, ref: ObjectRef, *, uid: str | None = None) -> bool:
        return self.objects.pop(self._key(ref), None) is not None

    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any], subresource: str | None = None) -> dict[str, Any]:
        """RFC 7386 merge: objects merge key by key, a null removes, anything else replaces."""
        self.calls.append(("merge_patch", ref.kind))
        current = self.objects.get(self._key(ref))
        if current is None:
            raise _error(404)

        def merge(target: dict[str, Any], change: Mapping[str, Any]) -> None:
            for key, value in change.items():
                if value is None:
                    target.pop(key, None)
                elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
                    merge(target[key], value)
                else:
                    target[key] = copy.deepcopy(value)

        merge(current, patch)
        current["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(current)
