"""Three real brokers with Kafka listeners: any broker describes the whole cluster, non-leaders refuse
produce and fetch with NOT_LEADER_OR_FOLLOWER, and an idempotent librdkafka producer at acks=all loses and
duplicates nothing while partition leaders are SIGKILLed."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.errors import ErrorCode
from tests.conftest import unique_topic
from tests.kafka_listener.conftest import kafka_bootstrap
from tests.kafka_listener.test_protocol import _request, _values
from tests.kafka_listener.wire import WireClient
from tests.replication.conftest import Cluster, cluster_factory

__all__ = ["cluster_factory"]


def _kafka_cluster(factory: Callable[..., Cluster]) -> tuple[Cluster, dict[int, str]]:
    cluster = factory(3, "--kafka-listen", "127.0.0.1:0")
    return cluster, {broker_id: kafka_bootstrap(broker) for broker_id, broker in cluster.brokers.items()}


def test_metadata_from_any_broker_and_not_leader(cluster_factory: Callable[..., Cluster]) -> None:
    cluster, addresses = _kafka_cluster(cluster_factory)
    topic = unique_topic("spread")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    for broker_id, address in addresses.items():
        client = WireClient(address)
        try:
            answer = client.call(_request(3, 12, _values(3, topic, "")))
        finally:
            client.close()
        assert {(b.node_id, f"{b.host}:{b.port}") for b in answer.brokers} == set(addresses.items()), broker_id
        (described,) = answer.topics
        assert described.error_code == ErrorCode.none
        for partition in described.partitions:
            assert partition.leader_id == cluster.leader(topic, partition.partition_index)
            assert sorted(partition.replica_nodes) == [0, 1, 2]
    leader = cluster.leader(topic, 0)
    other = next(broker_id for broker_id in addresses if broker_id != leader)
    client = WireClient(addresses[other])
    try:
        produced = client.call(_request(0, 9, _values(0, topic, "")))
        fetched = client.call(_request(1, 12, _values(1, topic, "")))
    finally:
        client.close()
    assert produced.responses[0].partition_responses[0].error_code == ErrorCode.not_leader_or_follower
    assert fetched.responses[0].partitions[0].error_code == ErrorCode.not_leader_or_follower


def test_idempotent_acks_all_survives_leader_kills(cluster_factory: Callable[..., Cluster]) -> None:
    cluster, addresses = _kafka_cluster(cluster_factory)
    topic = unique_topic("kills")
    cluster.create_topic(topic, partitions=2, replication_factor=3, configs={"min.insync.replicas": "2"})
    acknowledged: list[tuple[int, int, bytes]] = []
    failed: list[object] = []

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            failed.append(error)
        else:
            acknowledged.append((message.partition(), message.offset(), message.value()))  # type: ignore[attr-defined]

    producer = Producer(
        {
            "bootstrap.servers": ",".join(addresses.values()),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "retry.backoff.ms": 50,
        }
    )
    sent = 0
    for round_ in range(2):
        for _ in range(300):
            producer.produce(topic, value=f"{sent}".encode(), partition=sent % 2, on_delivery=on_delivery)
            sent += 1
            producer.poll(0)
        victim = cluster.leader(topic, round_ % 2)
        cluster.kill(victim)
        cluster.wait_for_leader(topic, round_ % 2, not_in={victim}, timeout=30)
        for _ in range(300):
            producer.produce(topic, value=f"{sent}".encode(), partition=sent % 2, on_delivery=on_delivery)
            sent += 1
            producer.poll(0)
        cluster.start(victim)
        cluster.wait_for_isr(topic, round_ % 2, {0, 1, 2}, timeout=60)
    assert producer.flush(120) == 0
    assert not failed, failed[:3]
    assert len(acknowledged) == sent
    consumer = Consumer({"bootstrap.servers": ",".join(addresses.values()), "group.id": unique_topic("check")})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    read: dict[int, list[bytes]] = {0: [], 1: []}
    while sum(len(values) for values in read.values()) < sent:
        message = consumer.poll(15)
        assert message is not None, f"read {sum(len(v) for v in read.values())} of {sent}"
        assert message.error() is None, message.error()
        read[message.partition()].append(message.value())
    consumer.close()
    for partition in (0, 1):
        expected = [f"{n}".encode() for n in range(partition, sent, 2)]
        assert read[partition] == expected  # nothing lost, nothing twice, order kept
