"""The Grafana dashboards: valid against the dashboard schema, and every panel's query answered with data by a
real Prometheus scraping a real 3-broker cluster under load (with the chart's rules loaded)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from replication.conftest import Cluster
from support import free_port

from .conftest import DASHBOARDS, RULES

SCHEMA = json.loads((Path(__file__).parent / "grafana-dashboard.schema.json").read_text())
BROKER_DASHBOARDS = (
    "gafka-cluster-health.json",
    "gafka-throughput.json",
    "gafka-storage.json",
    "gafka-consumer-groups.json",
)
OPERATOR_DASHBOARD = "gafka-operator.json"
SCRAPE_INTERVAL = "1s"
RATE_INTERVAL = "20s"
"""What Grafana's $__rate_interval becomes at a 1 s scrape interval (and a short test)."""


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _queries(dashboard: dict[str, Any], job: str) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL).replace("$job", job)
            yield f"{panel['title']} ({target['refId']})", expr


def test_dashboards_match_the_schema_and_lay_out_cleanly() -> None:
    dashboards = _dashboards()
    assert set(dashboards) == {*BROKER_DASHBOARDS, OPERATOR_DASHBOARD}
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    uids = set()
    for name, dashboard in dashboards.items():
        jsonschema.validate(dashboard, SCHEMA)
        uids.add(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & mine, f"{name}: {panel['title']} overlaps another panel"
            cells |= mine
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "job"} <= variables
    assert len(uids) == len(dashboards)


@contextlib.contextmanager
def _load(cluster: Cluster) -> Iterator[None]:
    """Produce (fsynced), fetch, commit as a group, and a few bad requests, until the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def join(http: httpx.Client) -> tuple[str, int]:
        """A member of group "loaders" (the first group write creates __consumer_offsets: retried meanwhile)."""
        deadline = time.monotonic() + 60
        while True:
            joined = http.post("/v1/groups/loaders/heartbeat", json={"member_epoch": 0, "topics": ["load"]})
            if joined.status_code == 200:
                return joined.json()["member_id"], joined.json()["member_epoch"]
            assert time.monotonic() < deadline, joined.text
            time.sleep(0.2)

    def run() -> None:
        try:
            clients = [httpx.Client(base_url=cluster.url(b), timeout=10) for b in cluster.brokers]
            member, epoch = join(clients[0])
            n = 0
            while not stop.is_set():
                http = clients[n % len(clients)]
                records = [{"key": f"k{i}", "value": "x" * 200} for i in range(20)]
                http.post("/v1/topics/load/records", json={"records": records})
                for partition in range(3):
                    http.get(f"/v1/topics/load/partitions/{partition}/records", params={"offset": 0, "max_wait_ms": 0})
                http.get("/v1/topics/missing")  # an error for the errors panel
                if n % 5 == 0:  # the member heartbeats and commits a little behind what was produced
                    beat = http.post("/v1/groups/loaders/heartbeat", json={"member_id": member, "member_epoch": epoch})
                    epoch = beat.json().get("member_epoch", epoch)
                    offsets = [{"topic": "load", "partition": p, "offset": n} for p in range(3)]
                    body = {"member_id": member, "member_epoch": epoch, "offsets": offsets}
                    http.post("/v1/groups/loaders/offsets", json=body)
                n += 1
                stop.wait(0.05)
            for client in clients:
                client.close()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors


@pytest.fixture
def prometheus(tmp_path: Path, prometheus_bin: dict[str, str]) -> Callable[[list[str]], str]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(targets: list[str]) -> str:
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "gafka", "static_configs": [{"targets": targets}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()  # Prometheus cannot report a port-0 choice
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                prometheus_bin["prometheus"],
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return url
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "prometheus.log").read_text())
            time.sleep(0.2)

    yield start  # type: ignore[misc]
    for process in processes:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _query(url: str, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body


def test_every_panel_query_returns_data_from_a_real_prometheus(
    cluster_factory: Callable[..., Cluster], prometheus: Callable[[list[str]], str]
) -> None:
    cluster = cluster_factory(3)
    cluster.create_topic("load", 3, 3, {"flush.messages": "1", "min.insync.replicas": "2"})
    url = prometheus([cluster.url(b).removeprefix("http://") for b in cluster.brokers])
    with _load(cluster):
        cluster.wait_for(
            lambda: len(_query(url, 'up{job="gafka"} == 1')["data"]["result"]) == 3, 60, "three brokers scraped"
        )
        time.sleep(25)  # a rate window's worth of scrapes under load
        missing = []
        for name in BROKER_DASHBOARDS:
            for title, expr in _queries(_dashboards()[name], "gafka"):
                if not _query(url, expr)["data"]["result"]:
                    missing.append(f"{name}: {title}: {expr}")
        assert not missing, "panels without data:\n" + "\n".join(missing)
    # the operator's dashboard: every query is valid PromQL (its data needs a running operator: tests/operator_k8s)
    for _title, expr in _queries(_dashboards()[OPERATOR_DASHBOARD], "gafka-operator"):
        _query(url, expr)
    # the rules evaluate without errors against real series, and the recorded lag is there
    groups = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    unhealthy = [
        (rule["name"], rule.get("lastError")) for group in groups for rule in group["rules"] if rule["health"] != "ok"
    ]
    assert not unhealthy
    lag = _query(url, 'gafka:group_lag:offsets{group="loaders"}')["data"]["result"]
    assert {sample["metric"]["partition"] for sample in lag} == {"0", "1", "2"}
