"""gafka: a Kubernetes-native, Kafka-like message queue. This package is the SDK, the codec and the CLI."""

from gafka.admin import Admin
from gafka.consumer import AsyncConsumer, Consumer, ConsumerConfig
from gafka.errors import GafkaError
from gafka.producer import AsyncProducer, Producer, ProducerConfig
from gafka.protocol.record_batch import Compression, Record, TimestampType
from gafka.records import ConsumerRecord, OffsetAndMetadata, RecordMetadata, TopicPartition

__all__ = [
    "Admin",
    "AsyncConsumer",
    "AsyncProducer",
    "Compression",
    "Consumer",
    "ConsumerConfig",
    "ConsumerRecord",
    "GafkaError",
    "OffsetAndMetadata",
    "Producer",
    "ProducerConfig",
    "Record",
    "RecordMetadata",
    "TimestampType",
    "TopicPartition",
    "__version__",
]
__version__ = "0.1.0"
