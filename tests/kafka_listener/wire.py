"""A bare Kafka protocol client for the tests: kio encodes the requests and decodes the answers."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_response_schema
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32


def encode_request(request: Any, correlation_id: int = 1) -> bytes:
    buffer = io.BytesIO()
    header_cls = RequestHeaderV2 if request.__flexible__ else RequestHeaderV1
    header = header_cls(
        request_api_key=i16(request.__api_key__),
        request_api_version=i16(request.__version__),
        correlation_id=i32(correlation_id),
        client_id="wire-test",
    )
    entity_writer(header_cls)(buffer, header)
    entity_writer(type(request))(buffer, request)
    body = buffer.getvalue()
    return struct.pack(">i", len(body)) + body


class WireClient:
    """One connection; ``call`` sends a kio request and returns the decoded response."""

    def __init__(self, bootstrap: str, timeout: float = 30.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes | None:
        """The next response frame; None when the broker closed the connection."""
        head = self._read(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._read(size)

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def call(self, request: Any, correlation_id: int = 1) -> Any:
        self.send_raw(encode_request(request, correlation_id))
        frame = self.read_frame()
        assert frame is not None, "the broker closed the connection"
        response_cls = load_response_schema(request.__api_key__, request.__version__)
        flexible_header = response_cls.__flexible__ and request.__api_key__ != 18
        header_cls = ResponseHeaderV1 if flexible_header else ResponseHeaderV0
        header, offset = entity_reader(header_cls)(frame, 0)
        assert header.correlation_id == correlation_id
        response, _size = entity_reader(response_cls)(frame, offset)
        return response

    def close(self) -> None:
        self.sock.close()
