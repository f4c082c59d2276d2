"""Topic-name rules, the persisted topic registry and the data directory's identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from gafka_broker.metadata import (
    DataDirLock,
    InvalidTopicNameError,
    LocalTopicRegistry,
    MetadataError,
    TopicMetadata,
    colliding_topic,
    load_or_create_meta,
    validate_topic_name,
)


@pytest.mark.parametrize("name", ["a", "orders", "Orders.v2", "a_b-c.d", "x" * 249, "__internal", "..."])
def test_legal_topic_names(name: str) -> None:
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "a b", "a/b", "ü", "a:b", "a*", 5, None])
def test_illegal_topic_names(name: object) -> None:
    with pytest.raises(InvalidTopicNameError):
        validate_topic_name(name)


def test_dot_and_underscore_collide() -> None:
    assert colliding_topic("a.b", {"a_b": 1}) == "a_b"
    assert colliding_topic("a_b", {"a.b": 1}) == "a.b"
    assert colliding_topic("a.b", {"a.b": 1}) is None
    assert colliding_topic("ab", {"a_b": 1}) is None


def test_registry_persists_every_change(tmp_path: Path) -> None:
    registry = LocalTopicRegistry(tmp_path)
    registry.create(TopicMetadata("a", 3, 1, {"retention.ms": "1000"}))
    registry.create(TopicMetadata("b", 1, 1))
    registry.update(registry.topics()["a"].with_changes(partitions=5))
    registry.delete("b")
    reloaded = LocalTopicRegistry(tmp_path)
    assert list(reloaded.topics()) == ["a"]
    topic = reloaded.get("a")
    assert topic is not None
    assert (topic.partitions, topic.replication_factor, dict(topic.configs)) == (5, 1, {"retention.ms": "1000"})
    assert topic.topic_id == registry.topics()["a"].topic_id
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(MetadataError):
        reloaded.create(TopicMetadata("a", 1, 1))


def test_corrupt_registry_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "topics.json").write_text("{not json")
    with pytest.raises(MetadataError, match="unreadable"):
        LocalTopicRegistry(tmp_path)


def test_meta_is_created_once_and_checked(tmp_path: Path) -> None:
    first = load_or_create_meta(tmp_path, 3, None)
    assert first.broker_id == 3
    assert len(first.cluster_id) == 22
    assert "cluster.id=" + first.cluster_id in (tmp_path / "meta.properties").read_text()
    assert load_or_create_meta(tmp_path, 3, None) == first
    assert load_or_create_meta(tmp_path, 3, first.cluster_id) == first
    with pytest.raises(MetadataError, match="belongs to broker 3"):
        load_or_create_meta(tmp_path, 4, None)
    with pytest.raises(MetadataError, match="belongs to cluster"):
        load_or_create_meta(tmp_path, 3, "another-cluster")


def test_configured_cluster_id_is_used_on_first_start(tmp_path: Path) -> None:
    assert load_or_create_meta(tmp_path, 0, "my-cluster").cluster_id == "my-cluster"


def test_data_dir_lock_is_exclusive(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(MetadataError, match="in use"), DataDirLock(tmp_path):
        pass
    with DataDirLock(tmp_path):
        pass
