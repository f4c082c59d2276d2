"""The APIs the listener serves, with the versions advertised in ApiVersions (each one is tested)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from gafka_broker.kafka import admin_apis, classic_group_apis, cluster_apis, data_apis, group_apis
from gafka_broker.kafka.codec import API_VERSIONS_KEY
from gafka_broker.kafka.context import KafkaContext

__all__ = ["APIS", "API_VERSIONS_KEY", "Api", "api_versions", "supported"]

Handler = Callable[[KafkaContext, Any], Awaitable[dict[str, Any] | None]]


class Api(NamedTuple):
    name: str
    min_version: int
    max_version: int
    handler: Handler


async def api_versions(_context: KafkaContext, _request: Any) -> dict[str, Any]:
    """What this listener speaks (request version checks happen before any handler runs)."""
    return {"error_code": 0, "api_keys": supported(), "throttle_time": 0}


APIS: dict[int, Api] = {
    0: Api("Produce", 3, 9, data_apis.produce),
    1: Api("Fetch", 4, 12, data_apis.fetch),
    2: Api("ListOffsets", 1, 6, data_apis.list_offsets),
    3: Api("Metadata", 1, 12, cluster_apis.metadata),
    8: Api("OffsetCommit", 2, 8, group_apis.offset_commit),
    9: Api("OffsetFetch", 1, 7, group_apis.offset_fetch),
    10: Api("FindCoordinator", 0, 4, cluster_apis.find_coordinator),
    11: Api("JoinGroup", 2, 7, classic_group_apis.join_group),
    12: Api("Heartbeat", 0, 4, classic_group_apis.heartbeat),
    13: Api("LeaveGroup", 0, 4, classic_group_apis.leave_group),
    14: Api("SyncGroup", 0, 5, classic_group_apis.sync_group),
    15: Api("DescribeGroups", 0, 5, admin_apis.describe_groups),
    16: Api("ListGroups", 0, 4, admin_apis.list_groups),
    API_VERSIONS_KEY: Api("ApiVersions", 0, 3, api_versions),
    19: Api("CreateTopics", 2, 7, admin_apis.create_topics),
    20: Api("DeleteTopics", 1, 6, admin_apis.delete_topics),
    22: Api("InitProducerId", 0, 4, cluster_apis.init_producer_id),
    23: Api("OffsetForLeaderEpoch", 2, 4, admin_apis.offset_for_leader_epoch),
    32: Api("DescribeConfigs", 1, 4, admin_apis.describe_configs),
    37: Api("CreatePartitions", 0, 3, admin_apis.create_partitions),
    42: Api("DeleteGroups", 0, 2, admin_apis.delete_groups),
    44: Api("IncrementalAlterConfigs", 0, 1, admin_apis.incremental_alter_configs),
    60: Api("DescribeCluster", 0, 1, admin_apis.describe_cluster),
}
"""Api key -> what is served. Floors follow Kafka 4 (KIP-896); ceilings are the versions the tests exercise."""


def supported() -> list[dict[str, int]]:
    return [
        {"api_key": key, "min_version": api.min_version, "max_version": api.max_version}
        for key, api in sorted(APIS.items())
    ]
