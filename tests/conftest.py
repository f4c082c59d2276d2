"""Shared helpers: run a real ``gafka broker`` process on a free loopback port with a temporary data dir.

Usage from any test suite::

    def test_something(broker_factory):
        broker = broker_factory("--default-partitions", "3")
        with broker.client() as http:
            http.post("/v1/topics", json={"name": "orders"})
        broker.stop()                    # SIGTERM, waits, returns the exit code
        broker.start()                   # same data dir, new port
        broker.kill()                    # SIGKILL

The broker listens on ``127.0.0.1:0`` (the kernel picks a free port, no race with other test runs) and
its URL is read from its ``event=listening`` log line; output goes to ``<tmp>/broker-N.log``, which is
printed when a start fails.
"""

from __future__ import annotations

import contextlib
import os
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

from openapi_check import check_response

__all__ = ["BrokerProcess", "broker_factory", "shared_broker", "topic", "unique_topic"]

_LISTENING = re.compile(r"event=listening url=(\S+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0

# -- ``--quick`` (scripts/test --quick): leave out what needs Kubernetes, Kafka's jars, the package index, a browser,
# Prometheus (console: Debian's chromium; monitoring: prometheus and promtool built from their Go module) or Docker --
QUICK_LEAVES_OUT_FOLDERS = ("k8s", "operator_k8s", "e2e", "interop", "console", "monitoring", "images")
QUICK_LEAVES_OUT_FIXTURES = frozenset({"kube", "kafka_libs", "kafka_tools"})
QUICK_LEAVES_OUT_MARKS = frozenset({"kafka_tools", "packaging"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help="only the tests that need neither Kubernetes nor Kafka's jars nor the package index",
    )


def needs_more_than_quick(item: pytest.Item) -> bool:
    """Whether a test needs a Kubernetes control plane, Apache Kafka's jars or the package index."""
    folder = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
    return (
        folder in QUICK_LEAVES_OUT_FOLDERS
        or bool(QUICK_LEAVES_OUT_FIXTURES & set(getattr(item, "fixturenames", ())))
        or any(mark.name in QUICK_LEAVES_OUT_MARKS for mark in item.iter_markers())
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--quick"):
        return
    left_out = [item for item in items if needs_more_than_quick(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not needs_more_than_quick(item)]


class BrokerProcess:
    """One ``gafka broker`` subprocess over a data directory that outlives restarts."""

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        listen: str = "127.0.0.1:0",
    ) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.args = list(args)
        self.env = dict(env or {})
        self.listen = listen
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = log_dir / "broker-0.log"
        self._starts = 0

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gafka.cli.main",
            "broker",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            self.listen,
            *self.args,
        ]

    def start(self, *, wait_ready: bool = True, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        """Spawn the broker and wait until it listens (and, by default, until ``/readyz`` says 200)."""
        assert self.process is None or self.process.poll() is not None, "broker already running"
        self.log_path = self.log_dir / f"broker-{self._starts}.log"
        self._starts += 1
        env = {key: value for key, value in os.environ.items() if not key.startswith("GAFKA_")}
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while not self.url_from_log():
            self._check_alive("before listening")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"broker did not listen within {timeout}s:\n{self.log_text()}")
            time.sleep(0.02)
        self.url = self.url_from_log()
        if wait_ready:
            self.wait_ready(deadline - time.monotonic())
        return self

    def url_from_log(self) -> str:
        match = _LISTENING.search(self.log_text())
        return match.group(1) if match else ""

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5.0) as http:
            while True:
                self._check_alive("before ready")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/readyz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"broker not ready within {timeout}s:\n{self.log_text()}")
                time.sleep(0.02)

    def _check_alive(self, when: str) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"broker exited with {code} {when}:\n{self.log_text()}")

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on this broker (keep-alive; 30 s timeout unless given); every answer is checked
        against the broker's OpenAPI document (``openapi_check``)."""
        kwargs.setdefault("timeout", 30.0)
        hooks = kwargs.pop("event_hooks", {})
        hooks = {**hooks, "response": [*hooks.get("response", ()), check_response]}
        return httpx.Client(base_url=self.url, event_hooks=hooks, **kwargs)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"broker ignored SIGTERM for {timeout}s:\n{self.log_text()}") from None

    def kill(self) -> None:
        """SIGKILL: no flush, no clean-shutdown marker."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> BrokerProcess:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Start brokers (``factory(*extra_args, env=..., start=True)``); all are stopped at teardown."""
    started: list[BrokerProcess] = []

    def factory(*args: str, env: Mapping[str, str] | None = None, start: bool = True) -> BrokerProcess:
        index = len(started)
        data_dir = tmp_path / f"data-{index}"
        log_dir = tmp_path / f"logs-{index}"
        log_dir.mkdir(parents=True, exist_ok=True)
        broker = BrokerProcess(data_dir, log_dir, tuple(args), env)
        started.append(broker)
        if start:
            broker.start()
        return broker

    yield factory
    for broker in started:
        with contextlib.suppress(Exception):
            broker.stop(timeout=20)
        broker.kill()


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for a whole test module (tests use their own topics via :func:`unique_topic`)."""
    root = tmp_path_factory.mktemp("shared-broker")
    broker = BrokerProcess(root / "data", root)
    broker.start()
    yield broker
    with contextlib.suppress(Exception):
        broker.stop(timeout=20)
    broker.kill()


_counter = iter(range(1_000_000))


def unique_topic(prefix: str = "t") -> str:
    """A topic name no other test in this process uses."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def topic() -> str:
    """A fresh topic name for this test."""
    return unique_topic()
