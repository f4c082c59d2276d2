"""Does the log cleaner starve produce and fetch? Produce -> consume latency while it cleans.

Run: ``python bench/cleaner_latency_bench.py [--mb 256] [--seconds 10]``. For each setting of the
cleaner (off, unthrottled, throttled by ``log_cleaner_io_max_bytes_per_second``) a fresh broker gets a
compacted topic of ``--mb`` MiB (1 KB records, 1,000 keys, 16 MiB segments), then the latency probe of
``bench/broker_bench.py`` (2,000 msg/s in batches of 5, a consumer long-polling) runs on another topic
while the cleaner works through the compacted one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker_bench import BATCH_MEDIA_TYPE, Broker, _e2e, create_topic
from gafka.protocol.record_batch import NewRecord, encode_batch

MB = 1024 * 1024


def fill(url: str, total_mb: int) -> None:
    create_topic(
        url,
        "bench-compacted",
        1,
        {"cleanup.policy": "compact", "segment.bytes": str(16 * MB), "min.cleanable.dirty.ratio": "0.01"},
    )
    value = os.urandom(1024)
    written = 0
    index = 0
    with httpx.Client(timeout=60) as http:
        while written < total_mb * MB:
            records = [NewRecord(b"key-%d" % ((index + i) % 1000), value) for i in range(500)]
            index += 500
            batch = encode_batch(records)
            response = http.post(
                f"{url}/v1/topics/bench-compacted/partitions/0/batches",
                content=batch,
                headers={"content-type": BATCH_MEDIA_TYPE},
            )
            response.raise_for_status()
            written += len(batch)


def cleaned_bytes(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gafka_log_cleaner_bytes_read_total{") and 'topic="bench-compacted"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(case: str, args: list[str], total_mb: int, seconds: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=".gafka-cleaner-latency-", dir=Path.cwd()))
    broker = Broker(data_dir, "--log-cleaner-backoff-ms", "100", *args)
    url = broker.url
    try:
        fill(url, total_mb)
        before = cleaned_bytes(url)
        result = asyncio.run(_e2e(url, 2000, seconds, 5))
        result["cleaner_read_mb_during"] = (cleaned_bytes(url) - before) / MB
        return result
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    cases = {
        "cleaner off": ["--no-log-cleaner-enable"],
        "cleaner on, unthrottled": [],
        "cleaner on, 10 MB/s": ["--log-cleaner-io-max-bytes-per-second", str(10 * MB)],
    }
    results = {name: run(name, args, options.mb, options.seconds) for name, args in cases.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average at the end: {os.getloadavg()}")
    print("| cleaner | p50 | p95 | p99 | max | cleaner read during the probe |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms "
            f"| {r['cleaner_read_mb_during']:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
