"""JoinGroup, SyncGroup, Heartbeat and LeaveGroup: thin faces over :mod:`gafka_broker.groups.classic`."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode as KafkaErrorCode

from gafka_broker.errors import ApiError
from gafka_broker.groups.classic import ClassicError, ClassicGroup, JoinRequest
from gafka_broker.kafka.codec import kafka_error
from gafka_broker.kafka.context import KafkaContext

__all__ = ["heartbeat", "join_group", "leave_group", "sync_group"]

_CODES = {code.name.upper(): code for code in KafkaErrorCode}


def _code(exc: ClassicError | ApiError) -> KafkaErrorCode:
    if isinstance(exc, ApiError):
        return kafka_error(exc.code)
    return _CODES.get(exc.code, KafkaErrorCode.unknown_server_error)


async def _group(context: KafkaContext, group_id: str, *, create: bool) -> ClassicGroup | None:
    """The classic group on this coordinator; NOT_COORDINATOR elsewhere, INCONSISTENT_GROUP_PROTOCOL when the
    id belongs to a KIP-848 group with members."""
    context.broker.check_ready()
    service = context.broker.groups
    if await service.route(group_id, create=True) is not None:
        raise ClassicError("NOT_COORDINATOR", f"broker {context.broker_id} does not coordinate {group_id!r}")
    consumer_group = service.group(group_id)
    if consumer_group is not None and consumer_group.members:
        raise ClassicError("INCONSISTENT_GROUP_PROTOCOL", f"group {group_id!r} is a consumer (KIP-848) group")
    return service.classic.get_or_create(group_id) if create else service.classic.get(group_id)


def _ms(value: Any) -> int:
    return int(value.total_seconds() * 1000) if hasattr(value, "total_seconds") else int(value)


async def join_group(context: KafkaContext, request: Any) -> dict[str, Any]:
    session_ms = _ms(request.session_timeout)
    rebalance_ms = _ms(getattr(request, "rebalance_timeout", request.session_timeout))
    try:
        group = await _group(context, request.group_id, create=True)
        assert group is not None
        joining = JoinRequest(
            request.member_id,
            getattr(request, "group_instance_id", None),
            context.client_id,
            context.client_host,
            request.protocol_type,
            tuple((p.name, bytes(p.metadata)) for p in request.protocols),
            session_ms,
            rebalance_ms,
        )
        result = await group.join(joining, require_known_member_id=request.__version__ >= 4)
    except (ClassicError, ApiError) as exc:
        return {
            "throttle_time": 0,
            "error_code": _code(exc),
            "generation_id": -1,
            "protocol_name": "" if request.__version__ < 7 else None,
            "leader": "",
            "member_id": exc.member_id if isinstance(exc, ClassicError) else "",
            "members": [],
        }
    return {
        "throttle_time": 0,
        "error_code": 0,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name if request.__version__ >= 7 else (result.protocol_name or ""),
        "leader": result.leader,
        "member_id": result.member_id,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "metadata": metadata}
            for member_id, instance_id, metadata in result.members
        ],
    }


async def sync_group(context: KafkaContext, request: Any) -> dict[str, Any]:
    try:
        group = await _group(context, request.group_id, create=False)
        if group is None:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {request.group_id!r} has no members")
        assignment = await group.sync(
            request.member_id,
            request.generation_id,
            {a.member_id: bytes(a.assignment) for a in request.assignments},
        )
    except (ClassicError, ApiError) as exc:
        return {"throttle_time": 0, "error_code": _code(exc), "assignment": b""}
    return {
        "throttle_time": 0,
        "error_code": 0,
        "protocol_type": group.protocol_type,
        "protocol_name": group.protocol_name,
        "assignment": assignment,
    }


async def heartbeat(context: KafkaContext, request: Any) -> dict[str, Any]:
    try:
        group = await _group(context, request.group_id, create=False)
        if group is None:
            raise ClassicError("UNKNOWN_MEMBER_ID", f"group {request.group_id!r} has no members")
        group.heartbeat(request.member_id, request.generation_id)
    except (ClassicError, ApiError) as exc:
        return {"throttle_time": 0, "error_code": _code(exc)}
    return {"throttle_time": 0, "error_code": 0}


async def leave_group(context: KafkaContext, request: Any) -> dict[str, Any]:
    leaving = getattr(request, "members", None)
    if leaving is None:  # v0-2: one member
        leaving_ids: list[tuple[str, str | None]] = [(request.member_id, None)]
    else:
        leaving_ids = [(m.member_id, m.group_instance_id) for m in leaving]
    try:
        group = await _group(context, request.group_id, create=False)
    except (ClassicError, ApiError) as exc:
        return {"throttle_time": 0, "error_code": _code(exc), "members": []}
    answers = []
    for member_id, instance_id in leaving_ids:
        code = KafkaErrorCode.none
        try:
            if group is None:
                raise ClassicError("UNKNOWN_MEMBER_ID", f"group {request.group_id!r} has no members")
            group.leave(member_id, instance_id)
        except ClassicError as exc:
            code = _code(exc)
        answers.append({"member_id": member_id, "group_instance_id": instance_id, "error_code": code})
    top = answers[0]["error_code"] if leaving is None else KafkaErrorCode.none
    return {"throttle_time": 0, "error_code": top, "members": answers}
