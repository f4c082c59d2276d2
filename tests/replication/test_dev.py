"""``gafka dev --brokers 3``: one command gives a replicated cluster on loopback, stopped cleanly, resumed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from support import free_ports, wait_for

GAFKA = [sys.executable, "-m", "gafka.cli.main"]


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    wait_for(condition, timeout, interval=0.1, retry_on=(httpx.HTTPError,))


def _start(data: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    with out.open("ab") as handle:
        return subprocess.Popen(
            [*GAFKA, "dev", "--brokers", "3", "--port", str(port), "--kafka-port", "0", "--data-dir", str(data)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def test_three_broker_dev_cluster_replicates_stops_and_resumes(tmp_path: Path) -> None:
    port = free_ports(3)
    data, out = tmp_path / "gafka-data", tmp_path / "dev.out"
    urls = [f"http://127.0.0.1:{port + index}" for index in range(3)]
    process = _start(data, port, out)
    try:
        _wait(lambda: f"bootstrap URL {','.join(urls)}" in out.read_text(), 90)
        _wait(lambda: "Kafka bootstrap 127.0.0.1:" in out.read_text(), 30)
        created = httpx.post(
            f"{urls[0]}/v1/topics",
            json={"name": "orders", "partitions": 3, "replication_factor": 3, "configs": {"min.insync.replicas": "2"}},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        for partition in range(3):
            replicas = created.json()["partitions"][partition]["replicas"]
            assert sorted(replicas) == [0, 1, 2]
        for index in range(30):  # any broker takes JSON: it forwards to the partition's leader
            response = httpx.post(
                f"{urls[index % 3]}/v1/topics/orders/records?acks=all",
                json={"records": [{"key": f"k{index}", "value": f"v{index}"}]},
                timeout=10,
            )
            assert response.status_code == 200, response.text
        _wait(lambda: "partitions 3 under-replicated 0 offline 0" in out.read_text(), 30)
        console = re.search(r"web console at (\S+)", out.read_text())
        assert console, out.read_text()
        seen = httpx.get(f"{console.group(1)}/api/cluster/v1/cluster", timeout=10).json()
        assert sorted(b["id"] for b in seen["brokers"]) == [0, 1, 2]
        assert "<title>gafka console</title>" in httpx.get(console.group(1), timeout=10).text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = out.read_text()
    assert "gafka dev: stopped" in text
    for index in range(3):
        assert (data / f"broker-{index}" / ".gafka_cleanshutdown").exists()
        with socket.socket() as sock:  # every child process is gone: its port is free again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port + index))

    process = _start(data, port, out)  # the next start resumes the same data
    try:
        _wait(lambda: text.count("bootstrap URL") < out.read_text().count("bootstrap URL"), 90)

        def committed_total() -> int:
            total = 0
            for partition in range(3):
                offsets = httpx.get(f"{urls[0]}/v1/topics/orders/partitions/{partition}/offsets?at=latest", timeout=10)
                assert offsets.status_code == 200, offsets.text
                total += offsets.json()["offset"]
            return total

        # right after a restart a leader's high watermark may still lag its log until followers fetch again
        with contextlib.suppress(AssertionError):
            _wait(lambda: committed_total() == 30, 30)
        assert committed_total() == 30
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _gafka_script() -> str:
    """The installed ``gafka`` command, as a user runs it (not ``python -m``, which would put the
    working directory on sys.path for the supervisor too)."""
    return str(Path(sys.executable).with_name("gafka"))


def _children(data: Path) -> dict[str, int]:
    return {entry["name"]: entry["pid"] for entry in json.loads((data / "dev-children.json").read_text())}


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_children_die_with_dev_and_leftovers_are_stopped(tmp_path: Path) -> None:
    workdir = tmp_path / "projects"  # holds a folder named gafka, as the folder of a clone does
    (workdir / "gafka").mkdir(parents=True)
    (workdir / "gafka" / "__init__.py").write_text("")
    port = free_ports(1)
    data, out = tmp_path / "gafka-data", tmp_path / "dev.out"
    command = [_gafka_script(), "dev", "--port", str(port), "--data-dir", str(data)]
    with out.open("ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait(lambda: "bootstrap URL" in out.read_text(), 90)
        broker = _children(data)["broker-0"]
        assert _running(broker)
        process.kill()  # kill -9: the supervisor cannot clean up
        process.wait()
        _wait(lambda: not _running(broker), 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # a leftover as a supervisor without the parent-death signal would leave it: the recorded broker, running
    recorded = json.loads((data / "dev-children.json").read_text())
    with (tmp_path / "leftover.log").open("ab") as handle:
        leftover = subprocess.Popen(recorded[0]["args"], stdout=handle, stderr=subprocess.STDOUT, cwd=workdir)
    recorded[0]["pid"] = leftover.pid
    (data / "dev-children.json").write_text(json.dumps(recorded))
    _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 60)
    with out.open("ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait(lambda: out.read_text().count("bootstrap URL") == 2, 90)
        assert f"stopped broker-0 (pid {leftover.pid}), left running by an earlier gafka dev" in out.read_text()
        assert leftover.wait(timeout=5) is not None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        for running in (process, leftover):
            if running.poll() is None:
                running.kill()
                running.wait()
    assert not (data / "dev-children.json").exists()


def test_dev_defaults_to_replicated_topics_and_shows_a_broker_down(tmp_path: Path) -> None:
    port = free_ports(3)
    data, out = tmp_path / "gafka-data", tmp_path / "dev.out"
    process = _start(data, port, out)
    try:
        _wait(lambda: "bootstrap URL" in out.read_text(), 90)
        assert "new topics get replication factor 3 and min.insync.replicas 2" in out.read_text()
        created = httpx.post(f"http://127.0.0.1:{port}/v1/topics", json={"name": "plain", "partitions": 3}, timeout=10)
        assert created.status_code == 201, created.text
        assert created.json()["replication_factor"] == 3
        assert created.json()["configs"]["min.insync.replicas"] == "2"
        _wait(lambda: "partitions 3 under-replicated 0 offline 0" in out.read_text(), 60)
        mark = len(out.read_text())
        os.kill(_children(data)["broker-1"], signal.SIGKILL)
        _wait(lambda: "broker-1 died; restarted" in out.read_text()[mark:], 30)

        def recovered() -> bool:
            lines = out.read_text()[mark:].splitlines()
            return bool(lines) and "b1:up" in lines[-1] and lines[-1].endswith("under-replicated 0 offline 0")

        _wait(recovered, 90)
        recovering = [
            line for line in out.read_text()[mark:].splitlines() if "b1:starting" in line or "b1:down" in line
        ]
        assert recovering, out.read_text()[mark:]
        assert all("under-replicated 3" in line for line in recovering), recovering
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
