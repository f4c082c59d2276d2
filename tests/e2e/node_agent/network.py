"""Pod IPs as ``/32`` addresses on the loopback interface (``ip addr``; needs CAP_NET_ADMIN, e.g. root).

Traffic to them stays on this host, brokers bind them like a pod binds its own IP, and unlike 127/8 the API
server accepts them as Service endpoints.
"""

from __future__ import annotations

import ipaddress
import subprocess

__all__ = ["NetworkUnavailableError", "add_address", "check", "remove_address", "remove_stale"]

DEVICE = "lo"


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


def remove_stale(prefix: str) -> list[str]:
    """Addresses a previous agent left under ``prefix`` (e.g. after SIGKILL)."""
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
