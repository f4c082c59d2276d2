"""Cluster metadata of a one-node cluster, persisted in the data directory.

Two files, each written atomically (temp file, fsync, rename, fsync of the directory):

- ``meta.properties``: the broker id and the cluster id, like Kafka's; created on first start, checked on
  every later start so a data directory is never served under another identity.
- ``topics.json``: the topic registry (name -> partition count, replication factor, config overrides).

:class:`TopicRegistry` is the interface the API codes against; :class:`LocalTopicRegistry` is the one-node
implementation. The replication issue puts a controller behind the same interface.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = [
    "BrokerMeta",
    "DataDirLock",
    "InvalidTopicNameError",
    "LocalTopicRegistry",
    "MetadataError",
    "TopicMetadata",
    "TopicRegistry",
    "colliding_topic",
    "load_or_create_meta",
    "validate_topic_name",
    "write_atomic",
]

LOCK_FILE = "broker.lock"
META_FILE = "meta.properties"
TOPICS_FILE = "topics.json"
MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")


class MetadataError(RuntimeError):
    """The metadata on disk is unreadable or belongs to another broker or cluster."""


class InvalidTopicNameError(ValueError):
    """The name breaks Kafka's topic-name rules."""


def validate_topic_name(name: object) -> str:
    """Kafka's ``Topic.validate``: 1..249 characters of ``[a-zA-Z0-9._-]``, and not ``.`` or ``..``."""
    if not isinstance(name, str):
        raise InvalidTopicNameError("the topic name must be a string")
    if not name:
        raise InvalidTopicNameError("the topic name must not be empty")
    if name in (".", ".."):
        raise InvalidTopicNameError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicNameError(
            f"topic name is {len(name)} characters long; the maximum is {MAX_TOPIC_NAME_LENGTH}"
        )
    if not _LEGAL_TOPIC_NAME.fullmatch(name):
        raise InvalidTopicNameError(
            f"topic name {name!r} has illegal characters; use only ASCII letters, digits, '.', '_' and '-'"
        )
    return name


def colliding_topic(name: str, existing: Mapping[str, object]) -> str | None:
    """An existing topic whose name equals ``name`` once '.' and '_' are treated alike (Kafka rejects those)."""
    folded = name.replace(".", "_")
    for other in existing:
        if other != name and other.replace(".", "_") == folded:
            return other
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DataDirLock:
    """An exclusive ``flock`` on the data directory, so two brokers never write the same logs."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> DataDirLock:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise MetadataError(f"{self._path.parent} is in use by another broker (cannot lock {self._path})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class BrokerMeta:
    """What ``meta.properties`` records: who this data directory belongs to."""

    broker_id: int
    cluster_id: str


def new_cluster_id() -> str:
    """A random id in Kafka's format: a UUID as 22 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def _parse_properties(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        key, sep, value = stripped.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def load_or_create_meta(data_dir: Path, broker_id: int, cluster_id: str | None) -> BrokerMeta:
    """Read ``meta.properties`` (checking it matches the configured ids) or write it on first start."""
    path = data_dir / META_FILE
    if path.exists():
        try:
            props = _parse_properties(path.read_text())
            stored = BrokerMeta(int(props["node.id"]), props["cluster.id"])
        except (OSError, KeyError, ValueError) as exc:
            raise MetadataError(f"{path} is unreadable or incomplete: {exc}") from None
        if stored.broker_id != broker_id:
            raise MetadataError(
                f"{data_dir} belongs to broker {stored.broker_id}, but this broker is configured as {broker_id}"
            )
        if cluster_id is not None and stored.cluster_id != cluster_id:
            raise MetadataError(
                f"{data_dir} belongs to cluster {stored.cluster_id}, but this broker is configured for {cluster_id}"
            )
        return stored
    meta = BrokerMeta(broker_id, cluster_id or new_cluster_id())
    body = f"#gafka broker metadata\nversion=1\nnode.id={meta.broker_id}\ncluster.id={meta.cluster_id}\n"
    write_atomic(path, body.encode())
    return meta


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    """One topic as the cluster knows it; ``configs`` holds only the overrides, under Kafka's names."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)
    topic_id: str = field(default_factory=new_cluster_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_id": self.topic_id,
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "configs": dict(self.configs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TopicMetadata:
        return cls(
            name=str(data["name"]),
            partitions=int(data["partitions"]),
            replication_factor=int(data["replication_factor"]),
            configs={str(k): str(v) for k, v in dict(data.get("configs") or {}).items()},
            topic_id=str(data.get("topic_id") or new_cluster_id()),
        )

    def with_changes(self, *, partitions: int | None = None, configs: Mapping[str, str] | None = None) -> TopicMetadata:
        return replace(
            self,
            partitions=self.partitions if partitions is None else partitions,
            configs=self.configs if configs is None else dict(configs),
        )


class TopicRegistry(Protocol):
    """Where topics are defined; every change is durable when the call returns."""

    def topics(self) -> Mapping[str, TopicMetadata]: ...

    def get(self, name: str) -> TopicMetadata | None: ...

    def create(self, topic: TopicMetadata) -> None: ...

    def update(self, topic: TopicMetadata) -> None: ...

    def delete(self, name: str) -> None: ...


class LocalTopicRegistry:
    """The one-node registry: every topic in ``topics.json``, rewritten atomically on each change."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / TOPICS_FILE
        self._topics: dict[str, TopicMetadata] = self._load()

    def _load(self) -> dict[str, TopicMetadata]:
        if not self._path.exists():
            return {}
        try:
            data = orjson.loads(self._path.read_bytes())
            return {entry["name"]: TopicMetadata.from_json(entry) for entry in data["topics"]}
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"{self._path} is unreadable: {exc}") from None

    def _save(self, topics: dict[str, TopicMetadata]) -> None:
        body = {"version": 1, "topics": [topic.to_json() for topic in topics.values()]}
        write_atomic(self._path, orjson.dumps(body, option=orjson.OPT_INDENT_2))
        self._topics = topics

    def topics(self) -> Mapping[str, TopicMetadata]:
        return self._topics

    def get(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def create(self, topic: TopicMetadata) -> None:
        if topic.name in self._topics:
            raise MetadataError(f"topic {topic.name!r} already exists")
        self._save({**self._topics, topic.name: topic})

    def update(self, topic: TopicMetadata) -> None:
        if topic.name not in self._topics:
            raise MetadataError(f"topic {topic.name!r} does not exist")
        self._save({**self._topics, topic.name: topic})

    def delete(self, name: str) -> None:
        if name not in self._topics:
            return
        topics = dict(self._topics)
        del topics[name]
        self._save(topics)
