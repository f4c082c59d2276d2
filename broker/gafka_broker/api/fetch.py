"""Fetch: ``GET /v1/topics/{topic}/partitions/{partition}/records`` as JSON records or raw batches.

Long polling: when fewer than ``min_bytes`` are available the request parks on the partition and is woken
by the append that brings enough data (or by ``max_wait_ms``, shutdown or topic deletion). The number of
parked fetches is capped; one more is answered 429 instead of holding memory without bound.

Only the leader serves consumers, and only up to the high watermark: records the in-sync replicas do not
all have yet are never given out. A JSON fetch that reaches another broker is forwarded to the leader
(one hop); a raw fetch (the SDK's) gets ``421 NOT_LEADER_OR_FOLLOWER`` with the leader's URL instead.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gafka.protocol.record_batch import CorruptRecordError, InvalidRecordError, decode_batches
from gafka_broker.api.common import BATCH_MEDIA_TYPE, json_response, query_int
from gafka_broker.broker import Broker, RemoteLeader
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.json_codec import RecordFormatError, parse_format, record_to_json
from gafka_broker.metrics import topic_metrics
from gafka_broker.replication.forwarding import is_forwarded

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_WAIT_MS", "FetchHandlers"]

DEFAULT_MAX_BYTES = 1024 * 1024
"""Kafka's max.partition.fetch.bytes."""
DEFAULT_MAX_WAIT_MS = 500
"""Kafka's fetch.max.wait.ms."""
DEFAULT_MIN_BYTES = 1
"""Kafka's fetch.min.bytes."""


def wants_raw(accept: str | None) -> bool:
    """Raw batches when the client asks for them by media type; JSON otherwise."""
    if not accept:
        return False
    accept = accept.lower()
    return BATCH_MEDIA_TYPE in accept or "application/octet-stream" in accept


class FetchHandlers:
    """The fetch endpoint, bound to one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.config = broker.config

    async def _elsewhere(
        self, request: Request, topic: str, leader: RemoteLeader, raw: bool, max_wait_ms: int
    ) -> Response:
        """Forward a JSON fetch to the leader; a raw one (or one forwarded already) is told where to go."""
        if raw or is_forwarded(request):
            index, _state = self.broker.partition_state(topic, request.path_params["partition"])
            raise self.broker.not_leader(topic, index, leader)
        return await self.broker.forwarder.proxy(
            request, leader.broker_id, leader.url, timeout_s=max_wait_ms / 1000 + 30, long_poll=True
        )

    async def fetch(self, request: Request) -> Response:
        """Records from ``offset``; waits up to ``max_wait_ms`` for ``min_bytes``."""
        broker = self.broker
        broker.check_ready()
        params = request.path_params
        topic = params["topic"]
        query = request.query_params
        offset = query_int(query, "offset", None, -(1 << 63))
        max_bytes = query_int(query, "max_bytes", DEFAULT_MAX_BYTES, 1, self.config.max_fetch_bytes)
        min_bytes = min(query_int(query, "min_bytes", DEFAULT_MIN_BYTES, 0), max_bytes)
        max_wait_ms = query_int(query, "max_wait_ms", DEFAULT_MAX_WAIT_MS, 0, self.config.max_wait_ms)
        raw = wants_raw(request.headers.get("accept"))
        routed = broker.route(topic, params["partition"])
        if isinstance(routed, RemoteLeader):
            return await self._elsewhere(request, topic, routed, raw, max_wait_ms)
        partition = routed
        try:
            key_format = parse_format(query.get("key_format"), "key_format")
            value_format = parse_format(query.get("value_format"), "value_format")
        except RecordFormatError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        fetched = self.broker.reader.read(partition, offset, max_bytes)
        if self.broker.reader.can_park(min_bytes, len(fetched.data), max_wait_ms):
            await self.broker.reader.park([(partition, min_bytes - len(fetched.data))], max_wait_ms)
            routed = broker.route(topic, params["partition"])  # 404 if deleted meanwhile
            if isinstance(routed, RemoteLeader):  # leadership moved while we waited
                return await self._elsewhere(request, topic, routed, raw, 0)
            partition = routed
            fetched = self.broker.reader.read(partition, offset, max_bytes)
        data = fetched.data
        high_watermark = fetched.high_watermark
        shown = fetched.known_high_watermark  # None while a new leader does not know it (KIP-207)
        next_offset = fetched.next_offset
        metrics = topic_metrics(topic)
        if raw:
            metrics.messages_out.inc(fetched.record_count)
            return Response(
                data,
                media_type=BATCH_MEDIA_TYPE,
                headers={
                    "gafka-high-watermark": str(-1 if shown is None else shown),
                    "gafka-log-start-offset": str(fetched.log_start_offset),
                    "gafka-next-offset": str(next_offset),
                },
            )
        try:
            records = [
                record_to_json(record, key_format, value_format)
                for record in decode_batches(data)
                if offset <= record.offset < high_watermark
            ]
        except (CorruptRecordError, InvalidRecordError) as exc:
            raise ApiError(ErrorCode.CORRUPT_MESSAGE, f"stored batch could not be decoded: {exc}", status=500) from None
        metrics.messages_out.inc(len(records))
        return json_response(
            {
                "records": records,
                "high_watermark": shown,
                "log_start_offset": fetched.log_start_offset,
                "next_offset": next_offset,
            }
        )
