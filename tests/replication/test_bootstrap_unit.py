"""A broker that is its own controller, in process: the one-time import of a one-node ``topics.json``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.app import build_broker, create_app
from gafka_broker.broker import Broker
from gafka_broker.config import BrokerConfig
from gafka_broker.log.manager import PARTITION_METADATA_FILE, LogManager, read_topic_id
from gafka_broker.metadata import LocalTopicRegistry, TopicMetadata
from gafka_broker.topic_config import TopicConfig


def old_data_dir(data_dir: Path) -> str:
    """What a one-node broker wrote before the controller existed: topics.json and plain partition logs."""
    registry = LocalTopicRegistry(data_dir)
    topic = TopicMetadata("legacy", 2, 1, {"retention.ms": "3600000"})
    registry.create(topic)
    manager = LogManager(data_dir)
    manager.startup({"legacy": (2, TopicConfig.from_configs(topic.configs))})
    log = manager.get_log("legacy", 1)
    assert log is not None
    log.append_as_leader(encode_batch([NewRecord(None, b"old-1"), NewRecord(None, b"old-2")]))
    manager.shutdown()
    return topic.topic_id


async def run(broker: Broker) -> list[str]:
    assert broker.controller_service is not None
    await broker.controller_service.start()
    await broker.start()
    broker.ready = True
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://gafka") as http:
        described = (await http.get("/v1/topics/legacy")).json()
        assert described["config_overrides"] == {"retention.ms": "3600000"}
        assert [p["log_end_offset"] for p in described["partitions"]] == [0, 2]
        page = (await http.get("/v1/topics/legacy/partitions/1/records", params={"offset": 0})).json()
        produced = await http.post("/v1/topics/legacy/records", json={"records": [{"value": "new", "partition": 1}]})
        assert produced.json()["offsets"][0]["offset"] == 2
    await broker.close()
    broker.log_manager.shutdown()
    await broker.controller_service.stop()
    return [record["value"] for record in page["records"]]


def test_topics_json_is_imported_once_into_the_cluster_metadata(tmp_path: Path) -> None:
    topic_id = old_data_dir(tmp_path)
    broker = build_broker(BrokerConfig(data_dir=tmp_path), "http://gafka")
    assert asyncio.run(run(broker)) == ["old-1", "old-2"]
    assert (tmp_path / "cluster-metadata.json").exists()
    assert read_topic_id(tmp_path / "legacy-1" / PARTITION_METADATA_FILE) == topic_id
    assert broker.topic_info("legacy").topic_id == topic_id
    # The metadata is the source of truth now: a topics.json edited afterwards changes nothing.
    (tmp_path / "topics.json").write_text('{"version": 1, "topics": []}')
    again = build_broker(BrokerConfig(data_dir=tmp_path), "http://gafka")

    async def restart() -> None:
        assert again.controller_service is not None
        await again.controller_service.start()
        await again.start()
        assert again.topic_info("legacy").topic_id == topic_id
        assert again.local_replica("legacy", 1) is not None
        assert again.local_replica("legacy", 1).log_end_offset == 3  # type: ignore[union-attr]
        await again.close()
        again.log_manager.shutdown()
        await again.controller_service.stop()

    asyncio.run(restart())


def test_a_directory_of_a_deleted_topic_is_not_mistaken_for_the_new_one(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.startup_partitions({("t", 0): (TopicConfig(), "old-id")})
    log = manager.get_log("t", 0)
    assert log is not None
    log.append_as_leader(encode_batch([NewRecord(None, b"stale")]))
    manager.shutdown()
    fresh = LogManager(tmp_path)
    fresh.startup_partitions({("t", 0): (TopicConfig(), "new-id")})
    reopened = fresh.get_log("t", 0)
    assert reopened is not None and reopened.log_end_offset == 0
    assert read_topic_id(tmp_path / "t-0" / PARTITION_METADATA_FILE) == "new-id"
    fresh.shutdown()
