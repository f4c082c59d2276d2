"""Topic and config administration, cluster description, group listing and OffsetForLeaderEpoch: faces over
the broker's admin calls (which hand topic changes to the controller) and the group coordinator."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode as KafkaErrorCode

from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.groups.classic import ClassicState
from gafka_broker.groups.group import GroupError
from gafka_broker.kafka.cluster_apis import topic_uuid
from gafka_broker.kafka.codec import kafka_error
from gafka_broker.kafka.context import KafkaContext
from gafka_broker.kafka.data_apis import local_leader
from gafka_broker.replication.manager import topic_config_of

__all__ = [
    "create_partitions",
    "create_topics",
    "delete_groups",
    "delete_topics",
    "describe_cluster",
    "describe_configs",
    "describe_groups",
    "incremental_alter_configs",
    "list_groups",
    "offset_for_leader_epoch",
]

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
DYNAMIC_TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5
_SET, _DELETE = 0, 1


def _refused(exc: ApiError) -> dict[str, Any]:
    return {"error_code": kafka_error(exc.code), "error_message": exc.message}


def _no_validate_only(request: Any) -> None:
    if getattr(request, "validate_only", False):
        raise ApiError(ErrorCode.INVALID_REQUEST, "validate_only is not supported; the request changed nothing")


async def create_topics(context: KafkaContext, request: Any) -> dict[str, Any]:
    broker = context.broker
    answers = []
    for topic in request.topics:
        try:
            broker.check_ready()
            _no_validate_only(request)
            if topic.assignments:
                raise ApiError(ErrorCode.INVALID_REQUEST, "manual replica assignments are not supported")
            configs = {config.name: config.value for config in topic.configs}
            info = await broker.create_topic(
                topic.name,
                None if topic.num_partitions == -1 else topic.num_partitions,
                None if topic.replication_factor == -1 else topic.replication_factor,
                configs,
            )
        except ApiError as exc:
            answers.append(
                {"name": topic.name, **_refused(exc), "num_partitions": -1, "replication_factor": -1, "configs": []}
            )
            continue
        answers.append(
            {
                "name": topic.name,
                "topic_id": topic_uuid(info.topic_id),
                "error_code": 0,
                "error_message": None,
                "num_partitions": len(info.partitions),
                "replication_factor": info.replication_factor,
                "configs": _topic_configs(context, info.name, None),
            }
        )
    return {"throttle_time": 0, "topics": answers}


async def delete_topics(context: KafkaContext, request: Any) -> dict[str, Any]:
    names = getattr(request, "topic_names", None)
    if names is None:
        names = [topic.name for topic in request.topics]
    answers = []
    for name in names:
        try:
            context.broker.check_ready()
            if name is None:
                raise ApiError(ErrorCode.INVALID_REQUEST, "topics are deleted by name")
            await context.broker.delete_topic(name)
        except ApiError as exc:
            answers.append({"name": name, **_refused(exc)})
            continue
        answers.append({"name": name, "error_code": 0})
    return {"throttle_time": 0, "responses": answers}


async def create_partitions(context: KafkaContext, request: Any) -> dict[str, Any]:
    results = []
    for topic in request.topics:
        try:
            context.broker.check_ready()
            _no_validate_only(request)
            if topic.assignments:
                raise ApiError(ErrorCode.INVALID_REQUEST, "manual replica assignments are not supported")
            await context.broker.alter_topic(topic.name, topic.count, None)
        except ApiError as exc:
            results.append({"name": topic.name, **_refused(exc)})
            continue
        results.append({"name": topic.name, "error_code": 0, "error_message": None})
    return {"throttle_time": 0, "results": results}


def _topic_configs(context: KafkaContext, name: str, keys: Any) -> list[dict[str, Any]]:
    info = context.broker.topic_info(name)
    effective = topic_config_of(info).to_configs()
    wanted = set(keys) if keys else None
    return [
        {
            "name": key,
            "value": value,
            "read_only": False,
            "config_source": DYNAMIC_TOPIC_CONFIG if key in info.configs else DEFAULT_CONFIG,
            "is_default": key not in info.configs,
            "is_sensitive": False,
            "synonyms": [],
            "config_type": 0,
            "documentation": None,
        }
        for key, value in sorted(effective.items())
        if wanted is None or key in wanted
    ]


async def describe_configs(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Topic configs (overrides marked dynamic, the rest defaults); a broker's own configs are not exposed."""
    results = []
    for resource in request.resources:
        base = {"resource_type": resource.resource_type, "resource_name": resource.resource_name}
        try:
            context.broker.check_ready()
            if resource.resource_type == TOPIC_RESOURCE:
                configs = _topic_configs(context, resource.resource_name, resource.configuration_keys)
            elif resource.resource_type == BROKER_RESOURCE:
                configs = []
            else:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"resource type {resource.resource_type} is not supported")
        except ApiError as exc:
            results.append({**base, **_refused(exc), "configs": []})
            continue
        results.append({**base, "error_code": 0, "error_message": None, "configs": configs})
    return {"throttle_time": 0, "results": results}


async def incremental_alter_configs(context: KafkaContext, request: Any) -> dict[str, Any]:
    """SET and DELETE of topic configs (APPEND/SUBTRACT are refused: no list-valued topic config here)."""
    responses = []
    for resource in request.resources:
        base = {"resource_type": resource.resource_type, "resource_name": resource.resource_name}
        try:
            context.broker.check_ready()
            _no_validate_only(request)
            if resource.resource_type != TOPIC_RESOURCE:
                raise ApiError(ErrorCode.INVALID_REQUEST, "only topic configs can be altered")
            changes: dict[str, str | None] = {}
            for config in resource.configs:
                if config.config_operation not in (_SET, _DELETE):
                    raise ApiError(ErrorCode.INVALID_CONFIG, f"{config.name}: only SET and DELETE are supported")
                changes[config.name] = config.value if config.config_operation == _SET else None
            await context.broker.alter_topic(resource.resource_name, None, changes)
        except ApiError as exc:
            responses.append({**base, **_refused(exc)})
            continue
        responses.append({**base, "error_code": 0, "error_message": None})
    return {"throttle_time": 0, "responses": responses}


