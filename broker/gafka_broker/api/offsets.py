"""Offsets: ``GET /v1/topics/{topic}/partitions/{partition}/offsets?at=earliest|latest|<timestamp ms>``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gafka_broker.api.common import json_response
from gafka_broker.broker import Broker, RemoteLeader
from gafka_broker.core.offsets import EARLIEST, LATEST, list_offset
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
            found = list_offset(partition, EARLIEST)
        elif at in _LATEST:
            found = list_offset(partition, LATEST)
        else:
            try:
                timestamp = int(at)
            except ValueError:
                timestamp = -1
            if timestamp < 0:
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"at must be earliest, latest or a timestamp in milliseconds >= 0, got {at!r}",
                )
            found = list_offset(partition, timestamp)
        if found.timestamp is None:
            return json_response({"offset": found.offset})
        return json_response({"offset": found.offset, "timestamp": found.timestamp})
