"""Partition-log benchmarks: append, fsync and group commit, read, recovery, memory per partition.

Run: ``python bench/log_bench.py [--dir DIR] [--quick] [--json]``. Data goes under DIR (default: a temp
directory on the same disk as the working tree, never tmpfs, so fsync numbers are real) and is removed.
Results are printed as a Markdown table for docs/benchmarks.md, or as JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.log.group_commit import GroupCommitter
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

RECORD_SIZE = 1024
MB = 1024 * 1024


def _batch(records: int, *, size: int = RECORD_SIZE) -> bytes:
    value = os.urandom(size)
    return encode_batch([NewRecord(None, value) for _ in range(records)])


def _config(**overrides: Any) -> TopicConfig:
    return TopicConfig.from_configs({"max.message.bytes": 64 * MB, **overrides})


def _best_of(runs: int, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    results = [measure() for _ in range(runs)]
    return max(results, key=lambda result: result["mb_per_s"])


def bench_append(root: Path, records_per_batch: int, total_mb: int) -> dict[str, float]:
    data = _batch(records_per_batch)
    appends = max(total_mb * MB // len(data), 1)

    def measure() -> dict[str, float]:
        directory = Path(tempfile.mkdtemp(dir=root)) / "append-0"
        log = PartitionLog.open(directory, _config())
        started = time.perf_counter()
        for _ in range(appends):
            log.append_as_leader(data)
        elapsed = time.perf_counter() - started
        log.abandon()
        shutil.rmtree(directory.parent)
        return {
            "mb_per_s": appends * len(data) / MB / elapsed,
            "msg_per_s": appends * records_per_batch / elapsed,
        }

    return _best_of(3, measure)


def bench_fsync_each(root: Path, records_per_batch: int, appends: int) -> dict[str, float]:
    """One appender, fsync after every append (no sharing possible)."""
    data = _batch(records_per_batch)
    directory = Path(tempfile.mkdtemp(dir=root)) / "fsync-0"
    log = PartitionLog.open(directory, _config(**{"flush.messages": 1}))
    latencies = []
    started = time.perf_counter()
    for _ in range(appends):
        begin = time.perf_counter()
        log.append_as_leader(data)
        log.flush()
        latencies.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - started
    log.close()
    shutil.rmtree(directory.parent)
    return {
        "mb_per_s": appends * len(data) / MB / elapsed,
        "msg_per_s": appends * records_per_batch / elapsed,
        "appends_per_s": appends / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
    }


def bench_group_commit(root: Path, records_per_batch: int, appenders: int, appends_each: int) -> dict[str, float]:
    """``appenders`` coroutines each append and wait for durability, as produce requests with flush.messages=1."""
    data = _batch(records_per_batch)
    directory = Path(tempfile.mkdtemp(dir=root)) / "group-0"
    log = PartitionLog.open(directory, _config(**{"flush.messages": 1}))
    committer = GroupCommitter()
    latencies: list[float] = []

    async def appender() -> None:
        for _ in range(appends_each):
            begin = time.perf_counter()
            log.append_as_leader(data)
            await committer.after_append(log)
            latencies.append(time.perf_counter() - begin)

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(appender() for _ in range(appenders)))
        elapsed = time.perf_counter() - started
        await committer.close()
        return elapsed

    elapsed = asyncio.run(run())
    total = appenders * appends_each
    log.close()
    shutil.rmtree(directory.parent)
    latencies.sort()
    return {
        "mb_per_s": total * len(data) / MB / elapsed,
        "msg_per_s": total * records_per_batch / elapsed,
        "appends_per_s": total / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def bench_read(root: Path, total_mb: int, max_bytes: int) -> dict[str, float]:
    data = _batch(1000)
    directory = Path(tempfile.mkdtemp(dir=root)) / "read-0"
    log = PartitionLog.open(directory, _config())
    for _ in range(max(total_mb * MB // len(data), 1)):
        log.append_as_leader(data)

    def measure() -> dict[str, float]:
        offset, read = 0, 0
        started = time.perf_counter()
        while offset < log.log_end_offset:
            chunk = log.read(offset, max_bytes).data
            read += len(chunk)
            # next offset = one past the last batch returned (whole batches: read its header)
            offset = int.from_bytes(chunk[-len(data) : -len(data) + 8], "big") + 1000
        elapsed = time.perf_counter() - started
        return {"mb_per_s": read / MB / elapsed}

    result = _best_of(3, measure)
    log.close()
    shutil.rmtree(directory.parent)
    return result


def bench_recovery(root: Path, total_mb: int, records_per_batch: int) -> dict[str, float]:
    """A segment of ``total_mb`` never flushed nor checkpointed: the next open scans all of it."""
    data = _batch(records_per_batch)
    directory = Path(tempfile.mkdtemp(dir=root)) / "recover-0"
    config = _config(**{"segment.bytes": 2 * 1024 * MB - 1})
    log = PartitionLog.open(directory, config)
    for _ in range(max(total_mb * MB // len(data), 1)):
        log.append_as_leader(data)
    end, size = log.log_end_offset, log.size_bytes
    log.abandon()
    started = time.perf_counter()
    recovered = PartitionLog.open(directory, config)
    elapsed = time.perf_counter() - started
    assert recovered.log_end_offset == end, "recovery lost data"
    recovered.close()
    shutil.rmtree(directory.parent)
    return {"seconds": elapsed, "mb": size / MB, "mb_per_s": size / MB / elapsed}


def bench_memory_per_partition(root: Path, partitions: int) -> dict[str, float]:
    """Python heap held by open partition logs that each hold a little data (tracemalloc)."""
    data = _batch(10)
    base = Path(tempfile.mkdtemp(dir=root))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    logs = []
    for partition in range(partitions):
        log = PartitionLog.open(base / f"mem-{partition}", _config())
        log.append_as_leader(data)
        logs.append(log)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    for log in logs:
        log.close()
    shutil.rmtree(base)
    return {"bytes_per_partition": held / partitions, "mb_per_s": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="where to put data (default: a temp dir in .)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix=".gafka-bench-", dir=args.dir or Path.cwd()))
    scale = 8 if args.quick else 1
    try:
        results: dict[str, dict[str, float]] = {}
        for records in (1, 100, 1000):
            results[f"append, batches of {records} x 1 KB, no fsync"] = bench_append(
                root, records, (64 if records == 1 else 512) // scale
            )
        results["append + fsync each, batches of 100 x 1 KB, 1 appender"] = bench_fsync_each(root, 100, 200 // scale)
        results["append + group commit, batches of 100 x 1 KB, 32 appenders"] = bench_group_commit(
            root, 100, 32, 40 // scale
        )
        results["append + group commit, batches of 1 x 1 KB, 32 appenders"] = bench_group_commit(
            root, 1, 32, 200 // scale
        )
        results["read from page cache, 1 MiB fetches"] = bench_read(root, 1024 // scale, MB)
        results["recovery of an unflushed segment, batches of 1000 x 1 KB"] = bench_recovery(root, 1024 // scale, 1000)
        results["recovery of an unflushed segment, batches of 100 x 1 KB"] = bench_recovery(root, 1024 // scale, 100)
        results["memory per open partition (Python heap)"] = bench_memory_per_partition(root, 1000 // scale)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"machine": _machine(), "results": results}, indent=2))
        return
    print(f"machine: {_machine()}")
    print("| benchmark | result |\n|---|---|")
    for name, values in results.items():
        shown = ", ".join(f"{key} {value:,.1f}" for key, value in values.items() if value)
        print(f"| {name} | {shown} |")


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


if __name__ == "__main__":
    main()
