"""Metadata, FindCoordinator and InitProducerId: where things are, answered by any broker for the whole cluster."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

from kio.schema.errors import ErrorCode as KafkaErrorCode

from gafka_broker.controller.metadata import NO_LEADER, TopicInfo
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.kafka.codec import kafka_error
from gafka_broker.kafka.context import KafkaContext

__all__ = ["find_coordinator", "init_producer_id", "metadata"]

log = logging.getLogger("gafka.broker.kafka")

_NO_TOPIC_ID = uuid.UUID(int=0)
_GROUP_KEY = 0


def topic_uuid(topic_id: str) -> uuid.UUID:
    """gafka keeps Kafka's text form of a topic id (URL-safe base64 of the 16 bytes)."""
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(topic_id + "=" * (-len(topic_id) % 4)))
    except ValueError:
        return _NO_TOPIC_ID


def _topic(context: KafkaContext, info: TopicInfo, live: set[int]) -> dict[str, Any]:
    from gafka_broker.broker import is_internal_topic

    return {
        "error_code": 0,
        "name": info.name,
        "topic_id": topic_uuid(info.topic_id),
        "is_internal": is_internal_topic(info.name),
        "partitions": [
            {
                "error_code": kafka_error(ErrorCode.LEADER_NOT_AVAILABLE if state.leader == NO_LEADER else None),
                "partition_index": index,
                "leader_id": state.leader,
                "leader_epoch": state.leader_epoch,
                "replica_nodes": list(state.replicas),
                "isr_nodes": list(state.isr),
                "offline_replicas": [replica for replica in state.replicas if replica not in live],
            }
            for index, state in enumerate(info.partitions)
        ],
    }


def _missing(name: str | None, code: ErrorCode) -> dict[str, Any]:
    return {"error_code": kafka_error(code), "name": name, "topic_id": _NO_TOPIC_ID, "partitions": []}


async def metadata(context: KafkaContext, request: Any) -> dict[str, Any]:
    """Brokers (with their Kafka listeners), the controller, and the asked topics; a missing topic is
    created when the request and the broker's ``auto_create_topics`` both allow it."""
    broker = context.broker
    broker.check_ready()
    cluster = broker.metadata
    live = set(cluster.live_brokers())
    addresses = context.addresses()
    brokers = [
        {"node_id": broker_id, "host": address.host, "port": address.port, "rack": cluster.brokers[broker_id].rack}
        for broker_id, address in sorted(addresses.items())
        if broker_id in cluster.brokers
    ]
    if not brokers:
        brokers = [{"node_id": context.broker_id, "host": context.advertised.host, "port": context.advertised.port}]
    topics: list[dict[str, Any]] = []
    if request.topics is None:
        topics = [_topic(context, cluster.topics[name], live) for name in broker.topic_names()]
    else:
        allow = bool(getattr(request, "allow_auto_topic_creation", True))
        for wanted in request.topics:
            name = wanted.name
            if name is None:
                topics.append(_missing(None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            try:
                info = await broker.ensure_topic(name, auto_create=allow)
            except ApiError as exc:
                topics.append(_missing(name, exc.code))
                continue
            topics.append(_topic(context, info, set(broker.metadata.live_brokers())))
    return {
        "throttle_time": 0,
        "brokers": brokers,
        "cluster_id": cluster.cluster_id,
        # Admin requests may go to any broker (each hands topic changes to the controller), so the answering
        # broker names itself, as KRaft brokers name a random live broker.
        "controller_id": context.broker_id,
        "topics": topics,
    }


async def _coordinator(context: KafkaContext, key: str, key_type: int) -> dict[str, Any]:
    def refused(code: KafkaErrorCode, message: str) -> dict[str, Any]:
        return {
            "key": key,
            "error_code": code,
            "error_message": message,
            "node_id": -1,
            "host": "",
            "port": -1,
        }

    if key_type != _GROUP_KEY:
        return refused(KafkaErrorCode.invalid_request, "transactions are not supported; only group coordinators exist")
    try:
        context.broker.check_ready()
        remote = await context.broker.groups.route(key, create=True)
    except ApiError as exc:
        unavailable = exc.code is ErrorCode.BROKER_NOT_AVAILABLE
        return refused(KafkaErrorCode.coordinator_not_available if unavailable else kafka_error(exc.code), exc.message)
    node = context.broker_id if remote is None else remote.broker_id
    address = context.addresses().get(node)
    if address is None:
        return refused(KafkaErrorCode.coordinator_not_available, f"broker {node} has no Kafka listener")
    return {
        "key": key,
        "error_code": 0,
        "error_message": None,
        "node_id": node,
        "host": address.host,
        "port": address.port,
    }


async def find_coordinator(context: KafkaContext, request: Any) -> dict[str, Any]:
    """The broker leading the group's ``__consumer_offsets`` partition (created on the first ask)."""
    keys = getattr(request, "coordinator_keys", None)
    key_type = int(getattr(request, "key_type", _GROUP_KEY))
    if keys is not None:  # v4+: many keys at once
        return {"throttle_time": 0, "coordinators": [await _coordinator(context, key, key_type) for key in keys]}
    found = await _coordinator(context, request.key, key_type)
    return {"throttle_time": 0, **found}


async def init_producer_id(context: KafkaContext, request: Any) -> dict[str, Any]:
    """A new idempotent producer id (epoch 0) from the same allocator as ``POST /v1/producers``."""
    if request.transactional_id is not None:
        return {
            "throttle_time": 0,
            "error_code": kafka_error(ErrorCode.INVALID_REQUEST),
            "producer_id": -1,
            "producer_epoch": -1,
        }
    context.broker.check_ready()
    producer_id = await context.broker.producer_ids.allocate()
    return {"throttle_time": 0, "error_code": 0, "producer_id": producer_id, "producer_epoch": 0}
