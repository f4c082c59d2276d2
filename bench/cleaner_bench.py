"""Log-cleaner benchmark: MB/s of log cleaned (offset map + recopy + swap) for a few shapes of log.

Run: ``python bench/cleaner_bench.py [--dir DIR] [--mb 256] [--json]``. Each case writes a compacted
partition log of ``--mb`` MiB in sealed segments (plus a small active one), then times one full cleaning
by the real cleaner (:class:`LogCleaner`, the code the broker's thread runs). "MB/s cleaned" is the size
of the log before cleaning over the cleaning's wall time. Data goes under DIR (default: a temp
directory beside the working tree, not tmpfs) and is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from gafka.protocol.compression import Compression
from gafka.protocol.record_batch import NewRecord, encode_batch
from gafka_broker.log.cleaner_thread import LogCleaner
from gafka_broker.log.manager import LogManager
from gafka_broker.topic_config import TopicConfig

MB = 1024 * 1024
RECORD_SIZE = 1024
RECORDS_PER_BATCH = 100


def _config() -> TopicConfig:
    return TopicConfig.from_configs(
        {
            "cleanup.policy": "compact",
            "segment.bytes": str(64 * MB),
            "min.cleanable.dirty.ratio": "0.01",
            "max.message.bytes": str(8 * MB),
        }
    )


def bench_clean(root: Path, total_mb: int, keys: int, codec: Compression, rate: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(dir=root))
    manager = LogManager(data_dir)
    manager.startup({"bench": (1, _config())})
    log = manager.get_log("bench", 0)
    assert log is not None
    # half random, half zeros: about 2:1 for a compressor, like typical payloads
    values = [os.urandom(RECORD_SIZE // 2) + bytes(RECORD_SIZE // 2) for _ in range(1000)]
    now = int(time.time() * 1000)
    written = 0
    key_index = 0
    while written < total_mb * MB:
        records = []
        for _ in range(RECORDS_PER_BATCH):
            records.append(NewRecord(b"key-%08d" % (key_index % keys), values[key_index % 1000], (), now))
            key_index += 1
        result = log.append_as_leader(encode_batch(records, compression=codec), now_ms=now)
        written += result.size
    log.roll()
    log.append_as_leader(encode_batch([NewRecord(b"tail", b"x", (), now)]), now_ms=now)
    log.flush()
    before = log.size_bytes
    cleaner = LogCleaner(manager, io_max_bytes_per_second=rate)
    started = time.perf_counter()
    cpu_started = time.process_time()
    cleaned = cleaner.clean_filthiest(now)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    assert cleaned is not None
    after = log.size_bytes
    manager.shutdown()
    shutil.rmtree(data_dir)
    return {
        "log_mb": round(before / MB, 1),
        "removed_percent": round(100 * (1 - after / before)),
        "io_mb_per_s": round((cleaned.stats.bytes_read + cleaned.stats.bytes_written) / MB / elapsed, 1),
        "after_mb": round(after / MB, 2),
        "records": key_index,
        "seconds": round(elapsed, 2),
        "mb_per_s": round(before / MB / elapsed, 1),
        "cpu_seconds": round(cpu, 2),
        "mb_per_cpu_s": round(before / MB / cpu, 1),
        "records_per_s": round(key_index / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="where to put data (default: a temp dir in .)")
    parser.add_argument("--mb", type=int, default=256, help="size of each log to clean, MiB")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gafka-cleaner-bench-", dir=args.dir or Path.cwd()))
    cases = [
        ("1 KB records, 10,000 keys, uncompressed", 10_000, Compression.NONE, float("inf")),
        ("1 KB records, every key distinct (nothing removed), uncompressed", 1 << 62, Compression.NONE, float("inf")),
        ("1 KB records, 10,000 keys, lz4 batches", 10_000, Compression.LZ4, float("inf")),
        ("1 KB records, 10,000 keys, throttled to 20 MB/s", 10_000, Compression.NONE, 20 * MB),
    ]
    results: dict[str, Any] = {}
    try:
        for name, keys, codec, rate in cases:
            results[name] = bench_clean(root, args.mb, keys, codec, rate)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"machine": _machine(), "results": results}, indent=2))
        return
    print(f"machine: {_machine()}\n")
    print("| case | log | after | wall time | cleaned | cleaner I/O | CPU time | per CPU second |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['log_mb']} MiB, {r['records']:,} records | {r['after_mb']} MiB "
            f"(-{r['removed_percent']}%) | {r['seconds']} s | **{r['mb_per_s']} MB/s** "
            f"({r['records_per_s']:,} records/s) | {r['io_mb_per_s']} MB/s | {r['cpu_seconds']} s "
            f"| {r['mb_per_cpu_s']} MB/s |"
        )


def _machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
