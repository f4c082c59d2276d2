"""Checkpoint files in Kafka's text format, written atomically (temp file, fsync, rename, fsync dir).

Format (``OffsetCheckpointFile``)::

    0                     <- version
    2                     <- entry count
    orders 0 1234         <- topic partition offset
    orders 1 987
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

VERSION = 0


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` so a crash leaves either the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_offsets(path: Path, offsets: Mapping[tuple[str, int], int]) -> None:
    lines = [str(VERSION), str(len(offsets))]
    lines += [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())]
    write_atomically(path, ("\n".join(lines) + "\n").encode())


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    """Read a checkpoint; a missing or malformed file reads as empty (recovery then scans everything)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    try:
        if int(lines[0]) != VERSION:
            raise ValueError(f"unknown version {lines[0]}")
        count = int(lines[1])
        offsets: dict[tuple[str, int], int] = {}
        for line in lines[2 : 2 + count]:
            topic, partition, offset = line.split(" ")
            offsets[(topic, int(partition))] = int(offset)
        if len(offsets) != count:
            raise ValueError(f"expected {count} entries, found {len(offsets)}")
    except (IndexError, ValueError) as exc:
        logger.warning("event=checkpoint_unreadable path=%s reason=%s", path, exc)
        return {}
    return offsets
