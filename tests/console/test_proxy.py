"""The console's proxy forwards the public API only, and finds a broker that answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

import httpx
import pytest

from gafka_broker.console.proxy import allowed_path
from replication.conftest import Cluster


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("v1/cluster", True),
        ("v1/topics/orders/partitions/0/records", True),
        ("v1/groups/billing/offsets/reset", True),
        ("readyz", True),
        ("v1/replication/fetch", False),
        ("v1/replication/offsets/orders", False),
        ("v1/controller/metadata", False),
        ("v1/producers", False),
        ("metrics", False),
        ("v1/../v1/replication/fetch", False),
        ("http://elsewhere/v1/cluster", False),
    ],
)
def test_only_the_public_api_is_forwarded(path: str, allowed: bool) -> None:
    assert allowed_path(path) is allowed


def test_bad_bootstrap_is_a_message_not_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gafka.cli.main", "console", "--bootstrap", "localhost:9092"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--bootstrap needs http(s):// URLs" in result.stderr
    assert "Traceback" not in result.stderr


def test_calls_go_to_a_live_broker_and_a_dead_one_is_reported(
    cluster_factory: Callable[..., Cluster], console_factory: Callable[[Sequence[str]], str]
) -> None:
    cluster = cluster_factory(3)
    console = console_factory([cluster.url(b) for b in cluster.brokers])
    cluster.kill(0)  # the first bootstrap URL: the console moves on to the next
    with httpx.Client(base_url=console, timeout=20) as http:
        assert http.get("/api/cluster/v1/cluster").status_code == 200
        assert http.get("/api/brokers/1/v1/broker").json()["id"] == 1
        down = http.get("/api/brokers/0/v1/broker")
        assert down.status_code == 502 and down.json()["error_code"] == "BROKER_NOT_AVAILABLE"
        assert http.get("/api/brokers/7/v1/broker").json()["error_code"] == "BROKER_NOT_FOUND"
        refused = http.get("/api/cluster/v1/controller/metadata")
        assert refused.status_code == 404 and refused.json()["error_code"] == "NOT_FOUND"
