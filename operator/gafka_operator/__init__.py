"""gafka-operator: runs gafka clusters on Kubernetes (GafkaCluster and GafkaTopic resources, group gafka.dev).

The package is imported by the broker image too (one wheel), so this module stays free of kopf and the
Kubernetes client: the manifest builders are pure functions of a GafkaCluster's spec.
"""

from __future__ import annotations

API_GROUP = "gafka.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
CLUSTER_KIND = "GafkaCluster"
TOPIC_KIND = "GafkaTopic"
CLUSTER_PLURAL = "gafkaclusters"
TOPIC_PLURAL = "gafkatopics"

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CLUSTER_KIND",
    "CLUSTER_PLURAL",
    "GROUP_VERSION",
    "TOPIC_KIND",
    "TOPIC_PLURAL",
]
