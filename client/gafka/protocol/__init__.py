"""Kafka wire formats that both the SDK and the broker speak."""
