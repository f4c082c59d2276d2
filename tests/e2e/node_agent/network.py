"""Pod IPs as ``/32`` addresses on the loopback interface (``ip addr``; needs CAP_NET_ADMIN, e.g. root).

Traffic to them stays on this host, brokers bind them like a pod binds its own IP, and unlike 127/8 the API
server accepts them as Service endpoints. Each agent on a host claims a /16 of its own (:func:`claim_network`), so
two end-to-end runs at once (a CI job and a developer's run) never share or remove each other's addresses.
"""

from __future__ import annotations

import fcntl
import ipaddress
import subprocess
import tempfile
from pathlib import Path
from typing import IO

__all__ = ["NetworkUnavailableError", "add_address", "check", "claim_network", "remove_address", "remove_stale"]

DEVICE = "lo"
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


class NetworkUnavailableError(RuntimeError):
    """Addresses cannot be added here (no CAP_NET_ADMIN, or no ``ip`` command)."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    except FileNotFoundError as missing:
        raise NetworkUnavailableError("the node agent needs the `ip` command (iproute2)") from missing


def add_address(ip: str) -> None:
    done = _ip("addr", "add", f"{ip}/32", "dev", DEVICE)
    if done.returncode != 0 and "File exists" not in done.stderr:
        raise NetworkUnavailableError(f"ip addr add {ip}/32 dev {DEVICE}: {done.stderr.strip()}")


def remove_address(ip: str) -> None:
    _ip("addr", "del", f"{ip}/32", "dev", DEVICE)


def claim_network(first: int = 244, count: int = 8, lock_dir: Path = LOCK_DIR) -> tuple[str, IO[str]]:
    """The first of ``10.<first>`` ... ``10.<first + count - 1>`` that no other agent on this host holds, as a prefix
    (``"10.244"``), with the open lock file that holds it: an exclusive ``flock``, released when the file is closed
    or the agent dies, however it dies (so its leftover addresses are then fair game for :func:`remove_stale`)."""
    for octet in range(first, first + count):
        prefix = f"10.{octet}"
        handle = (lock_dir / f"gafka-e2e-node-agent-{prefix}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return prefix, handle
    raise NetworkUnavailableError(f"{count} node agents already run on this host (10.{first}/16 and up are taken)")


def remove_stale(prefix: str) -> list[str]:
    """Remove the addresses a previous agent left under ``prefix`` (e.g. after SIGKILL): only ever with a prefix this
    agent claimed (:func:`claim_network`), or it would take another live agent's pod IPs away."""
    network = ipaddress.ip_network(f"{prefix}.0.0/16")
    listing = _ip("-o", "-4", "addr", "show", "dev", DEVICE).stdout
    stale = []
    for line in listing.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            if ipaddress.ip_address(address) in network:
                remove_address(address)
                stale.append(address)
    return stale


def check(probe_ip: str = "10.244.255.254") -> str | None:
    """None when pod addresses can be made here, else why not."""
    try:
        add_address(probe_ip)
    except NetworkUnavailableError as error:
        return str(error)
    remove_address(probe_ip)
    return None
