"""The gafka broker: partition logs on disk behind an HTTP API (Starlette on Uvicorn)."""
