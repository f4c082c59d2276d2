"""Replication against real processes: a controller and three brokers on loopback.

Each test drives faults with signals (SIGKILL, SIGTERM, SIGSTOP/SIGCONT) and checks what clients and the
logs on disk show afterwards: acknowledged writes survive, replicas end byte-identical, a deposed leader
never acknowledges, consumers never read past the high watermark, retries never duplicate.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gafka.protocol.record_batch import NewRecord, decode_batches, encode_batch

from .conftest import Cluster

BATCH = "application/vnd.gafka.record-batch.v2"
DURABLE = {"min.insync.replicas": "2"}


def produce_json(http: httpx.Client, topic: str, values: list[str], acks: str = "all", **params: Any) -> httpx.Response:
    records = [{"value": value, "partition": 0} for value in values]
    return http.post(f"/v1/topics/{topic}/records", json={"records": records}, params={"acks": acks, **params})


def produce_batch(http: httpx.Client, topic: str, data: bytes, acks: str = "all") -> httpx.Response:
    return http.post(
        f"/v1/topics/{topic}/partitions/0/batches",
        content=data,
        headers={"content-type": BATCH},
        params={"acks": acks},
    )


def produce_to_leader(cluster: Cluster, topic: str, values: list[str], attempts: int = 20) -> httpx.Response:
    """acks=all to whoever leads partition 0 now, retrying while leadership moves (421/503)."""
    response: httpx.Response | None = None
    for _ in range(attempts):
        with cluster.client(cluster.leader(topic, 0)) as http:
            response = produce_json(http, topic, values)
        if response.status_code not in (421, 503):
            return response
        time.sleep(0.2)
    assert response is not None
    return response


def read_values(http: httpx.Client, topic: str, partition: int = 0) -> list[str]:
    values: list[str] = []
    offset = 0
    while True:
        response = http.get(
            f"/v1/topics/{topic}/partitions/{partition}/records", params={"offset": offset, "max_wait_ms": 0}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        values.extend(record["value"] for record in page["records"])
        if page["next_offset"] >= page["high_watermark"]:
            return values
        offset = page["next_offset"]


def log_bytes(data_dir: Path, topic: str, partition: int = 0) -> bytes:
    """Every batch of a stopped broker's partition, segment after segment."""
    directory = data_dir / f"{topic}-{partition}"
    return b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))


def offsets_everywhere(cluster: Cluster, topic: str) -> dict[int, tuple[int, int]]:
    """(high watermark, log end offset) of partition 0 as each broker's own replica has it, from /metrics."""
    found: dict[int, tuple[int, int]] = {}
    for broker_id in cluster.brokers:
        with cluster.client(broker_id, timeout=5) as http:
            text = http.get("/metrics").text
        values = {}
        for line in text.splitlines():
            if line.startswith(("gafka_partition_high_watermark{", "gafka_partition_log_end_offset{")) and (
                f'topic="{topic}"' in line and 'partition="0"' in line
            ):
                values[line.split("{", 1)[0]] = int(float(line.rsplit(" ", 1)[1]))
        found[broker_id] = (values["gafka_partition_high_watermark"], values["gafka_partition_log_end_offset"])
    return found


