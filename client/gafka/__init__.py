"""gafka: a Kubernetes-native, Kafka-like message queue. This package is the SDK, the codec and the CLI."""

from gafka.protocol.record_batch import Compression, Record, TimestampType

__all__ = ["Compression", "Record", "TimestampType", "__version__"]
__version__ = "0.1.0"
