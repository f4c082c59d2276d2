"""The ``gafka`` command line."""
