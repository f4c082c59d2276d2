"""One-broker HTTP benchmarks: JSON produce, binary produce, produce->consume latency, broker memory.

Run: ``python bench/broker_bench.py [--seconds 10] [--url URL]``. Without --url it starts a ``gafka broker``
on a free loopback port with a temporary data directory (on the working tree's disk) and stops it after.
Load comes from ``wrk`` (C, keep-alive connections; ``apt-get install wrk``) for the throughput runs and
from an asyncio client for the latency run. Output: a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gafka.protocol.record_batch import NewRecord, decode_batches, encode_batch

BATCH_MEDIA_TYPE = "application/vnd.gafka.record-batch.v2"
RECORD = 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """A ``gafka broker`` child process."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        """``args``: more ``gafka broker`` flags."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gafka.cli.main", "broker"),
                *("--data-dir", str(data_dir), "--listen", f"127.0.0.1:{self.port}", *args),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("broker did not become ready")
            time.sleep(0.1)

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 connection: a fraction of a general client's CPU per request, so the
    load generator does not starve the broker it measures on a 2-core machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def connect(cls, url: str) -> RawHTTP:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def create_topic(url: str, name: str, partitions: int, configs: dict[str, Any] | None = None) -> None:
    response = httpx.post(
        f"{url}/v1/topics", json={"name": name, "partitions": partitions, "configs": configs or {}}, timeout=10
    )
    if response.status_code not in (200, 201, 409):
        raise RuntimeError(f"cannot create topic {name}: {response.status_code} {response.text}")


def wrk(url: str, script: str, seconds: int, connections: int, threads: int = 1) -> dict[str, float]:
    """Run wrk with a Lua ``script``; return requests/s, non-2xx count and latency percentiles (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        output = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", path, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(path).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)

    def percentile(name: str) -> float:
        match = re.search(rf"{name}%\s+([\d.]+)(us|ms|s)", output)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "requests_per_s": rps,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
    }


def bench_json(url: str, seconds: int, connections: int) -> dict[str, float]:
    create_topic(url, "bench-json", 1)
    body = json.dumps({"records": [{"value": "x" * RECORD}]})
    script = f"""
wrk.method = "POST"
wrk.path = "/v1/topics/bench-json/records?acks=1"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {json.dumps(body)}
"""
    result = wrk(url, script, seconds, connections)
    result["msg_per_s"] = result["requests_per_s"]
    return result


def bench_binary(url: str, seconds: int, connections: int, records: int, configs: dict[str, Any]) -> dict[str, float]:
    topic = "bench-bin-" + ("fsync" if configs else "plain") + f"-{records}"
    create_topic(url, topic, 1, configs)
    batch = encode_batch([NewRecord(None, os.urandom(RECORD)) for _ in range(records)])
    with tempfile.NamedTemporaryFile("wb", suffix=".bin", delete=False) as handle:
        handle.write(batch)
        batch_path = handle.name
    script = f"""
wrk.method = "POST"
wrk.path = "/v1/topics/{topic}/partitions/0/batches?acks=1"
wrk.headers["Content-Type"] = "{BATCH_MEDIA_TYPE}"
local f = io.open("{batch_path}", "rb")
wrk.body = f:read("*all")
f:close()
"""
    try:
        result = wrk(url, script, seconds, connections)
    finally:
        Path(batch_path).unlink()
    result["msg_per_s"] = result["requests_per_s"] * records
    result["mb_per_s"] = result["requests_per_s"] * len(batch) / 1e6
    return result


async def _e2e(url: str, rate: int, seconds: int, per_batch: int) -> dict[str, float]:
    """Produce ``rate`` msg/s in small binary batches (one every ``per_batch / rate`` s, like a producer
    with a short linger) while a consumer long-polls raw batches; latency = receive time - send time,
    carried in each value."""
    create_topic(url, "bench-e2e", 1)
    latencies: list[float] = []
    total = rate * seconds
    offsets_url = f"{url}/v1/topics/bench-e2e/partitions/0/offsets?at=latest"
    start_offset = (await asyncio.to_thread(httpx.get, offsets_url)).json()["offset"]
    consumer_connection = await RawHTTP.connect(url)
    accept = f"Accept: {BATCH_MEDIA_TYPE}\r\n"

    async def consume() -> None:
        offset = start_offset
        while len(latencies) < total:
            path = f"/v1/topics/bench-e2e/partitions/0/records?offset={offset}&max_wait_ms=1000"
            _, body = await consumer_connection.request("GET", path, headers=accept)
            now = time.perf_counter()
            for record in decode_batches(body):
                if record.offset >= offset and record.value is not None:
                    latencies.append((now - float(record.value[:24])) * 1000)
                    offset = record.offset + 1

    async def produce() -> None:
        # senders share one schedule; each waits for its answer, so nothing queues in the client
        interval = per_batch / rate
        batches = total // per_batch
        start = time.perf_counter()
        claimed = 0
        content_type = f"Content-Type: {BATCH_MEDIA_TYPE}\r\n"

        async def sender() -> None:
            nonlocal claimed
            connection = await RawHTTP.connect(url)
            while claimed < batches:
                slot = claimed
                claimed += 1
                delay = start + slot * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                stamp = f"{time.perf_counter():<24.9f}".encode()
                batch = encode_batch([NewRecord(None, stamp + b"x" * (RECORD - 24)) for _ in range(per_batch)])
                status, _ = await connection.request(
                    "POST", "/v1/topics/bench-e2e/partitions/0/batches?acks=1", batch, content_type
                )
                assert status == 200, status
            connection.close()

        await asyncio.gather(*(sender() for _ in range(4)))

    consumer = asyncio.create_task(consume())
    started = time.perf_counter()
    await produce()
    await asyncio.wait_for(consumer, 30)
    elapsed = time.perf_counter() - started
    consumer_connection.close()
    latencies.sort()
    return {
        "msg_per_s": len(latencies) / elapsed,
        "avg_ms": statistics.fmean(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[int(len(latencies) * 0.95)],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="benchmark a running broker instead of starting one")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("broker_bench: wrk is not installed (apt-get install wrk)")
    data_dir = Path(tempfile.mkdtemp(prefix=".gafka-bench-", dir=Path.cwd()))
    broker = None if args.url else Broker(data_dir)
    url = args.url or broker.url  # type: ignore[union-attr]
    results: dict[str, dict[str, float]] = {}
    try:
        results["JSON produce, 1 x 1 KB record per request, acks=1"] = bench_json(url, args.seconds, args.connections)
        for records in (100, 1000):
            results[f"binary produce, batches of {records} x 1 KB, acks=1"] = bench_binary(
                url, args.seconds, 8, records, {}
            )
        results["binary produce, batches of 100 x 1 KB, acks=1, flush.messages=1 (group commit)"] = bench_binary(
            url, args.seconds, 32, 100, {"flush.messages": 1}
        )
        results["produce -> consume latency at 5,000 msg/s (batches of 5 every 1 ms)"] = asyncio.run(
            _e2e(url, 5000, args.seconds, 5)
        )
        if broker is not None:
            results["broker memory"] = {"peak_rss_mb": broker.peak_rss_mb(), "rss_mb_after": broker.rss_mb()}
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| benchmark | result |\n|---|---|")
    for name, values in results.items():
        shown = ", ".join(f"{key} {value:,.1f}" for key, value in values.items() if value == value and value)
        print(f"| {name} | {shown} |")


if __name__ == "__main__":
    main()
