"""The protocol-neutral core: produce, fetch, offsets and producer ids as plain calls with typed results.

The HTTP API (``gafka_broker.api``) and the Kafka listener (``gafka_broker.kafka``) are faces over these
calls: they parse their own wire format, call here, and render the result or the :class:`ApiError` (whose
code is Kafka's error name). Nothing here knows about Starlette, JSON or Kafka's byte layouts.
"""
