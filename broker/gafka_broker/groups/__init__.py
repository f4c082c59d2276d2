"""Consumer groups (KIP-848 style): pure assignment and reconciliation logic, and its durable store."""
