"""``gafka dev``: a whole local cluster in one command, no Kubernetes.

The supervisor starts a controller and N broker processes on loopback (brokers on ports P, P+1, ...,
the controller on a port of its own), keeps their data under one directory so the next start resumes it,
shows a compact live status, and on Ctrl-C or SIGTERM stops the brokers (each hands its leaderships over
first) and then the controller. A broker that dies is reported and restarted, as a pod would be.

The children die with the supervisor (a parent-death signal on Linux), and their pids are kept in
``DATA_DIR/dev-children.json`` so that a start after a supervisor that could not clean up (``kill -9`` on
a system without that signal) finds its own leftovers, says so and stops them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

POLL_S = 1.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CHILDREN_FILE = "dev-children.json"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class DevSettings:
    brokers: int = 1
    data_dir: Path = Path("gafka-data")
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int | None = None
    """Default: the first free port above the brokers'."""
    kafka_port: int = 19092
    """Kafka listener of the first broker (the others follow); 0: any free port for each."""
    heartbeat_interval_ms: int = 500
    session_timeout_ms: int = 1500
    replica_lag_time_max_ms: int = 10_000
    extra_broker_args: tuple[str, ...] = ()
    console: bool = True
    """Serve the web console too (``gafka console``), on ``console_port`` or the first free port from 8080."""
    console_port: int | None = None

    @property
    def replication_factor(self) -> int:
        """Topics default to min(brokers, 3) replicas: a replicated dev cluster makes replicated topics."""
        return min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        """One less than the replicas (at least 1), so acks=all survives one broker down."""
        return max(self.replication_factor - 1, 1)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """In the child before exec: ask Linux for SIGTERM when the supervisor dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return None

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the signal was armed
            os._exit(1)

    return arm


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    url: str
    ready_path: str = "/readyz"
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    log_file: Any = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = self.log_path.open("ab")
        self.ready = False
        self.process = subprocess.Popen(
            self.args,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),  # the supervisor runs no other threads
        )

    def check_ready(self) -> bool:
        """Whether it serves again (probed until it does, then remembered until its next start)."""
        if not self.ready and self.alive:
            with contextlib.suppress(httpx.HTTPError):
                self.ready = httpx.get(self.url + self.ready_path, timeout=0.5).status_code == 200
        return self.ready and self.alive

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
        finally:
            if self.log_file is not None:
                self.log_file.close()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _gafka(*args: str) -> list[str]:
    # -P: the working directory is not put on sys.path, so a folder named gafka there (a clone's parent
    # folder, say) cannot shadow the installed package
    return [sys.executable, "-P", "-m", "gafka.cli.main", *args]


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def stop_leftovers(data: Path) -> list[str]:
    """Stop the children an earlier supervisor of this data directory left running (SIGTERM, then SIGKILL);
    a pid counts only while it still runs the recorded command line, so a reused pid is never touched."""
    record = data / CHILDREN_FILE
    try:
        entries = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    found = [
        (str(entry["name"]), int(entry["pid"]))
        for entry in entries
        if isinstance(entry, dict) and _cmdline(int(entry.get("pid", 0))) == entry.get("args")
    ]
    for _name, pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for _name, pid in found:
        while _cmdline(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _cmdline(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    record.unlink(missing_ok=True)
    return [f"{name} (pid {pid})" for name, pid in found]


class DevCluster:
    """The supervisor's children and how to start, watch and stop them."""

    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        host = settings.host
        if settings.brokers < 1:
            raise DevError("--brokers must be at least 1")
        self.data = settings.data_dir.resolve()
        self.leftovers = stop_leftovers(self.data)
        wanted = list(range(settings.port, settings.port + settings.brokers))
        if settings.kafka_port:
            wanted += range(settings.kafka_port, settings.kafka_port + settings.brokers)
        busy = [p for p in wanted if not _port_free(host, p)]
        if busy:
            raise DevError(f"port(s) {', '.join(map(str, busy))} on {host} are in use; pick another with --port")
        data = settings.data_dir.resolve()
        self.controller: Child | None = None
        controller_args: list[str] = []
        if settings.brokers > 1:
            controller_port = settings.controller_port or next(
                p for p in range(settings.port + settings.brokers, settings.port + 1000) if _port_free(host, p)
            )
            self.controller = Child(
                "controller",
                _gafka(
                    *("controller", "--listen", f"{host}:{controller_port}"),
                    *("--data-dir", str(data / "controller")),
                    *("--broker-session-timeout-ms", str(settings.session_timeout_ms)),
                ),
                data / "logs" / "controller.log",
                f"http://{host}:{controller_port}",
                "/v1/controller/metadata?since=-1",
            )
            controller_args = ["--controller-url", self.controller.url]
        self.brokers = [
            Child(
                f"broker-{index}",
                _gafka(
                    *("broker", "--broker-id", str(index), "--listen", f"{host}:{settings.port + index}"),
                    *("--data-dir", str(data / f"broker-{index}")),
                    *("--kafka-listen", f"{host}:{settings.kafka_port + index if settings.kafka_port else 0}"),
                    *controller_args,
                    *("--broker-heartbeat-interval-ms", str(settings.heartbeat_interval_ms)),
                    *("--broker-session-timeout-ms", str(settings.session_timeout_ms)),
                    *("--replica-lag-time-max-ms", str(settings.replica_lag_time_max_ms)),
                    *("--default-replication-factor", str(settings.replication_factor)),
                    *("--default-min-insync-replicas", str(settings.min_insync_replicas)),
                    *settings.extra_broker_args,
                ),
                data / "logs" / f"broker-{index}.log",
                f"http://{host}:{settings.port + index}",
            )
            for index in range(settings.brokers)
        ]
        # a lone broker is its own controller and serves the controller's routes itself
        self.controller_url = self.controller.url if self.controller is not None else self.brokers[0].url
        self.console: Child | None = None
        if settings.console:
            console_port = settings.console_port or next(p for p in range(8080, 9080) if _port_free(host, p))
            self.console = Child(
                "console",
                _gafka("console", "--bootstrap", self.bootstrap, "--listen", f"{host}:{console_port}"),
                data / "logs" / "console.log",
                f"http://{host}:{console_port}",
                ready_path="/healthz",
            )

    @property
    def bootstrap(self) -> str:
        return ",".join(broker.url for broker in self.brokers)

    def kafka_bootstrap(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """The brokers' Kafka listeners as the controller has them registered (known once all registered)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                data = httpx.get(f"{self.controller_url}/v1/controller/metadata?since=-1", timeout=2).json()
                found = {b["broker_id"]: b.get("kafka_address") for b in data.get("brokers", [])}
                addresses = [found.get(index) for index in range(len(self.brokers))]
                if all(addresses):
                    return ",".join(str(address) for address in addresses)
            if time.monotonic() > deadline:
                raise DevError("the brokers did not register their Kafka listeners")
            time.sleep(0.1)

    @property
    def children(self) -> list[Child]:
        extras = [child for child in (self.controller, self.console) if child is not None]
        return extras + self.brokers

    def _record_children(self) -> None:
        """Who runs now, for :func:`stop_leftovers` after a supervisor that could not clean up."""
        entries = [
            {"name": child.name, "pid": child.process.pid, "args": child.args}
            for child in self.children
            if child.process is not None
        ]
        self.data.mkdir(parents=True, exist_ok=True)
        temporary = self.data / f"{CHILDREN_FILE}.tmp"
        temporary.write_text(json.dumps(entries))
        temporary.replace(self.data / CHILDREN_FILE)

    def start(self) -> None:
        if self.controller is not None:
            self.controller.start()
            self._record_children()
            _wait_ready(self.controller)
        for broker in self.brokers:
            broker.start()
        self._record_children()
        for broker in self.brokers:
            _wait_ready(broker)
        if self.console is not None:
            self.console.start()
            _wait_ready(self.console)

    def restart_dead(self) -> list[str]:
        """Restart children that died on their own (not during shutdown)."""
        restarted = []
        for child in self.children:
            if not child.alive:
                child.wait(0)
                child.restarts += 1
                child.start()
                restarted.append(child.name)
        if restarted:
            self._record_children()
        return restarted

    def stop(self) -> None:
        for broker in self.brokers:
            broker.signal(signal.SIGTERM)
        for broker in self.brokers:
            broker.wait(STOP_TIMEOUT_S)
        if self.controller is not None:
            self.controller.signal(signal.SIGTERM)
            self.controller.wait(STOP_TIMEOUT_S)
        if self.console is not None:
            self.console.signal(signal.SIGTERM)
            self.console.wait(STOP_TIMEOUT_S)
        (self.data / CHILDREN_FILE).unlink(missing_ok=True)

    def status(self) -> ClusterStatus:
        try:
            data = httpx.get(f"{self.controller_url}/v1/controller/metadata?since=-1", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return ClusterStatus(controller_up=False)
        brokers = {b["broker_id"]: b for b in data.get("brokers", [])}
        partitions = [p for t in data.get("topics", []) for p in t["partitions"] if not t["name"].startswith("__")]
        led: dict[int, int] = {}
        for p in partitions:
            led[p["leader"]] = led.get(p["leader"], 0) + 1
        states = {
            index: broker_state(child, brokers.get(index, {}).get("fenced", True))
            for index, child in enumerate(self.brokers)
        }
        # a replica on a broker that is not up is not replicating, whatever the ISR says yet
        return ClusterStatus(
            controller_up=True,
            brokers=[(index, state, led.get(index, 0)) for index, state in states.items()],
            topics=sum(1 for t in data.get("topics", []) if not t["name"].startswith("__")),
            partitions=len(partitions),
            under_replicated=sum(
                1
                for p in partitions
                if len(p["isr"]) < len(p["replicas"]) or any(states.get(r) != "up" for r in p["replicas"])
            ),
            offline=sum(1 for p in partitions if p["leader"] < 0),
        )


def broker_state(child: Child, fenced: bool) -> str:
    """``down`` (no process), ``starting`` (not serving yet), ``fenced`` (not back in the cluster) or ``up``."""
    if not child.alive:
        return "down"
    if not child.check_ready():
        return "starting"
    return "fenced" if fenced else "up"


@dataclass
class ClusterStatus:
    controller_up: bool
    brokers: list[tuple[int, str, int]] = field(default_factory=list)
    """(id, state, partitions led)."""
    topics: int = 0
    partitions: int = 0
    under_replicated: int = 0
    offline: int = 0

    def line(self) -> str:
        if not self.controller_up:
            return "controller unreachable"
        brokers = " ".join(f"b{i}:{state}({led})" for i, state, led in self.brokers)
        return (
            f"brokers {brokers} | topics {self.topics} partitions {self.partitions} "
            f"under-replicated {self.under_replicated} offline {self.offline}"
        )


class DevError(Exception):
    """The cluster cannot start (port in use, a child failed)."""


def _wait_ready(child: Child) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not child.alive:
            raise DevError(f"{child.name} exited during start-up; see {child.log_path}")
        if child.check_ready():
            return
        time.sleep(0.1)
    raise DevError(f"{child.name} did not become ready in {START_TIMEOUT_S:.0f} s; see {child.log_path}")


@contextlib.contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """Turn SIGINT/SIGTERM into a flag the watch loop sees (a second Ctrl-C still interrupts)."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(settings: DevSettings, out: TextIO = sys.stdout) -> int:
    """Start the cluster, print the bootstrap URL, watch until a stop signal, stop cleanly; exit code."""
    cluster = DevCluster(settings)
    interactive = out.isatty() and os.environ.get("CI") is None
    for leftover in cluster.leftovers:
        print(f"gafka dev: stopped {leftover}, left running by an earlier gafka dev", file=out, flush=True)
    with _stop_signals() as stop:
        try:
            cluster.start()
        except DevError as exc:
            cluster.stop()
            print(f"gafka dev: {exc}", file=sys.stderr)
            return 1
        try:  # before the first line: the start-up lines come out together
            kafka = cluster.kafka_bootstrap()
        except DevError as exc:
            cluster.stop()
            print(f"gafka dev: {exc}", file=sys.stderr)
            return 1
        print(f"gafka dev: {settings.brokers} broker(s) up; bootstrap URL {cluster.bootstrap}", file=out, flush=True)
        print(f"gafka dev: Kafka bootstrap {kafka} (any Kafka client or tool)", file=out, flush=True)
        if cluster.console is not None:
            print(f"gafka dev: web console at {cluster.console.url}", file=out, flush=True)
        print(
            f"gafka dev: new topics get replication factor {settings.replication_factor} and "
            f"min.insync.replicas {settings.min_insync_replicas} unless they ask otherwise",
            file=out,
            flush=True,
        )
        print(
            f"gafka dev: data in {settings.data_dir.resolve()}; logs in {settings.data_dir.resolve() / 'logs'}; "
            "Ctrl-C to stop",
            file=out,
            flush=True,
        )
        last = ""
        while not stop:
            for name in cluster.restart_dead():
                print(f"gafka dev: {name} died; restarted", file=out, flush=True)
            line = cluster.status().line()
            if interactive:
                print(f"\r\x1b[2K{line}", end="", file=out, flush=True)
            elif line != last:
                print(f"gafka dev: {line}", file=out, flush=True)
            last = line
            deadline = time.monotonic() + POLL_S
            while not stop and time.monotonic() < deadline:
                time.sleep(0.05)
        if interactive:
            print(file=out)
        print("gafka dev: stopping (brokers hand over leadership first)", file=out, flush=True)
        cluster.stop()
        print("gafka dev: stopped", file=out, flush=True)
    return 0
