"""Container probes (httpGet, tcpSocket, exec) and the kubelet's threshold bookkeeping around them."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_PERIOD_S", "ProbeState", "run_probe"]

MAX_PERIOD_S = 1.0
"""Probes run at least this often whatever periodSeconds says (a kubelet follows it; tests want speed)."""


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if value not in ports:
        raise ValueError(f"probe port {value!r} is not a named port of the container")
    return ports[value]


def run_probe(
    spec: Mapping[str, Any],
    pod_ip: str,
    ports: Mapping[str, int],
    command: Callable[[Sequence[str]], list[str]],
    env: Mapping[str, str],
) -> bool:
    """One probe attempt: True on success. ``command`` prepares an exec probe's argv (path rewriting)."""
    timeout = float(spec.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in spec:
            get = spec["httpGet"]
            connection = http.client.HTTPConnection(
                get.get("host") or pod_ip, _port(get["port"], ports), timeout=timeout
            )
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                connection.request("GET", get.get("path") or "/", headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
        if "tcpSocket" in spec:
            tcp = spec["tcpSocket"]
            with socket.create_connection((tcp.get("host") or pod_ip, _port(tcp["port"], ports)), timeout=timeout):
                return True
        if "exec" in spec:
            argv = command(spec["exec"]["command"])
            done = subprocess.run(argv, env=dict(env), capture_output=True, timeout=timeout, check=False)
            return done.returncode == 0
    except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
        return False
    raise ValueError(f"unsupported probe {sorted(spec)}")


@dataclass
class ProbeState:
    """Consecutive successes and failures of one probe of one container run, against its thresholds."""

    spec: Mapping[str, Any]
    started_at: float
    successes: int = 0
    failures: int = 0
    passing: bool = False
    next_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.spec.get("initialDelaySeconds") or 0)

    @property
    def period(self) -> float:
        return min(float(self.spec.get("periodSeconds") or 10), MAX_PERIOD_S)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float | None = None) -> None:
        self.next_at = (now if now is not None else time.monotonic()) + self.period
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.spec.get("successThreshold") or 1):
                self.passing = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= int(self.spec.get("failureThreshold") or 3):
                self.passing = False

    @property
    def failed(self) -> bool:
        """Failed past its failureThreshold (what makes a liveness or startup probe restart the container)."""
        return self.failures >= int(self.spec.get("failureThreshold") or 3)
