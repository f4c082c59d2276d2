"""What every Kafka API face needs: the broker, where each broker's Kafka listener is, and error helpers."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, NamedTuple

from gafka_broker.config import parse_listen
from gafka_broker.errors import ApiError, ErrorCode

if TYPE_CHECKING:
    from gafka_broker.broker import Broker

__all__ = ["KafkaAddress", "KafkaContext"]


class KafkaAddress(NamedTuple):
    host: str
    port: int


class KafkaContext:
    """The broker behind the listener, and this listener's advertised address."""

    def __init__(self, broker: Broker, advertised: str) -> None:
        self.broker = broker
        host, port = parse_listen(advertised)
        self.advertised = KafkaAddress(host, port)
        self.client_id = ""
        self.client_host = ""

    def for_client(self, client_id: str | None, client_host: str) -> KafkaContext:
        """The same context, naming the client of one request (groups record who their members are)."""
        context = copy.copy(self)
        context.client_id = client_id or ""
        context.client_host = client_host
        return context

    @property
    def broker_id(self) -> int:
        return self.broker.meta.broker_id

    def addresses(self) -> dict[int, KafkaAddress]:
        """The Kafka listener of every live broker the cluster metadata knows (this one's is ours)."""
        found = {self.broker_id: self.advertised}
        metadata = self.broker.replica_manager.metadata
        if metadata is not None:
            for info in metadata.brokers.values():
                if info.fenced or info.broker_id == self.broker_id or not info.kafka_address:
                    continue
                host, port = parse_listen(info.kafka_address)
                found[info.broker_id] = KafkaAddress(host, port)
        return found

    def not_leader(self, topic: str, partition: int) -> ApiError:
        return ApiError(
            ErrorCode.NOT_LEADER_OR_FOLLOWER, f"broker {self.broker_id} does not lead partition {partition} of {topic}"
        )
