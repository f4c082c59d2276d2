"""Session fixtures for the Kafka interop tests: Kafka's jars and the compiled Java helpers."""

from .kafka_tools import kafka_libs, kafka_tools

__all__ = ["kafka_libs", "kafka_tools"]
