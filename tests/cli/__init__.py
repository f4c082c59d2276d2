"""Tests of the gafka command line against real broker processes."""
