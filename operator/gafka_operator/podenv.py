"""The environment and command a kubelet would give a container: downward-API fields and ``$(VAR)`` expansion.

The broker pods get their id, advertised URL and rack this way (see :mod:`gafka_operator.manifests`). A test
node agent that runs pod commands as local processes needs the same resolution, and the unit tests use it to
check that what the StatefulSet hands a broker is a configuration the broker accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["container_command", "container_environment", "expand", "field_value"]

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")
_FIELDS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
    "status.hostIP": ("status", "hostIP"),
}


def field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """A downward-API ``fieldRef``; a missing label or annotation is the empty string, as on a kubelet."""
    subscript = _SUBSCRIPT.match(field_path)
    if subscript:
        section, key = subscript.groups()
        return str(((pod.get("metadata") or {}).get(section) or {}).get(key, ""))
    if field_path not in _FIELDS:
        raise ValueError(f"unsupported fieldRef {field_path!r}")
    outer, inner = _FIELDS[field_path]
    return str((pod.get(outer) or {}).get(inner) or "")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal ``$``, the rest is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end == -1:  # an unclosed reference is kept, and the text after it is still scanned
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def container_environment(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: Callable[[str, Mapping[str, Any]], str] | None = None,
) -> dict[str, str]:
    """The container's ``env`` in order, each value expanded against the ones before it. ``lookup(kind, ref)``
    answers ``configMapKeyRef``/``secretKeyRef``/``resourceFieldRef`` (kind is that key) when given."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        source: Mapping[str, Any] = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif lookup is not None and source:
            kind = next(iter(source))
            env[name] = lookup(kind, source[kind])
        else:
            raise ValueError(f"env {name}: unsupported source {sorted(source)}")
    return env


def container_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded, as the runtime would exec them."""
    words: Sequence[str] = [*(container.get("command") or []), *(container.get("args") or [])]
    return [expand(str(word), env) for word in words]
