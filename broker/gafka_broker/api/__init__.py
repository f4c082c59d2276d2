"""HTTP route handlers, one module per job: topics, produce, fetch, offsets and operations."""
