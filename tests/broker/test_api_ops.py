"""Operations endpoints against a real broker: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gafka_broker.app import route_table

from .helpers import create_topic, fetch, metric, produce

if TYPE_CHECKING:
    from conftest import BrokerProcess


@pytest.fixture
def http(shared_broker: BrokerProcess) -> Iterator[httpx.Client]:
    with shared_broker.client() as client:
        yield client


class _NoBroker:
    """Enough of a broker for building the route table."""

    config = None


ROUTES = [(path, method) for path, method, _ in route_table(_NoBroker())]  # type: ignore[arg-type]


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_metrics(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic, 2)
    produce(http, topic, [{"value": "abc", "partition": 1}, {"value": "def", "partition": 1}])
    fetch(http, topic, 1, 0)
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "gafka_topic_messages_in_total", topic=topic) == 2
    assert (metric(text, "gafka_topic_bytes_in_total", topic=topic) or 0) > 6
    assert metric(text, "gafka_topic_messages_out_total", topic=topic) == 2
    assert (metric(text, "gafka_topic_bytes_out_total", topic=topic) or 0) > 6
    assert metric(text, "gafka_partition_log_end_offset", topic=topic, partition="1") == 2
    assert metric(text, "gafka_partition_log_end_offset", topic=topic, partition="0") == 0
    assert metric(text, "gafka_partition_high_watermark", topic=topic, partition="1") == 2
    assert metric(text, "gafka_partition_log_start_offset", topic=topic, partition="1") == 0
    produce_route = "/v1/topics/{topic}/records"
    assert (metric(text, "gafka_http_request_duration_seconds_count", route=produce_route, method="POST") or 0) >= 1
    assert metric(text, "gafka_http_request_duration_seconds_bucket", route=produce_route, method="POST", le="+Inf")
    # The log's own metrics are in the same registry.
    assert "gafka_log_fsync_seconds_bucket" in text
    assert "gafka_log_recoveries_total" in text
    assert "gafka_fetch_long_polls" in text


def test_broker_stats_and_cluster_health(http: httpx.Client, topic: str) -> None:
    """``GET /v1/broker`` counts traffic, disk and connections; ``/v1/cluster`` the partitions and leaderships;
    ``/metrics`` shows the same numbers."""
    before = http.get("/v1/broker").json()
    create_topic(http, topic, 2)
    produce(http, topic, [{"value": "abc", "partition": 0}, {"value": "def", "partition": 1}])
    fetch(http, topic, 0, 0)
    after = http.get("/v1/broker").json()
    assert after["ready"] is True
    assert after["messages_in_total"] - before["messages_in_total"] == 2
    assert after["bytes_in_total"] - before["bytes_in_total"] > 6
    assert after["messages_out_total"] - before["messages_out_total"] == 1
    assert after["leaders"] >= 2 and after["replicas"] >= 2
    assert 0 < after["disk_free_bytes"] <= after["disk_capacity_bytes"]
    assert after["log_size_bytes"] > 0
    assert after["connections"]["http"] >= 1  # this client's
    cluster = http.get("/v1/cluster").json()
    (me,) = cluster["brokers"]
    assert me["leaders"] == after["leaders"] and me["rack"] is None
    assert cluster["partitions"]["total"] >= 2
    assert cluster["partitions"]["offline"] == cluster["partitions"]["under_replicated"] == 0
    text = http.get("/metrics").text
    assert metric(text, "gafka_cluster_partitions", state="all") == cluster["partitions"]["total"]
    assert metric(text, "gafka_cluster_partitions", state="offline") == 0
    assert metric(text, "gafka_cluster_brokers", state="unfenced") == 1
    assert metric(text, "gafka_broker_leader_partitions") == after["leaders"]
    assert (metric(text, "gafka_log_dir_free_bytes") or 0) > 0
    assert (metric(text, "gafka_listener_connections", listener="http") or 0) >= 1
    assert metric(text, "gafka_broker_info", broker_id=str(me["id"]), rack="") == 1


def test_errors_are_counted_by_code(http: httpx.Client) -> None:
    http.get("/v1/topics/no-such-topic")
    text = http.get("/metrics").text
    assert (
        metric(text, "gafka_http_errors_total", route="/v1/topics/{topic}", error_code="UNKNOWN_TOPIC_OR_PARTITION")
        or 0
    ) >= 1


def test_deleted_topic_leaves_metrics(http: httpx.Client, topic: str) -> None:
    create_topic(http, topic)
    produce(http, topic, [{"value": "v"}])
    http.delete(f"/v1/topics/{topic}")
    text = http.get("/metrics").text
    assert metric(text, "gafka_topic_messages_in_total", topic=topic) is None
    assert metric(text, "gafka_partition_log_end_offset", topic=topic, partition="0") is None


def test_openapi_describes_every_route(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path, method in ROUTES:
        assert method.lower() in document["paths"][path], (path, method)
    assert len(document["paths"]) == len({path for path, _ in ROUTES})


def test_api_doc_describes_every_route() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    headings = set(re.findall(r"^#+ `?([A-Z]+) (/\S*?)`?$", doc, flags=re.MULTILINE))
    for path, method in ROUTES:
        assert (method, path) in headings, f"docs/api.md has no heading for {method} {path}"
