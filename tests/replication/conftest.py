"""A real cluster on loopback: one ``gafka controller`` and N ``gafka broker --controller-url`` processes.

Usage::

    def test_something(cluster_factory):
        cluster = cluster_factory(3)                 # controller + brokers 0, 1, 2, all ready
        cluster.create_topic("t", partitions=1, replication_factor=3, configs={"min.insync.replicas": "2"})
        leader = cluster.leader("t", 0)
        cluster.kill(leader)                         # SIGKILL; also stop (SIGTERM), pause/resume (SIGSTOP/CONT)
        cluster.wait_for_leader("t", 0, not_in={leader})
        cluster.start(leader)                        # same data dir, new port

Brokers run with short timings (heartbeat 200 ms, session 1.5 s, replica lag 2 s, preferred leaders back
after a 1 s imbalance check) so failover takes about two seconds; every process logs to ``<tmp>/...log``,
printed when a start fails.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BrokerProcess
from support import wait_for

__all__ = ["Cluster", "ControllerProcess", "cluster_factory"]

_LISTENING = re.compile(r"event=listening url=(\S+)")
HEARTBEAT_MS = 200
SESSION_MS = 1500
LAG_MS = 2000
IMBALANCE_CHECK_MS = 1000
"""Preferred leaders come back at most this long after they caught up (Kafka's default is 300 s)."""


class ControllerProcess:
    """``gafka controller`` over a data directory that outlives restarts."""

    def __init__(self, data_dir: Path, log_dir: Path, session_timeout_ms: int) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.session_timeout_ms = session_timeout_ms
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._starts = 0
        self.log_path = log_dir / "controller-0.log"

    def start(self, timeout: float = 30.0) -> None:
        self.log_path = self.log_dir / f"controller-{self._starts}.log"
        self._starts += 1
        command = [
            sys.executable,
            "-m",
            "gafka.cli.main",
            "controller",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            "127.0.0.1:0",
            "--broker-session-timeout-ms",
            str(self.session_timeout_ms),
            "--tick-ms",
            "100",
            "--leader-imbalance-check-interval-ms",
            str(IMBALANCE_CHECK_MS),
        ]
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"controller did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.02)
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v1/controller/metadata?since=-1", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("controller not answering")
            time.sleep(0.02)

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/v1/controller/metadata?since=-1", timeout=5).json()
        return data

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Cluster:
    """A controller and brokers 0..N-1; brokers are addressed by id."""

    def __init__(self, root: Path, size: int, broker_args: tuple[str, ...], session_timeout_ms: int) -> None:
        self.root = root
        self.controller = ControllerProcess(root / "controller", root / "logs", session_timeout_ms)
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.brokers: dict[int, BrokerProcess] = {}
        self._paused: set[int] = set()
        for broker_id in range(size):
            log_dir = root / "logs" / f"broker-{broker_id}"
            log_dir.mkdir(parents=True, exist_ok=True)
            self.brokers[broker_id] = BrokerProcess(
                root / f"broker-{broker_id}",
                log_dir,
                (
                    "--broker-id",
                    str(broker_id),
                    "--broker-heartbeat-interval-ms",
                    str(HEARTBEAT_MS),
                    "--broker-session-timeout-ms",
                    str(session_timeout_ms),
                    "--replica-lag-time-max-ms",
                    str(LAG_MS),
                    "--request-timeout-ms",
                    "10000",
                    "--shutdown-timeout-ms",
                    "2000",
                    *broker_args,
                ),
            )

    # -- processes -----------------------------------------------------------------------------------
    def start_all(self) -> None:
        self.controller.start()
        for broker in self.brokers.values():
            broker.args = [*self._base_args(broker), "--controller-url", self.controller.url]
            broker.start(wait_ready=False)
        for broker in self.brokers.values():
            broker.wait_ready()

    @staticmethod
    def _base_args(broker: BrokerProcess) -> list[str]:
        args = list(broker.args)
        if "--controller-url" in args:
            index = args.index("--controller-url")
            del args[index : index + 2]
        return args

    def start(self, broker_id: int) -> BrokerProcess:
        broker = self.brokers[broker_id]
        broker.args = [*self._base_args(broker), "--controller-url", self.controller.url]
        return broker.start()

    def kill(self, broker_id: int) -> None:
        self.resume(broker_id)
        self.brokers[broker_id].kill()

    def stop(self, broker_id: int) -> int:
        self.resume(broker_id)
        return self.brokers[broker_id].stop()

    def restart(self, broker_id: int) -> BrokerProcess:
        self.stop(broker_id)
        return self.start(broker_id)

    def pause(self, broker_id: int) -> None:
        self.brokers[broker_id].signal(signal.SIGSTOP)
        self._paused.add(broker_id)

    def resume(self, broker_id: int) -> None:
        if broker_id in self._paused:
            self._paused.discard(broker_id)
            self.brokers[broker_id].signal(signal.SIGCONT)

    def alive(self, broker_id: int) -> bool:
        process = self.brokers[broker_id].process
        return process is not None and process.poll() is None

    def shutdown(self) -> None:
        for broker_id in list(self._paused):
            self.resume(broker_id)
        for broker in self.brokers.values():
            with contextlib.suppress(Exception):
                broker.stop(timeout=20)
            broker.kill()
        self.controller.stop()
        self.controller.kill()

    # -- HTTP ----------------------------------------------------------------------------------------
    def client(self, broker_id: int, **kwargs: Any) -> httpx.Client:
        return self.brokers[broker_id].client(**kwargs)

    def url(self, broker_id: int) -> str:
        return self.brokers[broker_id].url

    def metadata(self) -> dict[str, Any]:
        return self.controller.metadata()

    def partition_state(self, topic: str, partition: int) -> dict[str, Any]:
        for entry in self.metadata()["topics"]:
            if entry["name"] == topic:
                state: dict[str, Any] = entry["partitions"][partition]
                return state
        raise AssertionError(f"topic {topic} not in the metadata")

    def leader(self, topic: str, partition: int) -> int:
        return int(self.partition_state(topic, partition)["leader"])

    def wait_for(self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        """:func:`support.wait_for`; a broker that is down or not there yet (transport errors, a missing key,
        a failed check) counts as "not yet"."""
        return wait_for(
            condition, timeout, what, interval=0.02, retry_on=(httpx.TransportError, AssertionError, KeyError)
        )

    def wait_for_leader(
        self, topic: str, partition: int, *, not_in: frozenset[int] | set[int] = frozenset(), timeout: float = 20
    ) -> int:
        def elected() -> tuple[int] | None:
            leader = self.leader(topic, partition)
            return (leader,) if leader >= 0 and leader not in not_in else None  # a tuple: broker 0 is falsy

        found: tuple[int] = self.wait_for(elected, timeout, f"a leader of {topic}-{partition} outside {sorted(not_in)}")
        return found[0]

    def wait_for_isr(self, topic: str, partition: int, isr: set[int], timeout: float = 20) -> None:
        self.wait_for(
            lambda: set(self.partition_state(topic, partition)["isr"]) == isr,
            timeout,
            f"ISR of {topic}-{partition} == {sorted(isr)}",
        )

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 3,
        configs: Mapping[str, str] | None = None,
        *,
        via: int = 0,
    ) -> dict[str, Any]:
        """Create through one broker, then wait until every live broker serves it with a leader."""
        body: dict[str, Any] = {"name": name, "partitions": partitions, "replication_factor": replication_factor}
        if configs:
            body["configs"] = dict(configs)
        with self.client(via) as http:
            response = http.post("/v1/topics", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()

        def everywhere() -> bool:
            for broker_id in self.brokers:
                if not self.alive(broker_id) or broker_id in self._paused:
                    continue
                with self.client(broker_id, timeout=5) as http:
                    got = http.get(f"/v1/topics/{name}")
                if got.status_code != 200 or any(p["leader"] < 0 for p in got.json()["partitions"]):
                    return False
            return True

        self.wait_for(everywhere, 20, f"topic {name} on every broker")
        return created


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start clusters (``factory(size=3, *broker_args)``); every process is stopped at teardown."""
    started: list[Cluster] = []

    def factory(size: int = 3, *broker_args: str, session_timeout_ms: int = SESSION_MS) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(started)}", size, broker_args, session_timeout_ms)
        started.append(cluster)
        cluster.start_all()
        return cluster

    yield factory
    for cluster in started:
        cluster.shutdown()
