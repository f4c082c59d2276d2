"""Group commit: every acknowledged append is covered by an fsync, and fsyncs are shared."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gafka_broker.log import metrics
from gafka_broker.log.group_commit import GroupCommitter
from gafka_broker.log.partition_log import PartitionLog
from gafka_broker.topic_config import TopicConfig

from .conftest import batch


def _fsync_count() -> float:
    return sum(sample.value for sample in metrics.FSYNC_SECONDS.collect()[0].samples if sample.name.endswith("_count"))


def test_concurrent_appenders_share_fsyncs_and_each_ack_is_durable(tmp_path: Path) -> None:
    config = TopicConfig.from_configs({"flush.messages": 1})
    log = PartitionLog.open(tmp_path / "durable-0", config)
    committer = GroupCommitter()
    appenders, appends_each = 32, 10
    fsyncs_before = _fsync_count()

    async def appender(worker: int) -> None:
        for index in range(appends_each):
            result = log.append_as_leader(batch([b"%d-%d" % (worker, index)]))
            await committer.after_append(log)
            assert log.recovery_point > result.last_offset, "acknowledged before the fsync covered it"

    async def run() -> None:
        await asyncio.gather(*(appender(worker) for worker in range(appenders)))
        await committer.close()

    asyncio.run(run())
    fsyncs = _fsync_count() - fsyncs_before
    assert log.log_end_offset == appenders * appends_each
    assert 1 <= fsyncs < appenders * appends_each / 2, f"{fsyncs} fsyncs for {appenders * appends_each} appends"
    log.close()


def test_without_flush_messages_nothing_waits(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "lazy-0", TopicConfig())
    committer = GroupCommitter()

    async def run() -> None:
        log.append_as_leader(batch([b"x"]))
        await committer.after_append(log)
        await committer.close()

    asyncio.run(run())
    assert log.recovery_point == 0 and log.unflushed_messages == 1
    log.close()
    assert log.recovery_point == 1


def test_flush_messages_n_flushes_every_n(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "every3-0", TopicConfig.from_configs({"flush.messages": 3}))
    committer = GroupCommitter()
    points: list[int] = []

    async def run() -> None:
        for index in range(7):
            log.append_as_leader(batch([b"%d" % index]))
            await committer.after_append(log)
            points.append(log.recovery_point)
        await committer.close()

    asyncio.run(run())
    assert points == [0, 0, 3, 3, 3, 6, 6]
    log.close()
