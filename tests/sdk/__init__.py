"""Tests of the Python SDK (producer, consumer, admin) against real broker processes."""
