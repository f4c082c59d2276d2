"""Offsets: ``GET /v1/topics/{topic}/partitions/{partition}/offsets?at=earliest|latest|<timestamp ms>``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response
from gafka_broker.broker import Broker, RemoteLeader
from gafka_broker.errors import ApiError, ErrorCode
from gafka_broker.replication.forwarding import is_forwarded

__all__ = ["OffsetHandlers"]

_EARLIEST = ("earliest", "-2")
_LATEST = ("latest", "-1")


class OffsetHandlers:
    """Kafka's ListOffsets over HTTP, bound to one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def offsets(self, request: Request) -> Response:
        """``earliest`` = log start offset, ``latest`` = high watermark, a timestamp = first record at/after it.

        For a timestamp later than every record the answer is the high watermark without a timestamp:
        the offset the next record will get, which is where a consumer seeking by time should start.
        """
        broker = self.broker
        broker.check_ready()
        params = request.path_params
        routed = broker.route(params["topic"], params["partition"])
        if isinstance(routed, RemoteLeader):
            if is_forwarded(request):
                index, _state = broker.partition_state(params["topic"], params["partition"])
                raise broker.not_leader(params["topic"], index, routed)
            return await broker.forwarder.proxy(request, routed.broker_id, routed.url, timeout_s=10)
        partition = routed
        at = (request.query_params.get("at") or "latest").strip().lower()
        if at in _EARLIEST:
            return json_response({"offset": partition.log_start_offset})
        if at in _LATEST:
            return json_response({"offset": partition.high_watermark})
        try:
            timestamp = int(at)
        except ValueError:
            timestamp = -1
        if timestamp < 0:
            raise ApiError(
                ErrorCode.INVALID_REQUEST,
                f"at must be earliest, latest or a timestamp in milliseconds >= 0, got {at!r}",
            )
        found = partition.log.offset_for_timestamp(timestamp)
        if found is None or found[0] >= partition.high_watermark:
            return json_response({"offset": partition.high_watermark})
        offset, record_timestamp = found
        return json_response({"offset": max(offset, partition.log_start_offset), "timestamp": record_timestamp})
