"""Consumer groups over HTTP, KIP-848 style: heartbeat, offset commit and fetch, and group administration.

Every call stands alone: a member heartbeats and is told what it may consume *now*; the broker never
waits for other members. A partition moving between members is first revoked from its owner, and only
handed to the next one after the owner's following heartbeat confirms the release (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response, read_json_object
from gafka_broker.api.group_requests import (
    COMMIT_FIELDS,
    HEARTBEAT_FIELDS,
    RESET_FIELDS,
    parse_commit,
    parse_heartbeat,
    parse_reset,
    validate_group_id,
)
from gafka_broker.broker import Broker
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.assignors import TopicPartition
from gafka_broker.groups.coordinator import CommittedOffset
from gafka_broker.groups.group import ConsumerGroup, GroupError
from gafka_broker.groups.service import GroupService
from gafka_broker.replication.forwarding import is_forwarded

__all__ = ["GroupHandlers", "assignment_json"]

SMALL_BODY_LIMIT = 1024 * 1024
"""Heartbeats and resets are small; a commit may be as big as any request (``max_request_bytes``)."""


@contextmanager
def _group_errors() -> Iterator[None]:
    """The coordinator's refusals as API errors under the same Kafka names."""
    try:
        yield
    except GroupError as exc:
        raise ApiError(ErrorCode(exc.code.value), exc.message) from None


def assignment_json(partitions: Iterable[TopicPartition]) -> list[dict[str, Any]]:
    """``[{"topic", "partitions": [...]}]`` sorted by topic and partition."""
    by_topic: dict[str, list[int]] = {}
    for topic, index in sorted(partitions):
        by_topic.setdefault(topic, []).append(index)
    return [{"topic": topic, "partitions": indexes} for topic, indexes in by_topic.items()]


def _offset_json(committed: CommittedOffset) -> dict[str, Any]:
    return {
        "topic": committed.topic,
        "partition": committed.partition,
        "offset": committed.offset,
        "metadata": committed.metadata,
        "commit_timestamp": committed.commit_timestamp,
    }


def _members_json(group: ConsumerGroup) -> list[dict[str, Any]]:
    return [
        {
            "member_id": member.member_id,
            "instance_id": member.instance_id,
            "member_epoch": member.epoch,
            "subscriptions": sorted(member.subscriptions),
            "assignment": assignment_json(member.owned),
            "pending_revocation": assignment_json(member.revoking),
            "target_assignment": assignment_json(group.target.get(member.member_id, ())),
            "rebalance_timeout_ms": member.rebalance_timeout_ms,
            "session_timeout_ms": member.session_timeout_ms,
            "left_temporarily": member.left_temporarily,
        }
        for member in sorted(group.members.values(), key=lambda m: m.member_id)
    ]


async def _partitions_json(
    service: GroupService, group: ConsumerGroup, committed: list[CommittedOffset]
) -> list[dict[str, Any]]:
    """Per partition: owner, committed offset, high watermark (asked of the leader when another broker
    leads it) and lag (null while nothing is committed)."""
    by_partition = {(c.topic, c.partition): c for c in committed}
    owners = {tp: holders[0] for tp, holders in group.owners().items()}
    counts = service.broker.partition_counts()
    subscribed = {topic for member in group.members.values() for topic in member.subscriptions}
    wanted = {(topic, index) for topic in subscribed for index in range(counts.get(topic, 0))}
    chosen = sorted(wanted | set(by_partition) | set(owners))
    ends = await service.log_end_offsets(chosen)
    rows = []
    for topic, index in chosen:
        end = ends[(topic, index)]
        commit = by_partition.get((topic, index))
        rows.append(
            {
                "topic": topic,
                "partition": index,
                "member_id": owners.get((topic, index)),
                "committed_offset": commit.offset if commit else None,
                "metadata": commit.metadata if commit else None,
                "log_end_offset": end,
                "lag": end - commit.offset if commit is not None and end is not None else None,
            }
        )
    return rows


def group_summary(group: ConsumerGroup) -> dict[str, Any]:
    return {
        "group": group.group_id,
        "state": group.state.value,
        "group_epoch": group.epoch,
        "assignor": group.assignor,
        "member_count": len(group.members),
    }