def test_acks_all_replicates_every_batch_byte_for_byte(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    leader = cluster.leader("orders", 0)
    sent: list[str] = []
    with cluster.client(leader) as http:
        for round_ in range(20):
            values = [f"v{round_}-{i}" for i in range(5)]
            response = produce_json(http, "orders", values)
            assert response.status_code == 200, response.text
            sent += values
            data = encode_batch([NewRecord(None, f"b{round_}".encode())])
            assert produce_batch(http, "orders", data).status_code == 200
            sent.append(f"b{round_}")
        assert read_values(http, "orders") == sent
    end = len(sent)
    cluster.wait_for(lambda: set(offsets_everywhere(cluster, "orders").values()) == {(end, end)}, what="replicas equal")
    for broker_id in cluster.brokers:
        cluster.stop(broker_id)
    logs = {broker_id: log_bytes(broker.data_dir, "orders") for broker_id, broker in cluster.brokers.items()}
    assert len(set(logs.values())) == 1, {b: len(data) for b, data in logs.items()}
    assert [r.value.decode() for r in decode_batches(logs[0]) if r.value is not None] == sent


def test_leader_killed_new_leader_keeps_every_acknowledged_write(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    old = cluster.leader("orders", 0)
    acked: list[str] = []
    with cluster.client(old) as http:
        for i in range(30):
            assert produce_json(http, "orders", [f"a{i}"]).status_code == 200
            acked.append(f"a{i}")
    killed_at = time.monotonic()
    cluster.kill(old)
    failover = None
    survivors = [b for b in cluster.brokers if b != old]
    n = 0
    while failover is None:
        assert time.monotonic() - killed_at < 15, "no acks=all produce succeeded on a new leader within 15 s"
        for broker_id in survivors:
            with cluster.client(broker_id, timeout=5) as http:
                response = produce_json(http, "orders", [f"b{n}"])
            if response.status_code == 200:
                failover = time.monotonic() - killed_at
                acked.append(f"b{n}")
                n += 1
                break
        else:
            time.sleep(0.05)
    print(f"\nfailover time (SIGKILL -> first acks=all produce on the new leader): {failover:.2f} s")
    assert failover < 8
    new = cluster.leader("orders", 0)
    assert new != old
    with cluster.client(new) as http:
        for i in range(10):
            assert produce_json(http, "orders", [f"c{i}"]).status_code == 200
            acked.append(f"c{i}")
        assert read_values(http, "orders") == acked
    # The old leader comes back as a follower, catches up and rejoins the ISR.
    cluster.start(old)
    cluster.wait_for_isr("orders", 0, {0, 1, 2})
    cluster.stop(old)
    stored = decode_batches(log_bytes(cluster.brokers[old].data_dir, "orders"))
    assert [r.value.decode() for r in stored if r.value] == acked


def test_follower_down_shrinks_the_isr_then_catches_up_and_rejoins(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    leader = cluster.leader("orders", 0)
    follower = next(b for b in cluster.brokers if b != leader)
    cluster.kill(follower)
    cluster.wait_for_isr("orders", 0, set(cluster.brokers) - {follower})
    with cluster.client(leader) as http:
        for i in range(50):
            assert produce_json(http, "orders", [f"v{i}" * 50]).status_code == 200
    cluster.start(follower)
    cluster.wait_for_isr("orders", 0, {0, 1, 2})
    cluster.wait_for(lambda: len(set(offsets_everywhere(cluster, "orders").values())) == 1, what="equal replicas")


def test_divergent_old_leader_truncates_its_unreplicated_tail(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, {"min.insync.replicas": "1"})
    old = cluster.leader("orders", 0)
    others = [b for b in cluster.brokers if b != old]
    with cluster.client(old) as http:
        assert produce_json(http, "orders", ["committed"]).status_code == 200
        for broker_id in others:
            cluster.pause(broker_id)
        time.sleep(0.7)  # longer than a follower's long poll: no fetch is parked on the leader any more
        response = produce_json(http, "orders", ["lost-1", "lost-2"], acks="1")
        assert response.status_code == 200, response.text
    cluster.kill(old)
    for broker_id in others:
        cluster.resume(broker_id)
    new = cluster.wait_for_leader("orders", 0, not_in={old})
    with cluster.client(new) as http:
        for i in range(3):
            assert produce_json(http, "orders", [f"new-{i}"]).status_code == 200
        expected = ["committed", "new-0", "new-1", "new-2"]
        assert read_values(http, "orders") == expected
    cluster.start(old)
    cluster.wait_for_isr("orders", 0, {0, 1, 2})
    assert "event=follower_truncated" in cluster.brokers[old].log_text()
    for broker_id in cluster.brokers:
        cluster.stop(broker_id)
    logs = {b: log_bytes(broker.data_dir, "orders") for b, broker in cluster.brokers.items()}
    assert len(set(logs.values())) == 1
    assert [r.value.decode() for r in decode_batches(logs[old]) if r.value] == expected


def test_not_enough_replicas_when_two_of_three_are_down(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    leader = cluster.leader("orders", 0)
    for broker_id in cluster.brokers:
        if broker_id != leader:
            cluster.kill(broker_id)
    cluster.wait_for_isr("orders", 0, {leader})
    with cluster.client(leader) as http:
        response = produce_json(http, "orders", ["x"])
        assert response.status_code == 503, response.text
        assert response.json()["error_code"] == "NOT_ENOUGH_REPLICAS"
        before = read_values(http, "orders")
        assert produce_json(http, "orders", ["y"], acks="1").status_code == 200
        # min.insync.replicas=2: what only the leader has is not committed, so consumers do not see it
        assert read_values(http, "orders") == before


def test_paused_leader_cannot_acknowledge_after_it_resumes(cluster_factory: Any) -> None:
    """A leader paused past its session is replaced; a batch that reaches it after it resumes must never be
    acknowledged by it. The binary path is used because it is never forwarded: a JSON produce may legitimately
    be forwarded to the new leader once the old one has learned it was deposed (checked separately below)."""
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    old = cluster.leader("orders", 0)
    with cluster.client(old) as http:
        assert produce_json(http, "orders", ["before"]).status_code == 200
    cluster.pause(old)
    new = cluster.wait_for_leader("orders", 0, not_in={old})
    results: list[httpx.Response | Exception] = []

    def send() -> None:
        try:
            with cluster.client(old, timeout=20) as http:
                results.append(produce_batch(http, "orders", encode_batch([NewRecord(None, b"zombie")])))
        except Exception as exc:
            results.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.3)  # the request waits in the paused process's socket
    cluster.resume(old)
    sender.join(30)
    [result] = results
    assert isinstance(result, httpx.Response), result
    assert result.status_code != 200, result.text
    assert result.json()["error_code"] in {
        "NOT_LEADER_OR_FOLLOWER",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "REQUEST_TIMED_OUT",
    }
    del new  # leadership may already have gone back to the preferred replica: follow the current leader
    assert produce_to_leader(cluster, "orders", ["after"]).status_code == 200
    assert _committed_at_the_leader(cluster, ["before", "after"]) == ["before", "after"]
    # a JSON produce sent to the deposed broker now reaches the real leader, or is refused: never lost
    with cluster.client(old, timeout=20) as http:
        forwarded = produce_json(http, "orders", ["via-old"])
    expected = ["before", "after", "via-old"] if forwarded.status_code == 200 else ["before", "after"]
    assert _committed_at_the_leader(cluster, expected) == expected


def _committed_at_the_leader(cluster: Cluster, expected: list[str], timeout: float = 15.0) -> list[str]:
    """What the current leader of orders/0 shows, once it shows ``expected``. A leader elected a moment ago (the
    preferred replica back) learns the high watermark from its followers' next fetch, as in Kafka: until then it
    shows a prefix of the log, never anything else."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while seen != expected and time.monotonic() < deadline:
        with cluster.client(cluster.leader("orders", 0)) as http:
            seen = read_values(http, "orders")
        assert seen == expected[: len(seen)], seen
        time.sleep(0.1)
    return seen


def test_idempotent_retry_across_a_failover_does_not_duplicate(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    old = cluster.leader("orders", 0)
    with cluster.client(old) as http:
        created = http.post("/v1/producers")
        assert created.status_code == 201, created.text
        pid = created.json()["producer_id"]
        other = http.post("/v1/producers").json()["producer_id"]
        assert other != pid

    def batch(seq: int, count: int) -> bytes:
        values = [NewRecord(None, f"s{seq + i}".encode()) for i in range(count)]
        return encode_batch(values, producer_id=pid, producer_epoch=0, base_sequence=seq)

    with cluster.client(old) as http:
        first = produce_batch(http, "orders", batch(0, 3))
        second = produce_batch(http, "orders", batch(3, 2))
    assert (first.status_code, second.status_code) == (200, 200)
    cluster.kill(old)
    new = cluster.wait_for_leader("orders", 0, not_in={old})
    with cluster.client(new) as http:
        retried = produce_batch(http, "orders", batch(3, 2))  # the answer was lost: the producer retries
        assert retried.status_code == 200, retried.text
        assert retried.json()["base_offset"] == second.json()["base_offset"]
        gap = produce_batch(http, "orders", batch(9, 1))
        assert gap.status_code == 409 and gap.json()["error_code"] == "OUT_OF_ORDER_SEQUENCE_NUMBER"
        assert produce_batch(http, "orders", batch(5, 1)).json()["base_offset"] == 5
        assert read_values(http, "orders") == [f"s{i}" for i in range(6)]


def test_consumers_never_read_past_the_high_watermark(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, {"min.insync.replicas": "1"})
    leader = cluster.leader("orders", 0)
    followers = [b for b in cluster.brokers if b != leader]
    with cluster.client(leader) as http:
        assert produce_json(http, "orders", ["one"]).status_code == 200
        for broker_id in followers:
            cluster.pause(broker_id)
        try:
            assert produce_json(http, "orders", ["two"], acks="1").status_code == 200
            page = http.get("/v1/topics/orders/partitions/0/records", params={"offset": 0, "max_wait_ms": 0}).json()
            assert [r["value"] for r in page["records"]] == ["one"]
            assert page["high_watermark"] == 1
            raw = http.get(
                "/v1/topics/orders/partitions/0/records",
                params={"offset": 1, "max_wait_ms": 0},
                headers={"accept": BATCH},
            )
            assert raw.status_code == 200 and raw.content == b""
            assert http.get("/v1/topics/orders/partitions/0/offsets", params={"at": "latest"}).json() == {"offset": 1}
        finally:
            for broker_id in followers:
                cluster.resume(broker_id)
        cluster.wait_for(lambda: read_values(http, "orders") == ["one", "two"], what="the second record committed")


def test_any_broker_serves_json_clients_by_forwarding(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 3, 2)
    described = {}
    for broker_id in cluster.brokers:
        with cluster.client(broker_id) as http:
            cluster_doc = http.get("/v1/cluster").json()
            assert sorted(b["id"] for b in cluster_doc["brokers"]) == [0, 1, 2]
            records = [{"key": f"k{broker_id}-{i}", "value": f"from-{broker_id}-{i}"} for i in range(12)]
            response = http.post("/v1/topics/orders/records", json={"records": records}, params={"acks": "all"})
            assert response.status_code == 200, response.text
            assert {o["partition"] for o in response.json()["offsets"]} == {0, 1, 2}
    for broker_id in cluster.brokers:
        with cluster.client(broker_id) as http:
            values = sorted(v for p in range(3) for v in read_values(http, "orders", p))
            assert len(values) == 36
            offsets = [http.get(f"/v1/topics/orders/partitions/{p}/offsets").json()["offset"] for p in range(3)]
            assert sum(offsets) == 36
            described[broker_id] = http.get("/v1/topics/orders").json()
            for p in range(3):
                leader = described[broker_id]["partitions"][p]["leader"]
                if leader != broker_id:
                    refused = http.post(
                        f"/v1/topics/orders/partitions/{p}/batches",
                        content=encode_batch([NewRecord(None, b"x")]),
                        headers={"content-type": BATCH},
                    )
                    assert refused.status_code == 421, refused.text
                    assert refused.json()["error_code"] == "NOT_LEADER_OR_FOLLOWER"
                    assert refused.json()["leader_id"] == leader
                    assert refused.json()["leader_url"] == cluster.url(leader)
                    raw = http.get(
                        f"/v1/topics/orders/partitions/{p}/records", params={"offset": 0}, headers={"accept": BATCH}
                    )
                    assert raw.status_code == 421 and raw.json()["leader_id"] == leader  # the SDK goes to leaders
    assert described[0] == described[1] == described[2]
    assert sum(p["high_watermark"] for p in described[0]["partitions"]) == 36
    # The record formats travel with a forwarded produce: binary keys and values arrive as bytes.
    leader = described[0]["partitions"][0]["leader"]
    other = next(b for b in cluster.brokers if b != leader)
    with cluster.client(other) as http:
        body = {
            "key_format": "base64",
            "value_format": "base64",
            "records": [{"key": "AAH/", "value": "3q2+7w==", "partition": 0}],
        }
        answer = http.post("/v1/topics/orders/records", json=body)
        assert answer.status_code == 200, answer.text
        offset = answer.json()["offsets"][0]["offset"]
        fetched = http.get(
            "/v1/topics/orders/partitions/0/records",
            params={"offset": offset, "max_wait_ms": 0, "key_format": "base64", "value_format": "base64"},
        ).json()["records"][0]
        assert (fetched["key"], fetched["value"]) == ("AAH/", "3q2+7w==")


@pytest.mark.parametrize("stop", ["sigterm"])
def test_sigterm_hands_leadership_over_first(cluster_factory: Any, stop: str) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3, DURABLE)
    leader = cluster.leader("orders", 0)
    assert cluster.stop(leader) == 0
    text = cluster.brokers[leader].log_text()
    assert "event=controlled_shutdown leaderships_left=0" in text
    new = cluster.leader("orders", 0)
    assert new not in (leader, -1)
    with cluster.client(new) as http:
        assert produce_json(http, "orders", ["after"]).status_code == 200


def test_a_broker_the_controller_forgot_registers_again(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.create_topic("orders", 1, 3)
    victim = next(b for b in cluster.brokers if b != cluster.leader("orders", 0))
    # Another incarnation claims the id (as after a controller restore): the real one's heartbeat is refused.
    response = httpx.post(
        f"{cluster.controller.url}/v1/controller/brokers/{victim}/register",
        json={"url": cluster.url(victim), "incarnation": "imposter"},
    )
    assert response.status_code == 200
    assert victim not in cluster.partition_state("orders", 0)["isr"]  # a new incarnation was away

    def registered_again() -> bool:
        brokers = {b["broker_id"]: b for b in cluster.metadata()["brokers"]}
        return brokers[victim]["incarnation"] != "imposter" and not brokers[victim]["fenced"]

    cluster.wait_for(registered_again, 10, "the broker registered again")
    assert "event=reregistering" in cluster.brokers[victim].log_text()
    cluster.wait_for_isr("orders", 0, {0, 1, 2})  # it caught up and was let back in
