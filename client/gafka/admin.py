"""``Admin``: topics, configs, consumer groups and the cluster, as plain blocking calls.

Answers are the broker's JSON documents (dicts), so nothing is lost between the API and the caller; the
CLI renders them as tables. Every call tries the known brokers in turn when one cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from gafka.errors import (
    BrokerUnreachableError,
    GafkaError,
    NotFoundError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from gafka.http import SyncTransport, q
from gafka.metadata import ClusterMetadata
from gafka.records import TopicPartition

__all__ = ["Admin"]


class Admin:
    """Cluster administration over the broker's HTTP API."""

    def __init__(self, bootstrap: str | Sequence[str] = "http://127.0.0.1:9092", *, timeout: float = 30.0) -> None:
        self._metadata = ClusterMetadata(bootstrap)
        self._http = SyncTransport(timeout=timeout)

    def _call(self, method: str, path: str, document: Any = None, **kwargs: Any) -> Any:
        last: GafkaError | None = None
        for url in self._metadata.candidates():
            try:
                return self._http.json(url, method, path, document, **kwargs)
            except BrokerUnreachableError as exc:
                last = exc
        assert last is not None
        raise last

    # -- cluster -------------------------------------------------------------------------------------
    def cluster(self) -> dict[str, Any]:
        """``GET /v1/cluster``: id, brokers, controller and request limits."""
        answer: dict[str, Any] = self._call("GET", "/v1/cluster")
        self._metadata.apply_cluster(answer)
        return answer

    # -- topics --------------------------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str | int | bool] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> dict[str, Any]:
        """Create a topic and return it; with ``if_not_exists`` an existing topic is returned unchanged."""
        if if_not_exists:
            return self.ensure_topic(name, partitions, replication_factor, configs)[0]
        document: dict[str, Any] = {"name": name}
        if partitions is not None:
            document["partitions"] = partitions
        if replication_factor is not None:
            document["replication_factor"] = replication_factor
        if configs:
            document["configs"] = dict(configs)
        answer: dict[str, Any] = self._call("POST", "/v1/topics", document)
        return answer

    def ensure_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str | int | bool] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The topic, created unless it exists, and whether this call created it (an existing topic is
        left as it is, whatever ``partitions`` says)."""
        try:
            return self.create_topic(name, partitions, replication_factor, configs), True
        except TopicAlreadyExistsError:
            return self.describe_topic(name), False

    def list_topics(self) -> list[dict[str, Any]]:
        topics: list[dict[str, Any]] = self._call("GET", "/v1/topics")["topics"]
        return topics

    def describe_topic(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", f"/v1/topics/{q(name)}")
        return answer

    def alter_topic(
        self,
        name: str,
        *,
        partitions: int | None = None,
        configs: Mapping[str, str | int | bool | None] | None = None,
    ) -> dict[str, Any]:
        """Grow the partition count and/or set config overrides (a ``None`` value removes an override)."""
        document: dict[str, Any] = {}
        if partitions is not None:
            document["partitions"] = partitions
        if configs is not None:
            document["configs"] = dict(configs)
        answer: dict[str, Any] = self._call("PATCH", f"/v1/topics/{q(name)}", document)
        return answer

    def delete_topic(self, name: str, *, if_exists: bool = False) -> bool:
        """Delete a topic; True if it was deleted, False if it did not exist (with ``if_exists``; an
        UnknownTopicOrPartitionError without)."""
        try:
            self._call("DELETE", f"/v1/topics/{q(name)}")
        except UnknownTopicOrPartitionError:
            if not if_exists:
                raise
            return False
        return True

    def describe_configs(self, name: str) -> dict[str, str]:
        """Every effective config of a topic."""
        return dict(self.describe_topic(name).get("configs", {}))

    def alter_configs(self, name: str, configs: Mapping[str, str | int | bool | None]) -> dict[str, Any]:
        return self.alter_topic(name, configs=configs)

    def offset(self, topic: str, partition: int, at: str | int = "latest") -> int:
        """``earliest``, ``latest`` or the first offset at/after a timestamp (ms) of one partition."""
        answer = self._call("GET", f"/v1/topics/{q(topic)}/partitions/{partition}/offsets", params={"at": str(at)})
        return int(answer["offset"])

    # -- groups --------------------------------------------------------------------------------------
    def list_groups(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/v1/groups")
        groups = answer.get("groups", []) if isinstance(answer, Mapping) else answer
        return [group if isinstance(group, Mapping) else {"group": group} for group in groups]  # type: ignore[misc]

    def describe_group(self, group: str) -> dict[str, Any]:
        """State, epoch, members and per-partition committed offset, end offset and lag."""
        answer: dict[str, Any] = self._call("GET", f"/v1/groups/{q(group)}")
        return answer

    def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        """The group's committed offsets (next offset to read)."""
        try:
            answer = self._call("GET", f"/v1/groups/{q(group)}/offsets")
        except NotFoundError:
            return {}
        return {
            TopicPartition(str(entry["topic"]), int(entry["partition"])): int(entry["offset"])
            for entry in answer.get("offsets", [])
        }

    def group_lag(self, group: str) -> list[dict[str, Any]]:
        """Per committed partition: committed offset, log end offset (high watermark) and lag."""
        committed = self.group_offsets(group)
        ends: dict[str, list[int]] = {}
        rows: list[dict[str, Any]] = []
        for tp, offset in sorted(committed.items()):
            if tp.topic not in ends:
                try:
                    ends[tp.topic] = [int(p["high_watermark"]) for p in self.describe_topic(tp.topic)["partitions"]]
                except NotFoundError:
                    ends[tp.topic] = []
            topic_ends = ends[tp.topic]
            end = topic_ends[tp.partition] if tp.partition < len(topic_ends) else None
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed_offset": offset,
                    "log_end_offset": end,
                    "lag": None if end is None else max(end - offset, 0),
                }
            )
        return rows

    def reset_group_offsets(
        self,
        group: str,
        topic: str | None,
        to: str | int,
        partitions: Iterable[int] | None = None,
    ) -> dict[TopicPartition, int]:
        """Set a group's committed offsets to ``earliest``, ``latest``, ``timestamp:<ms>`` or an offset.

        ``topic`` None resets every partition the group has committed. The broker allows it only while
        the group has no members (NON_EMPTY_GROUP otherwise). Returns the offsets now committed.
        """
        target: Any
        if isinstance(to, int) or to.lstrip("-").isdigit():
            target = {"offset": int(to)}
        elif to.startswith("timestamp:"):
            target = {"timestamp": int(to.split(":", 1)[1])}
        elif to in ("earliest", "latest"):
            target = to
        else:
            raise ValueError(f"reset to earliest, latest, timestamp:<ms> or an offset, not {to!r}")
        document: dict[str, Any] = {"to": target}
        if topic is not None:
            chosen = None if partitions is None else sorted(partitions)
            document["topics"] = [{"topic": topic, "partitions": chosen} if chosen is not None else topic]
        answer = self._call("POST", f"/v1/groups/{q(group)}/offsets/reset", document)
        return {
            TopicPartition(str(entry["topic"]), int(entry["partition"])): int(entry["offset"])
            for entry in answer.get("offsets", [])
        }

    def delete_group(self, group: str) -> None:
        self._call("DELETE", f"/v1/groups/{q(group)}")

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