class GroupHandlers:
    """``/v1/groups/...``, bound to one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def _group_id(self, request: Request) -> str:
        self.broker.check_ready()
        return validate_group_id(request.path_params["group"])

    async def _elsewhere(self, request: Request, group_id: str, *, create: bool) -> Response | None:
        """None when this broker coordinates the group (leads its ``__consumer_offsets`` partition); otherwise
        the coordinator's answer to the same request, forwarded once."""
        coordinator = await self.broker.groups.route(group_id, create=create)
        if coordinator is None:
            return None
        if is_forwarded(request):
            raise ApiError(
                ErrorCode.NOT_COORDINATOR,
                f"broker {self.broker.meta.broker_id} does not coordinate group {group_id!r}; broker "
                f"{coordinator.broker_id} does",
                coordinator_id=coordinator.broker_id,
                coordinator_url=coordinator.url,
            )
        return await self.broker.forwarder.proxy(
            request, coordinator.broker_id, coordinator.url, timeout_s=self.broker.config.request_timeout_ms / 1000 + 10
        )

    def _existing(self, group_id: str) -> ConsumerGroup:
        group = self.broker.groups.group(group_id)
        if group is None:
            raise ApiError(ErrorCode.GROUP_ID_NOT_FOUND, f"group {group_id!r} does not exist")
        return group

    async def heartbeat(self, request: Request) -> Response:
        """``POST /v1/groups/{group}/heartbeat``: join (epoch 0), stay, leave (-1) or pause (-2, static)."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=True)) is not None:
            return forwarded
        document = await read_json_object(request, HEARTBEAT_FIELDS, SMALL_BODY_LIMIT)
        parsed = parse_heartbeat(document, self.broker.config.group_heartbeat_interval_ms)
        with _group_errors():
            response = self.broker.groups.heartbeat(group_id, parsed.request, parsed.assignor)
        await self.broker.groups.durable(group_id)
        return json_response(
            {
                "member_id": response.member_id,
                "member_epoch": response.member_epoch,
                "heartbeat_interval_ms": response.heartbeat_interval_ms,
                "assignment": assignment_json(response.assignment),
            }
        )

    async def commit(self, request: Request) -> Response:
        """``POST /v1/groups/{group}/offsets``: all offsets or none, fenced by the member epoch."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=True)) is not None:
            return forwarded
        document = await read_json_object(request, COMMIT_FIELDS, self.broker.config.max_request_bytes)
        member_id, epoch, offsets = parse_commit(document)
        with _group_errors():
            self.broker.groups.commit(group_id, member_id, epoch, offsets)
        await self.broker.groups.durable(group_id)
        wanted = {(c.topic, c.partition) for c in offsets}
        stored = [c for c in self.broker.groups.committed(group_id) if (c.topic, c.partition) in wanted]
        return json_response({"offsets": [_offset_json(c) for c in stored]})

    async def offsets(self, request: Request) -> Response:
        """``GET /v1/groups/{group}/offsets``: every committed offset (none for an unknown group, as Kafka)."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=False)) is not None:
            return forwarded
        return json_response({"offsets": [_offset_json(c) for c in self.broker.groups.committed(group_id)]})

    async def list(self, request: Request) -> Response:
        """``GET /v1/groups``: the groups of every coordinator (each broker asks the others for theirs)."""
        broker = self.broker
        broker.check_ready()
        service = broker.groups
        groups = [service.group(group_id) for group_id in service.group_ids()]
        summaries = [group_summary(group) for group in groups if group is not None]
        if not is_forwarded(request):
            summaries += await broker.groups.remote_summaries()
        summaries.sort(key=lambda summary: str(summary["group"]))
        return json_response({"groups": summaries})

    async def describe(self, request: Request) -> Response:
        """``GET /v1/groups/{group}``: state, epochs, members and per-partition lag."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=False)) is not None:
            return forwarded
        group = self._existing(group_id)
        service = self.broker.groups
        coordinator = service.loaded
        assert coordinator is not None  # a group exists, so its coordinator does
        partitions = await _partitions_json(service, group, service.committed(group_id))
        return json_response(
            {
                **group_summary(group),
                "assignment_epoch": group.assignment_epoch,
                "coordinator": self.broker.meta.broker_id,
                "offsets_partition": coordinator.partition_for(group_id),
                "members": _members_json(group),
                "partitions": partitions,
            }
        )

    async def reset(self, request: Request) -> Response:
        """``POST /v1/groups/{group}/offsets/reset``: only while the group has no members."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=True)) is not None:
            return forwarded
        document = await read_json_object(request, RESET_FIELDS, SMALL_BODY_LIMIT)
        target, topics = parse_reset(document)
        dry_run = document.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ApiError(ErrorCode.INVALID_REQUEST, "dry_run must be true or false")
        if dry_run:
            with _group_errors():
                planned = await self.broker.groups.plan_reset(group_id, target, topics)
            current = {(c.topic, c.partition): c.offset for c in self.broker.groups.committed(group_id)}
            return json_response(
                {
                    "dry_run": True,
                    "offsets": [
                        {
                            "topic": topic,
                            "partition": partition,
                            "offset": offset,
                            "current_offset": current.get((topic, partition)),
                        }
                        for (topic, partition), offset in sorted(planned.items())
                    ],
                }
            )
        with _group_errors():
            offsets = await self.broker.groups.reset(group_id, target, topics)
        await self.broker.groups.durable(group_id)
        return json_response({"offsets": [_offset_json(c) for c in offsets]})

    async def delete(self, request: Request) -> Response:
        """``DELETE /v1/groups/{group}`` -> 204: the group and its committed offsets; empty groups only."""
        group_id = self._group_id(request)
        if (forwarded := await self._elsewhere(request, group_id, create=False)) is not None:
            return forwarded
        with _group_errors():
            self.broker.groups.delete(group_id)
        await self.broker.groups.durable(group_id)
        return Response(status_code=204)
