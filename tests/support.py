"""The test helpers every suite shares: one ``wait_for`` and one ``free_port``.

``wait_for`` polls until a probe answers; its timeout is a generous bound for a loaded machine, never a timing
assertion. ``free_port`` is for the few programs that cannot listen on port 0 and say which port the kernel
gave them (etcd, kube-apiserver, a dev cluster's consecutive ports): anything that can, should (the broker and
the controller do, see ``conftest.BrokerProcess``), since a port probed free may be taken before it is used.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["free_port", "free_ports", "wait_for"]

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (),
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy (returned); fail after ``timeout`` seconds naming
    ``what``, the last error in ``retry_on`` (exceptions that mean "not yet") and ``explain()`` (a log tail)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except retry_on as error:
            last = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last!r})" if last is not None else ""
            extra = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"{what} not met within {timeout:.0f}s{detail}{extra}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just gave out and took back (for programs that cannot report a port-0 choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count + 1`` consecutive free ports (``gafka dev``: brokers on P..P+count-1, controller
    above), starting where the kernel's own choice lands so parallel runs do not all probe the same range."""
    start = free_port(host)
    for base in range(start, 65535 - count, count + 7):
        if all(_bindable(host, port) for port in range(base, base + count + 1)):
            return base
    raise AssertionError(f"no {count + 1} consecutive free ports on {host}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
