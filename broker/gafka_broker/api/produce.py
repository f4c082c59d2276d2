"""Produce: JSON records (``POST /v1/topics/{topic}/records``) and raw batches (``.../partitions/{p}/batches``).

Both validate the whole request before appending anything, so a rejected request writes nothing. JSON
records are grouped per partition and each group is appended in one call (atomic per partition); a
failure of one partition's append after validation is reported per record with a 207.

Only a partition's leader appends. JSON records for partitions led elsewhere are sent on to their leaders
(one hop, in parallel) with their partition fixed, so any broker takes any JSON produce; raw batches come
from the SDK, which knows the leaders, and get ``421 NOT_LEADER_OR_FOLLOWER`` instead. With ``acks=all``
the answer waits until the in-sync replicas have the records (the high watermark passed them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gafka.partitioner import partition_for_key
from gafka_broker.api.common import (
    json_response,
    parse_acks,
    query_int,
    read_body,
    require_binary,
    require_json,
)
from gafka_broker.broker import Broker, RemoteLeader
from gafka_broker.core.produce import ACKS_ALL
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.json_codec import (
    ProduceRecord,
    RecordFormatError,
    check_record_sizes,
    encode_batches,
    parse_produce_body,
)
from gafka_broker.log.partition_log import AppendResult
from gafka_broker.metrics import topic_metrics
from gafka_broker.partition import BrokerPartition
from gafka_broker.replication.forwarding import is_forwarded

__all__ = ["ProduceHandlers"]

log = logging.getLogger("gafka.broker.produce")


_FORMAT_FIELDS = ("key_format", "value_format")


class ProduceHandlers:
    """The two produce endpoints, bound to one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config

    # -- shared --------------------------------------------------------------------------------------
    def _timeout_s(self, request: Request) -> float:
        """How long ``acks=all`` waits: ``?timeout_ms=`` (Kafka's produce timeout), at most ``request_timeout_ms``."""
        limit = self.config.request_timeout_ms
        return query_int(request.query_params, "timeout_ms", limit, 1, limit) / 1000

    # -- JSON ----------------------------------------------------------------------------------------
    async def produce_records(self, request: Request) -> Response:
        """``POST /v1/topics/{topic}/records``."""
        broker = self.broker
        broker.check_ready()
        require_json(request)
        topic = request.path_params["topic"]
        acks = parse_acks(request)
        body = await read_body(request, self.config.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None
        try:
            records = parse_produce_body(document, max_records=self.config.max_records_per_request)
        except RecordFormatError as exc:
            raise self._format_error(exc) from None
        broker.check_writable(topic)
        info = await broker.ensure_topic(topic, auto_create=True)
        topic_config = broker.topic_config(topic)
        now = int(time.time() * 1000)
        try:
            check_record_sizes(records, topic_config.max_message_bytes, now)
        except RecordFormatError as exc:
            raise self._format_error(exc) from None
        groups = self._assign(topic, records, len(info.partitions))
        local: list[tuple[BrokerPartition, list[int]]] = []
        remote: dict[RemoteLeader | None, list[tuple[int, list[int]]]] = {}
        for index, indices in groups.items():
            routed = broker.route(topic, index)
            if isinstance(routed, BrokerPartition):
                local.append((routed, indices))
            else:
                remote.setdefault(None if is_forwarded(request) else routed, []).append((index, indices))
        self.broker.appender.check_acks(acks, [target for target, _ in local], topic_config.min_insync_replicas)
        payloads: list[tuple[BrokerPartition, list[int], bytes]] = []
        for target, indices in local:
            try:
                data = encode_batches([records[i] for i in indices], indices, topic_config.max_message_bytes, now)
            except RecordFormatError as exc:
                raise self._format_error(exc) from None
            payloads.append((target, indices, data))
        forwarded = [self._forward_records(request, topic, document, leader, parts) for leader, parts in remote.items()]
        return await self._append_json(topic, acks, records, payloads, now, forwarded, self._timeout_s(request))

    async def _forward_records(
        self,
        request: Request,
        topic: str,
        document: Any,
        leader: RemoteLeader | None,
        parts: list[tuple[int, list[int]]],
    ) -> list[tuple[int, dict[str, Any]]]:
        """Send the records of partitions led by ``leader`` there, each with its partition fixed; returns the
        per-record answers at their index in this request (None leader: already forwarded once, refuse)."""
        indices = [index for _partition, group in parts for index in group]
        if leader is None:
            error = ApiError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"broker {self.broker.meta.broker_id} does not lead these partitions of {topic!r} either; retry",
            )
            return [(index, {"partition": p, **error.body()}) for p, group in parts for index in group]
        sent = [{**document["records"][index], "partition": partition} for partition, group in parts for index in group]
        try:
            _status, answer = await self.broker.forwarder.post_json(
                leader.broker_id,
                leader.url,
                f"/v1/topics/{topic}/records",
                # the formats travel with the records: without them the leader would store base64 text as is
                {"records": sent, **{key: document[key] for key in _FORMAT_FIELDS if key in document}},
                params=dict(request.query_params),
                timeout_s=self.config.request_timeout_ms / 1000 + 10,
            )
        except ApiError as exc:
            answer = exc.body()
        offsets = answer.get("offsets") if isinstance(answer, dict) else None
        if isinstance(offsets, list) and len(offsets) == len(indices):
            return list(zip(indices, offsets, strict=True))
        if isinstance(answer, dict) and "error_code" in answer:
            body = {key: value for key, value in answer.items() if key != "offsets"}
        else:
            body = ApiError(ErrorCode.UNKNOWN_SERVER_ERROR, f"broker {leader.broker_id} gave no offsets").body()
        return [(index, {"partition": partition, **body}) for partition, group in parts for index in group]

    @staticmethod
    def _format_error(exc: RecordFormatError) -> ApiError:
        extra: dict[str, Any] = {} if exc.record_index is None else {"record_index": exc.record_index}
        return ApiError(ErrorCode(exc.code), str(exc), **extra)

    def _assign(self, topic: str, records: list[ProduceRecord], count: int) -> dict[int, list[int]]:
        """Partition of each record: its own, else murmur2 of its key, else round-robin."""
        groups: dict[int, list[int]] = {}
        for index, record in enumerate(records):
            partition = record.partition
            if partition is None:
                if record.key is not None:
                    partition = partition_for_key(record.key, count)
                else:
                    partition = self.broker.spread_partition(topic, count)
            elif partition >= count:
                raise ApiError(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    f"record {index}: topic {topic!r} has no partition {partition}; it has 0..{count - 1}",
                    record_index=index,
                )
            group = groups.get(partition)
            if group is None:
                groups[partition] = [index]
            else:
                group.append(index)
        return groups

    async def _append_json(
        self,
        topic: str,
        acks: int,
        records: list[ProduceRecord],
        payloads: list[tuple[BrokerPartition, list[int], bytes]],
        now: int,
        forwarded: list[Any] | None = None,
        timeout_s: float = 30.0,
    ) -> Response:
        offsets: list[dict[str, Any] | None] = [None] * len(records)
        failures: list[tuple[int, list[int], ApiError]] = []
        appended: list[tuple[BrokerPartition, list[int], AppendResult]] = []
        metrics = topic_metrics(topic)
        remote = asyncio.gather(*forwarded) if forwarded else None  # runs while we append here
        for target, indices, data in payloads:
            # trusted: encoded by us just now
            try:
                result = self.broker.appender.append_now(target, data, now_ms=now, trusted=True)
            except ApiError as refused:
                error = refused
                failures.append((target.partition, indices, error))
                metrics.produce_failures.inc(len(indices))
                log.warning(
                    "event=append_failed topic=%s partition=%d error_code=%s error=%r",
                    topic,
                    target.partition,
                    error.code.value,
                    error.message,
                )
                continue
            appended.append((target, indices, result))
            self._fill_offsets(offsets, records, indices, target.partition, result, now)
        try:
            await self.broker.appender.durable(acks, [target for target, _, _ in appended])
        except ApiError as unflushed:
            failures.extend((target.partition, indices, unflushed) for target, indices, _ in appended)
            appended = []
        if acks == ACKS_ALL and appended:
            outcomes = await asyncio.gather(
                *(self.broker.appender.committed(target, result, timeout_s) for target, _, result in appended),
                return_exceptions=True,
            )
            for (target, indices, _result), outcome in zip(appended, outcomes, strict=True):
                if isinstance(outcome, ApiError):
                    failures.append((target.partition, indices, outcome))
                elif isinstance(outcome, BaseException):
                    raise outcome
        failed = sum(len(indices) for _, indices, _ in failures)
        if remote is not None:
            for answers in await remote:
                for index, answer in answers:
                    offsets[index] = answer
                    failed += "error_code" in answer
        if not failed:
            return json_response({"offsets": offsets})
        for partition, indices, error in failures:
            body = {"partition": partition, **error.body()}
            for index in indices:
                offsets[index] = body
        if failed == len(records):
            first = next(o for o in offsets if o is not None and "error_code" in o)
            if failures:
                status = failures[0][2].status
            else:
                code = first["error_code"]
                status = ErrorCode(code).status if code in ErrorCode.__members__ else 502
            top = {key: value for key, value in first.items() if key != "partition"}
            return json_response({**top, "offsets": offsets}, status=status)
        return json_response({"offsets": offsets}, status=207)

    @staticmethod
    def _fill_offsets(
        offsets: list[dict[str, Any] | None],
        records: list[ProduceRecord],
        indices: list[int],
        partition: int,
        result: AppendResult,
        now: int,
    ) -> None:
        base = result.base_offset
        log_append_time = result.log_append_time
        for position, index in enumerate(indices):
            if log_append_time >= 0:
                timestamp = log_append_time
            else:
                record_timestamp = records[index].timestamp
                timestamp = now if record_timestamp is None else record_timestamp
            offsets[index] = {"partition": partition, "offset": base + position, "timestamp": timestamp}

    # -- binary --------------------------------------------------------------------------------------
    async def produce_batches(self, request: Request) -> Response:
        """``POST /v1/topics/{topic}/partitions/{partition}/batches``: append the SDK's batches as they are."""
        self.broker.check_ready()
        require_binary(request)
        params = request.path_params
        target = await self.broker.appender.leader_for_append(params["topic"], params["partition"], auto_create=True)
        acks = parse_acks(request)
        self.broker.appender.check_acks(acks, [target], self.broker.topic_config(target.topic).min_insync_replicas)
        body = await read_body(request, self.config.max_request_bytes)
        result = await self.broker.appender.append(
            target, body, acks=acks, timeout_s=self._timeout_s(request), max_records=self.config.max_records_per_request
        )
        return json_response(
            {
                "partition": target.partition,
                "base_offset": result.base_offset,
                "last_offset": result.last_offset,
                "record_count": result.record_count,
                "log_append_time": result.log_append_time,
            }
        )
