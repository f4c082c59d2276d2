"""Pod volumes as local directories, and container paths rewritten to them.

A container sees its volumes at ``mountPath``; a local process sees the directories the agent made for them.
:func:`path_rewriter` maps one to the other in the container's environment and command, which is where pod
specs name paths (``GAFKA_DATA_DIR=/var/lib/gafka/data``, ``cat /etc/podinfo/rack``). Contents of configMap,
secret and downwardAPI volumes are computed here (pure) and written by :func:`write_files` only when they
change, as the kubelet refreshes them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gafka_operator.podenv import field_value

__all__ = ["Mount", "configmap_files", "downward_files", "path_rewriter", "secret_files", "write_files"]


@dataclass(frozen=True, slots=True)
class Mount:
    container_path: str
    host_path: Path


def path_rewriter(mounts: Sequence[Mount]) -> Callable[[str], str]:
    """Replace every container path under a mount point by the host path (longest mount point first).

    A mount point is recognised where a path can start (start of text, after whitespace, a quote, ``=`` or
    ``:``) and where it ends (``/``, whitespace, a quote, ``:`` or the end): ``/tmp`` is rewritten in
    ``/tmp/x`` and ``--dir=/tmp`` but not in ``/var/tmp`` or ``/tmpfoo``.
    """
    ordered = sorted(mounts, key=lambda m: len(m.container_path.rstrip("/")), reverse=True)
    if not ordered:
        return lambda text: text
    by_path = {m.container_path.rstrip("/") or "/": str(m.host_path) for m in ordered}
    alternatives = "|".join(re.escape(path) for path in by_path)
    pattern = re.compile(rf"(?<![^\s'\"=:])({alternatives})(?=$|[/\s'\":;])")
    return lambda text: pattern.sub(lambda match: by_path[match.group(1)], text)


def _items(
    source: Mapping[str, Any], data: Mapping[str, bytes], what: str, *, optional: bool = False
) -> dict[str, bytes]:
    """``items`` (key -> path) when given, else every key as a file of its own name."""
    items = source.get("items")
    if not items:
        return dict(data)
    files: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            if optional or source.get("optional"):
                continue
            raise KeyError(f"{what} has no key {item['key']!r}")
        files[item["path"]] = data[item["key"]]
    return files


def configmap_files(configmap: Mapping[str, Any] | None, source: Mapping[str, Any]) -> dict[str, bytes]:
    if configmap is None:
        if source.get("optional"):
            return {}
        raise KeyError(f"configMap {source.get('name')!r} does not exist")
    data = {key: str(value).encode() for key, value in (configmap.get("data") or {}).items()}
    data.update({key: base64.b64decode(value) for key, value in (configmap.get("binaryData") or {}).items()})
    return _items(source, data, f"configMap {source.get('name')!r}")


def secret_files(secret: Mapping[str, Any] | None, source: Mapping[str, Any]) -> dict[str, bytes]:
    if secret is None:
        if source.get("optional"):
            return {}
        raise KeyError(f"secret {source.get('secretName')!r} does not exist")
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    return _items(source, data, f"secret {source.get('secretName')!r}")


def downward_files(pod: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, bytes]:
    """A downwardAPI volume: ``fieldRef`` items (labels and annotations as the kubelet writes them too)."""
    files: dict[str, bytes] = {}
    for item in source.get("items") or []:
        ref = item.get("fieldRef")
        if ref is None:
            raise ValueError(f"downwardAPI item {item.get('path')!r}: only fieldRef is supported")
        path = ref["fieldPath"]
        if path in ("metadata.labels", "metadata.annotations"):
            section = (pod.get("metadata") or {}).get(path.split(".")[1]) or {}
            files[item["path"]] = "\n".join(f'{k}="{v}"' for k, v in sorted(section.items())).encode()
        else:
            files[item["path"]] = field_value(pod, path).encode()
    return files


def write_files(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Make ``directory`` hold exactly ``files`` (written atomically, by rename); True if anything changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    for relative, content in files.items():
        target = directory / relative
        try:
            if target.read_bytes() == content:
                continue
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(content)
        temporary.replace(target)
        changed = True
    wanted = {directory / relative for relative in files}
    for existing in list(directory.rglob("*")):
        if existing.is_file() and existing not in wanted and not existing.name.endswith(".tmp"):
            existing.unlink()
            changed = True
    return changed
