"""Where the controller keeps cluster metadata: compare-and-set on a version number.

``gafka dev`` and a lone broker use :class:`FileMetadataStore`; the Kubernetes operator provides one
backed by a Kubernetes object (its resourceVersion is the compare-and-set token).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import orjson

from gafka_broker.controller.metadata import ClusterMetadata
from gafka_broker.log.checkpoint import write_atomically


class VersionConflictError(Exception):
    """Somebody else changed the metadata since it was read; re-read and decide again."""


class MetadataStore(Protocol):
    def load(self) -> ClusterMetadata | None:
        """The current metadata with its version, or None before the cluster's first write."""

    def compare_and_set(self, expected_version: int, metadata: ClusterMetadata) -> ClusterMetadata:
        """Store ``metadata`` if the stored version is still ``expected_version``; return it with the new
        version, or raise :class:`VersionConflictError`."""


class MemoryMetadataStore:
    """For tests of the controller's decisions."""

    def __init__(self) -> None:
        self._current: ClusterMetadata | None = None
        self._lock = threading.Lock()

    def load(self) -> ClusterMetadata | None:
        return self._current

    def compare_and_set(self, expected_version: int, metadata: ClusterMetadata) -> ClusterMetadata:
        with self._lock:
            current_version = self._current.version if self._current is not None else 0
            if current_version != expected_version:
                raise VersionConflictError(f"expected version {expected_version}, found {current_version}")
            stored = replace(metadata, version=current_version + 1)
            self._current = stored
            return stored


class FileMetadataStore:
    """A JSON file replaced atomically; one process owns it, a lock orders its writers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], ClusterMetadata] | None = None

    def load(self) -> ClusterMetadata | None:
        """The stored metadata; parsed again only when the file changed (heartbeats read it often)."""
        try:
            stamp = _stamp(self.path)
        except FileNotFoundError:
            return None
        cached = self._cached
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        metadata = ClusterMetadata.from_json(raw["metadata"], version=int(raw["version"]))
        self._cached = (stamp, metadata)
        return metadata

    def compare_and_set(self, expected_version: int, metadata: ClusterMetadata) -> ClusterMetadata:
        with self._lock:
            current = self.load()
            current_version = current.version if current is not None else 0
            if current_version != expected_version:
                raise VersionConflictError(f"expected version {expected_version}, found {current_version}")
            version = current_version + 1
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(
                self.path,
                orjson.dumps({"version": version, "metadata": metadata.to_json()}, option=orjson.OPT_INDENT_2),
            )
            stored = replace(metadata, version=version)
            self._cached = (_stamp(self.path), stored)
            return stored


def _stamp(path: Path) -> tuple[int, int, int]:
    """Identity of the file's current content: every write renames a new inode into place."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_size
