"""Tests of the broker: HTTP API against real broker processes, and its pure modules."""
