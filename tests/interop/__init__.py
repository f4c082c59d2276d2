"""Interop tests against Apache Kafka's own code (marker ``kafka_tools``)."""
