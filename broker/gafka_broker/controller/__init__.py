"""The cluster controller: metadata, placement and leader election as pure decisions over a
compare-and-set :class:`~gafka_broker.controller.store.MetadataStore`. The same code runs inside a
lone broker, inside ``gafka dev`` and inside the Kubernetes operator."""
