"""Where a broker's controller comes from, and the one-time import of a one-node broker's ``topics.json``.

A broker without ``controller_url`` is its own controller: a :class:`Controller` over
``DATA_DIR/cluster-metadata.json``, served by this broker too. A data directory written before that
existed keeps its topics in ``topics.json``; on the first start they are imported into the metadata
(same names, ids, partition counts and overrides, led by this broker at epoch 0), and from then on the
metadata is the only source of truth.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gafka_broker.controller.metadata import ClusterMetadata, PartitionState, TopicInfo
from gafka_broker.controller.store import FileMetadataStore
from gafka_broker.metadata import TOPICS_FILE, BrokerMeta, LocalTopicRegistry

__all__ = ["CLUSTER_METADATA_FILE", "import_topic_registry"]

logger = logging.getLogger("gafka.broker")

CLUSTER_METADATA_FILE = "cluster-metadata.json"


def import_topic_registry(store: FileMetadataStore, data_dir: Path, meta: BrokerMeta) -> int:
    """Seed an empty metadata store from ``topics.json``; returns how many topics were imported."""
    if store.load() is not None or not (data_dir / TOPICS_FILE).exists():
        return 0
    registry = LocalTopicRegistry(data_dir)
    me = meta.broker_id
    topics = {
        name: TopicInfo(
            name=name,
            topic_id=topic.topic_id,
            configs=dict(topic.configs),
            partitions=tuple(PartitionState((me,), me, 0, (me,)) for _ in range(topic.partitions)),
            replication_factor=1,
        )
        for name, topic in registry.topics().items()
    }
    store.compare_and_set(0, ClusterMetadata(cluster_id=meta.cluster_id, topics=topics))
    logger.info("event=topics_imported count=%d from=%s", len(topics), data_dir / TOPICS_FILE)
    return len(topics)
