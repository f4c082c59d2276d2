"""A Docker engine for the image tests: the one already reachable, or a private ``dockerd`` this module starts.

The private engine (Debian's ``docker.io``: dockerd 20.10 with its own containerd, runc) is started so that it
changes nothing on the host that other programs see: no iptables rules (``--iptables=false --ip6tables=false``),
no bridge or interface (``--bridge=none``; containers use the host's network), no forwarding or masquerade
(``--ip-forward=false --ip-masq=false``). Its socket and run state live in a directory of its own under
``/run``; its data root is ``${GAFKA_CACHE:-~/.cache/gafka}/docker`` so that built images and BuildKit's layer
cache survive the run (one engine at a time uses it: a lock file; dangling images and all but 2 GB of build cache
are pruned when it stops). :meth:`DockerEngine.stop` stops it and then
checks that nothing is left: no process of it (dockerd, containerd, shims), no mount under its directories, no
new network interface or route, ``ip_forward`` as it was -- what it finds is cleaned up and reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["DockerEngine", "EngineUnavailableError", "HostState", "find_or_start"]

CACHE = Path(os.environ.get("GAFKA_CACHE") or Path.home() / ".cache" / "gafka")
DEBIAN_DOCKERD = Path("/usr/sbin/dockerd")
DEBIAN_DOCKER = Path("/usr/bin/docker")  # the CLI that matches Debian's dockerd (it does BuildKit builds itself)
START_TIMEOUT_S = 60.0
LOCK_TIMEOUT_S = 1800.0


class EngineUnavailableError(RuntimeError):
    """No engine is reachable and none can be started here (the reason says why)."""


def _run(
    argv: list[str], env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env, timeout=timeout)


@dataclass(frozen=True)
class HostState:
    """What a daemon could change on the host and must not: interfaces, routes, IPv4 forwarding."""

    interfaces: frozenset[str]
    routes: frozenset[str]
    ip_forward: str

    @classmethod
    def now(cls) -> HostState:
        links = _run(["ip", "-o", "link", "show"]).stdout.splitlines()
        routes = _run(["ip", "route", "show", "table", "all"]).stdout.splitlines()
        return cls(
            interfaces=frozenset(line.split(":")[1].strip().split("@")[0] for line in links if ":" in line),
            routes=frozenset(line.strip() for line in routes if line.strip()),
            ip_forward=Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        )

    def changes_since(self, before: HostState) -> list[str]:
        found = [f"new interface {name}" for name in sorted(self.interfaces - before.interfaces)]
        found += [f"new route {route!r}" for route in sorted(self.routes - before.routes)]
        if self.ip_forward != before.ip_forward:
            found.append(f"net.ipv4.ip_forward changed {before.ip_forward} -> {self.ip_forward}")
        return found


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line names ``text`` (a directory only our daemon and its children use)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                pids.append(int(entry.name))
    return pids


def _mounts_under(*roots: Path) -> list[str]:
    prefixes = tuple(str(root) for root in roots)
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefixes):
            mounts.append(target)
    return mounts


@dataclass
class DockerEngine:
    """A reachable engine: ``cli`` is the docker CLI to use, ``env`` the environment that reaches it."""

    cli: str
    env: dict[str, str]
    owned: bool = False
    run_dir: Path | None = None
    data_root: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    host_before: HostState | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = _run([self.cli, *args], env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def log_tail(self, lines: int = 40) -> str:
        if self.run_dir is None:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join((self.run_dir / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    @classmethod
    def start_private(cls, data_root: Path = CACHE / "docker") -> DockerEngine:
        """Start Debian's dockerd on a socket of its own (see the module docstring); root only."""
        if os.geteuid() != 0:
            raise EngineUnavailableError("starting dockerd needs root")
        if not (DEBIAN_DOCKERD.exists() and DEBIAN_DOCKER.exists()):
            raise EngineUnavailableError("no Docker engine reachable and no dockerd (apt-get install docker.io)")
        data_root.mkdir(parents=True, exist_ok=True)
        lock = (data_root.parent / "docker.lock").open("w")
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:  # one engine per data root; another test session may hold it
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise EngineUnavailableError(f"{data_root} stayed locked by another engine") from None
                time.sleep(1)
        run_dir = Path(tempfile.mkdtemp(prefix="gafka-docker-", dir="/run"))
        socket = run_dir / "docker.sock"
        engine = cls(
            cli=str(DEBIAN_DOCKER),
            env={**os.environ, "DOCKER_HOST": f"unix://{socket}"},
            owned=True,
            run_dir=run_dir,
            data_root=data_root,
            host_before=HostState.now(),
            _lock=lock,
        )
        argv = [
            str(DEBIAN_DOCKERD),
            f"--data-root={data_root}",
            f"--exec-root={run_dir / 'exec'}",
            f"--host=unix://{socket}",
            f"--pidfile={run_dir / 'dockerd.pid'}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--storage-driver=overlay2",
            "--exec-opt=native.cgroupdriver=cgroupfs",
        ]
        with (run_dir / "dockerd.log").open("wb") as log:
            engine.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while _run([engine.cli, "info"], env=engine.env).returncode != 0:
            if engine.process.poll() is not None or time.monotonic() > deadline:
                tail = engine.log_tail()
                engine.stop()
                raise AssertionError(f"dockerd did not start:\n{tail}")
            time.sleep(0.5)
        return engine

    def stop(self) -> list[str]:
        """Stop a private engine and return what it left behind (cleaned up as far as possible); [] if clean."""
        if not self.owned or self.run_dir is None:
            return []
        left: list[str] = []
        if self.process is not None and self.process.poll() is None:
            # the data root is a cache: images replaced by newer builds go, BuildKit keeps its most recent 2 GB
            self.docker("image", "prune", "--force", check=False)
            self.docker("builder", "prune", "--force", "--keep-storage", "2gb", check=False, timeout=300)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                left.append("dockerd ignored SIGTERM for 60 s")
                self.process.kill()
                self.process.wait()
        time.sleep(0.5)  # containerd and its shims exit right after dockerd
        # dockerd's one known leftover: libnetwork bind-mounts the host's network namespace at
        # <exec-root>/netns/default and does not unmount it on shutdown (part of stopping it, not a leak)
        default_netns = self.run_dir / "exec" / "netns" / "default"
        if str(default_netns) in _mounts_under(default_netns):
            _run(["umount", str(default_netns)])
        for pid in _processes_mentioning(str(self.run_dir)):
            left.append(f"process {pid} still running: {_cmdline(pid)}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        roots = [self.run_dir, *([self.data_root] if self.data_root else [])]
        for mount in sorted(_mounts_under(*roots), key=len, reverse=True):
            left.append(f"mount {mount}")
            _run(["umount", "-l", mount])
        if self.host_before is not None:
            left += HostState.now().changes_since(self.host_before)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        self.run_dir = None
        return left


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    return "?"


def find_or_start() -> DockerEngine:
    """The engine ``docker`` already reaches (``DOCKER`` names the CLI), else a private one."""
    cli = os.environ.get("DOCKER") or shutil.which("docker")
    if cli and _run([cli, "info"]).returncode == 0:
        return DockerEngine(cli=cli, env=dict(os.environ))
    return DockerEngine.start_private()