async def describe_cluster(context: KafkaContext, _request: Any) -> dict[str, Any]:
    broker = context.broker
    broker.check_ready()
    cluster = broker.metadata
    return {
        "throttle_time": 0,
        "error_code": 0,
        "error_message": None,
        "endpoint_type": 1,
        "cluster_id": cluster.cluster_id,
        "controller_id": context.broker_id,
        "brokers": [
            {
                "broker_id": broker_id,
                "host": address.host,
                "port": address.port,
                "rack": cluster.brokers[broker_id].rack,
            }
            for broker_id, address in sorted(context.addresses().items())
            if broker_id in cluster.brokers
        ],
    }


def _group_rows(context: KafkaContext) -> dict[str, str]:
    """Group id -> state of every group this broker coordinates (classic and KIP-848)."""
    service = context.broker.groups
    rows = {group_id: group.state.value for group_id, group in service.classic.groups.items()}
    for group_id in service.group_ids():
        group = service.group(group_id)
        if group_id not in rows and group is not None:
            rows[group_id] = "Empty" if not group.members else "Stable"
    return rows


async def list_groups(context: KafkaContext, request: Any) -> dict[str, Any]:
    context.broker.check_ready()
    wanted = {state.lower() for state in getattr(request, "states_filter", ()) or ()}
    groups = [
        {"group_id": group_id, "protocol_type": "consumer", "group_state": state}
        for group_id, state in sorted(_group_rows(context).items())
        if not wanted or state.lower() in wanted
    ]
    return {"throttle_time": 0, "error_code": 0, "groups": groups}


async def describe_groups(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Classic groups with their members and assignments; a group that only has offsets (or whose members
    use KIP-848) shows as a consumer group without classic members."""
    service = context.broker.groups
    answers = []
    for group_id in request.groups:
        base = {"group_id": group_id, "protocol_type": "consumer", "protocol_data": "", "members": []}
        try:
            context.broker.check_ready()
            if await service.route(group_id, create=False) is not None:
                raise ApiError(ErrorCode.NOT_COORDINATOR, f"broker {context.broker_id} does not coordinate it")
        except ApiError as exc:
            answers.append({**base, "error_code": kafka_error(exc.code), "group_state": ""})
            continue
        classic = service.classic.get(group_id)
        if classic is not None and classic.members:
            stable = classic.state is ClassicState.STABLE
            answers.append(
                {
                    **base,
                    "error_code": 0,
                    "group_state": classic.state.value,
                    "protocol_type": classic.protocol_type or "consumer",
                    "protocol_data": classic.protocol_name or "",
                    "members": [
                        {
                            "member_id": member.member_id,
                            "group_instance_id": member.instance_id,
                            "client_id": member.client_id,
                            "client_host": member.client_host,
                            "member_metadata": member.metadata_for(classic.protocol_name or ""),
                            "member_assignment": member.assignment if stable else b"",
                        }
                        for member in classic.members.values()
                    ],
                }
            )
            continue
        group = service.group(group_id)
        if group is None:
            answers.append({**base, "error_code": 0, "group_state": "Dead", "protocol_type": ""})
        else:
            answers.append({**base, "error_code": 0, "group_state": "Empty" if not group.members else "Stable"})
    return {"throttle_time": 0, "groups": answers}


async def delete_groups(context: KafkaContext, request: Any) -> dict[str, Any]:
    service = context.broker.groups
    results = []
    for group_id in request.groups_names:
        try:
            context.broker.check_ready()
            if await service.route(group_id, create=False) is not None:
                raise ApiError(ErrorCode.NOT_COORDINATOR, f"broker {context.broker_id} does not coordinate it")
            classic = service.classic.get(group_id)
            if classic is not None and classic.members:
                raise ApiError(ErrorCode.NON_EMPTY_GROUP, f"group {group_id!r} has members")
            try:
                service.delete(group_id)
            except GroupError as exc:
                raise ApiError(ErrorCode(exc.code.value), exc.message) from None
            service.classic.forget(group_id)
            await service.durable(group_id)
        except ApiError as exc:
            results.append({"group_id": group_id, "error_code": kafka_error(exc.code)})
            continue
        results.append({"group_id": group_id, "error_code": 0})
    return {"throttle_time": 0, "results": results}


async def offset_for_leader_epoch(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Where an epoch ends on the leader (KIP-320: a consumer checks its position after a leader change)."""
    topics = []
    for topic in request.topics:
        parts = []
        for part in topic.partitions:
            answer = {"partition": part.partition, "error_code": 0, "leader_epoch": -1, "end_offset": -1}
            try:
                leader = local_leader(context, topic.topic, part.partition)
                current = part.current_leader_epoch
                if current >= 0 and current != leader.leader_epoch:
                    code = "FENCED_LEADER_EPOCH" if current < leader.leader_epoch else "UNKNOWN_LEADER_EPOCH"
                    answer["error_code"] = getattr(KafkaErrorCode, code.lower())
                else:
                    epoch, end = leader.epoch_cache.end_offset_for(part.leader_epoch, leader.log_end_offset)
                    answer.update(leader_epoch=epoch, end_offset=end)
            except ApiError as exc:
                answer["error_code"] = kafka_error(exc.code)
            parts.append(answer)
        topics.append({"topic": topic.topic, "partitions": parts})
    return {"throttle_time": 0, "topics": topics}
