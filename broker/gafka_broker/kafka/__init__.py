"""The Kafka wire-protocol face: a listener that speaks Kafka's binary protocol over the broker's core."""
