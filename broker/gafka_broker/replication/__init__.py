"""Replication: leader epochs, idempotent-producer state, the follower fetch protocol, the leader's view of
its followers, cluster membership and request forwarding."""
