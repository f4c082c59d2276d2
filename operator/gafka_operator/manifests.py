"""What a GafkaCluster becomes: pure functions from its spec to the Kubernetes objects the operator applies.

Nothing here talks to the API server, so the shape of every object is unit-tested and the operator's
handlers only decide *when* to apply (see :func:`gafka_operator.drift.desired_vs_actual` for *whether*).

Per cluster ``NAME`` in namespace ``NS`` (see the ``*_name`` helpers):

- ServiceAccount ``NAME-broker`` (no API token: brokers never call the API server);
- ConfigMap ``NAME-config`` with ``broker.yaml`` (spec.config + controller_url and cluster_id);
- headless Service ``NAME-brokers`` (publishes not-ready pods, so replicas find each other while catching up);
- client Service ``NAME`` (the bootstrap address, only ready brokers);
- StatefulSet ``NAME`` (pod ``NAME-i`` is broker ``i``; claim ``data-NAME-i``; ``OnDelete`` updates, because the
  operator rolls one broker at a time and waits for every partition to be back in sync);
- PodDisruptionBudget ``NAME`` (maxUnavailable 1).

Every object carries the GafkaCluster as its controller owner, so deleting the cluster deletes them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gafka_operator import CLUSTER_KIND, GROUP_VERSION
from gafka_operator.drift import Drift, desired_vs_actual  # re-exported: builders and diff from one place
from gafka_operator.spec import ClusterSpec

__all__ = [
    "BROKER_CONTAINER",
    "CONFIG_HASH_ANNOTATION",
    "CONSOLE_KINDS",
    "DATA_DIR",
    "RACK_ANNOTATION",
    "RACK_SOURCE_ANNOTATION",
    "ClusterRef",
    "Drift",
    "Platform",
    "bootstrap_url",
    "broker_url",
    "build_all",
    "client_service",
    "client_service_name",
    "cluster_id",
    "common_labels",
    "config_hash",
    "config_map",
    "config_map_name",
    "console_deployment",
    "console_name",
    "console_service",
    "controller_url",
    "desired_vs_actual",
    "headless_service",
    "headless_service_name",
    "kafka_bootstrap",
    "label_selector",
    "owner_reference",
    "pod_disruption_budget",
    "pod_name",
    "pvc_name",
    "render_broker_config",
    "selector_labels",
    "service_account",
    "service_account_name",
    "stateful_set",
    "termination_grace_seconds",
]

BROKER_CONTAINER = "broker"
PORT_NAME = "http"
KAFKA_PORT_NAME = "kafka"
DATA_VOLUME = "data"
DATA_MOUNT = "/var/lib/gafka"
DATA_DIR = f"{DATA_MOUNT}/data"
"""A directory below the mount point: a fresh filesystem's lost+found must not sit in the broker's data dir."""
CONFIG_MOUNT = "/etc/gafka"
CONFIG_FILE = "broker.yaml"
PODINFO_MOUNT = "/etc/podinfo"
BROKER_UID = 10001
"""The non-root user of broker/Dockerfile; also the fsGroup, so the claim is writable."""

CONFIG_HASH_ANNOTATION = "gafka.dev/config-hash"
"""On the pod template: a changed broker.yaml changes the template, so the operator's roll picks the pods up."""
RACK_ANNOTATION = "gafka.dev/rack"
"""Set by the operator on each broker pod (its node's value of spec.rack.topologyKey); read via the downward API.
Empty when the node has no such label: the broker then has no rack."""
RACK_SOURCE_ANNOTATION = "gafka.dev/rack-source"
"""Set with the rack: ``node-label``, or ``missing-label`` when the node has none (the broker runs without a rack
and the cluster gets a Warning condition). The init container waits for this one, since a rack may be empty."""
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
"""Set on StatefulSet pods by Kubernetes (1.28+): the ordinal, which is the broker id."""

CONTROLLED_SHUTDOWN_SECONDS = 5
"""How long a stopping broker waits for its leaderships to move (gafka_broker.replication.metadata_sync)."""
FLUSH_MARGIN_SECONDS = 30
"""Time for the last flush, checkpoints and the clean-shutdown marker after in-flight requests end."""
RACK_WAIT_SECONDS = 300

_NAME_LABEL = "app.kubernetes.io/name"
_INSTANCE_LABEL = "app.kubernetes.io/instance"
_COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass(frozen=True, slots=True)
class ClusterRef:
    """Identity of a GafkaCluster object: what owner references and names are made of."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ClusterRef:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


@dataclass(frozen=True, slots=True)
class Platform:
    """What the operator's own deployment decides for every cluster (from its environment, set by the chart)."""

    controller_url: str
    """Base URL of the operator's controller Service; each cluster's controller lives below it."""
    default_image: str
    """Broker image for clusters without spec.image (the chart's brokerImage)."""
    cluster_domain: str | None = None
    """e.g. ``cluster.local``; None gives ``<svc>.<ns>.svc`` names, which pods resolve through their search path."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Platform:
        """``GAFKA_OPERATOR_CONTROLLER_URL``, ``GAFKA_OPERATOR_BROKER_IMAGE``, ``GAFKA_OPERATOR_CLUSTER_DOMAIN``."""
        missing = [k for k in ("GAFKA_OPERATOR_CONTROLLER_URL", "GAFKA_OPERATOR_BROKER_IMAGE") if not env.get(k)]
        if missing:
            raise ValueError(f"the operator needs {' and '.join(missing)} in its environment")
        return cls(
            controller_url=env["GAFKA_OPERATOR_CONTROLLER_URL"].rstrip("/"),
            default_image=env["GAFKA_OPERATOR_BROKER_IMAGE"],
            cluster_domain=env.get("GAFKA_OPERATOR_CLUSTER_DOMAIN") or None,
        )


# ---------------------------------------------------------------------------------------------------- names


def config_map_name(name: str) -> str:
    return f"{name}-config"


def headless_service_name(name: str) -> str:
    return f"{name}-brokers"


def client_service_name(name: str) -> str:
    return name


def service_account_name(name: str) -> str:
    return f"{name}-broker"


def console_name(name: str) -> str:
    """The console's Deployment and Service."""
    return f"{name}-console"


def pod_name(name: str, broker_id: int) -> str:
    """StatefulSet pod ``NAME-i`` runs broker ``i``."""
    return f"{name}-{broker_id}"


def pvc_name(name: str, broker_id: int) -> str:
    """The claim the StatefulSet makes from the ``data`` template for broker ``i``."""
    return f"{DATA_VOLUME}-{name}-{broker_id}"


def _service_host(service: str, namespace: str, platform: Platform) -> str:
    suffix = f".{platform.cluster_domain}" if platform.cluster_domain else ""
    return f"{service}.{namespace}.svc{suffix}"


def bootstrap_url(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> str:
    """The client Service's URL, as status.bootstrap shows it."""
    host = _service_host(client_service_name(ref.name), ref.namespace, platform)
    return f"http://{host}:{spec.listeners.port}"


def kafka_bootstrap(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> str:
    """The client Service's Kafka address, as status.kafkaBootstrap shows it."""
    host = _service_host(client_service_name(ref.name), ref.namespace, platform)
    return f"{host}:{spec.listeners.kafka_port}"


def broker_url(ref: ClusterRef, spec: ClusterSpec, platform: Platform, broker_id: int) -> str:
    """The URL broker ``broker_id`` advertises with addressType DNS (its name under the headless Service)."""
    host = _service_host(headless_service_name(ref.name), ref.namespace, platform)
    return f"http://{pod_name(ref.name, broker_id)}.{host}:{spec.listeners.port}"


def controller_url(ref: ClusterRef, platform: Platform) -> str:
    """Where this cluster's brokers find their controller: one path per cluster under the operator's Service."""
    return f"{platform.controller_url}/clusters/{ref.namespace}/{ref.name}"


def cluster_id(ref: ClusterRef, spec: ClusterSpec) -> str:
    """spec.clusterId, else the object's uid: a recreated cluster never mistakes old volumes for its own."""
    return spec.cluster_id or ref.uid.replace("-", "")


# --------------------------------------------------------------------------------------------------- labels


def selector_labels(name: str) -> dict[str, str]:
    """The labels that select a cluster's broker pods (immutable in the StatefulSet: never add to them)."""
    return {_NAME_LABEL: "gafka", _INSTANCE_LABEL: name, _COMPONENT_LABEL: "broker"}


def common_labels(name: str) -> dict[str, str]:
    return {
        **selector_labels(name),
        "app.kubernetes.io/part-of": "gafka",
        "app.kubernetes.io/managed-by": "gafka-operator",
        "gafka.dev/cluster": name,
    }


def label_selector(name: str) -> str:
    """status.labelSelector: the serialized selector the /scale subresource hands to an HPA."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(name).items()))


def owner_reference(ref: ClusterRef) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": CLUSTER_KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(name: str, ref: ClusterRef, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ref.namespace,
        "labels": common_labels(ref.name),
        "ownerReferences": [owner_reference(ref)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


# -------------------------------------------------------------------------------------------------- objects


def render_broker_config(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> str:
    """broker.yaml: the settings every broker of the cluster shares (per-pod ones come from the environment)."""
    values = {
        **spec.config,
        "controller_url": controller_url(ref, platform),
        "cluster_id": cluster_id(ref, spec),
    }
    header = f"# Written by gafka-operator for GafkaCluster {ref.namespace}/{ref.name}; edits are overwritten.\n"
    return header + yaml.safe_dump(dict(sorted(values.items())), default_flow_style=False, sort_keys=True)


def config_hash(rendered: str) -> str:
    return hashlib.sha256(rendered.encode()).hexdigest()[:16]


def service_account(ref: ClusterRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(service_account_name(ref.name), ref),
        "automountServiceAccountToken": False,
    }


def config_map(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(config_map_name(ref.name), ref),
        "data": {CONFIG_FILE: render_broker_config(ref, spec, platform)},
    }


def _service_ports(spec: ClusterSpec) -> list[dict[str, Any]]:
    return [
        {"name": PORT_NAME, "port": spec.listeners.port, "targetPort": PORT_NAME, "protocol": "TCP"},
        {"name": KAFKA_PORT_NAME, "port": spec.listeners.kafka_port, "targetPort": KAFKA_PORT_NAME, "protocol": "TCP"},
    ]


def headless_service(ref: ClusterRef, spec: ClusterSpec) -> dict[str, Any]:
    """Gives each broker its DNS name; not-ready pods are published so followers reach a recovering leader."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(headless_service_name(ref.name), ref),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(ref.name),
            "ports": _service_ports(spec),
        },
    }


def client_service(ref: ClusterRef, spec: ClusterSpec) -> dict[str, Any]:
    """The bootstrap address: any ready broker answers metadata requests."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(client_service_name(ref.name), ref, spec.listeners.service_annotations),
        "spec": {
            "type": spec.listeners.service_type,
            "selector": selector_labels(ref.name),
            "ports": _service_ports(spec),
        },
    }


def pod_disruption_budget(ref: ClusterRef) -> dict[str, Any]:
    """One broker down at a time for voluntary disruptions; an unready broker may still go (it serves nothing)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(ref.name, ref),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(ref.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def termination_grace_seconds(spec: ClusterSpec) -> int:
    """Controlled shutdown + in-flight requests (shutdown_timeout_ms) + the final flush, before SIGKILL."""
    override = spec.pod_template.get("terminationGracePeriodSeconds")
    if override is not None:
        return int(override)
    in_flight = math.ceil(int(spec.setting("shutdown_timeout_ms")) / 1000)
    return CONTROLLED_SHUTDOWN_SECONDS + in_flight + FLUSH_MARGIN_SECONDS


def _env(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> list[dict[str, Any]]:
    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    port = spec.listeners.port
    kafka_port = spec.listeners.kafka_port
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "GAFKA_BROKER_ID", "valueFrom": field(f"metadata.labels['{POD_INDEX_LABEL}']")},
        {"name": "GAFKA_CONFIG", "value": f"{CONFIG_MOUNT}/{CONFIG_FILE}"},
        # In the environment rather than broker.yaml: the image's own GAFKA_DATA_DIR would win over the file.
        {"name": "GAFKA_DATA_DIR", "value": DATA_DIR},
    ]
    if spec.listeners.address_type == "PodIP":
        env += [
            {"name": "GAFKA_LISTEN", "value": f"$(POD_IP):{port}"},
            {"name": "GAFKA_ADVERTISED_URL", "value": f"http://$(POD_IP):{port}"},
            {"name": "GAFKA_KAFKA_LISTEN", "value": f"$(POD_IP):{kafka_port}"},
            {"name": "GAFKA_KAFKA_ADVERTISED", "value": f"$(POD_IP):{kafka_port}"},
        ]
    else:
        host = _service_host(headless_service_name(ref.name), ref.namespace, platform)
        env += [
            {"name": "GAFKA_LISTEN", "value": f"0.0.0.0:{port}"},
            {"name": "GAFKA_ADVERTISED_URL", "value": f"http://$(POD_NAME).{host}:{port}"},
            {"name": "GAFKA_KAFKA_LISTEN", "value": f"0.0.0.0:{kafka_port}"},
            {"name": "GAFKA_KAFKA_ADVERTISED", "value": f"$(POD_NAME).{host}:{kafka_port}"},
        ]
    if spec.rack_topology_key:
        env.append({"name": "GAFKA_RACK", "valueFrom": field(f"metadata.annotations['{RACK_ANNOTATION}']")})
    return env


def _http_probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _broker_container(ref: ClusterRef, spec: ClusterSpec, platform: Platform, image: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": BROKER_CONTAINER,
        "image": image,
        "command": ["gafka", "broker"],
        "env": _env(ref, spec, platform),
        "ports": [
            {"name": PORT_NAME, "containerPort": spec.listeners.port, "protocol": "TCP"},
            {"name": KAFKA_PORT_NAME, "containerPort": spec.listeners.kafka_port, "protocol": "TCP"},
        ],
        # /healthz answers while the logs recover, /readyz only once they have: the startup probe only guards a
        # slow start of the process itself, and readiness keeps a recovering broker out of the client Service.
        "startupProbe": _http_probe("/healthz", period=5, timeout=3, failures=120),
        "livenessProbe": _http_probe("/healthz", period=10, timeout=5, failures=3),
        "readinessProbe": _http_probe("/readyz", period=5, timeout=3, failures=3),
        "resources": _plain(spec.resources),
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    return container


def rack_wait_script(topology_key: str, podinfo: str, wait_seconds: int) -> str:
    """The init container's shell: wait for the operator's ``rack-source``, then say which rack (if any)."""
    return (
        "i=0; "
        f'while [ ! -s {podinfo}/rack-source ]; do i=$((i+1)); if [ "$i" -gt {wait_seconds} ]; then '
        f'echo "gafka: pod has no {RACK_SOURCE_ANNOTATION} annotation after {wait_seconds}s: is gafka-operator '
        f'running (with rbac.rackAwareness)?" >&2; exit 1; fi; sleep 1; done; '
        f'if [ -s {podinfo}/rack ]; then echo "rack: $(cat {podinfo}/rack)"; '
        f'else echo "no rack: node $NODE_NAME has no label {topology_key}"; fi'
    )


def _rack_init_container(spec: ClusterSpec, image: str) -> dict[str, Any]:
    """Waits until the operator has looked up the node's topology label for the pod (brokers get no API access);
    a node without the label means no rack, not a pod that never starts."""
    script = rack_wait_script(spec.rack_topology_key or "", PODINFO_MOUNT, RACK_WAIT_SECONDS)
    container: dict[str, Any] = {
        "name": "wait-for-rack",
        "image": image,
        "command": ["sh", "-c", script],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "podinfo", "mountPath": PODINFO_MOUNT, "readOnly": True}],
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    return container


def _plain(value: Any) -> Any:
    """Deep copy of a spec fragment into plain dicts and lists (spec mappings may be read-only proxies)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _pod_spec(ref: ClusterRef, spec: ClusterSpec, platform: Platform, image: str) -> dict[str, Any]:
    overrides = spec.pod_template
    affinity: dict[str, Any] = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": selector_labels(ref.name)},
                    },
                }
            ]
        }
    }
    affinity.update(_plain(overrides.get("affinity") or {}))
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": BROKER_UID,
        "runAsGroup": BROKER_UID,
        "fsGroup": BROKER_UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    security.update(_plain(overrides.get("securityContext") or {}))
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(ref.name)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    pod: dict[str, Any] = {
        "serviceAccountName": service_account_name(ref.name),
        "automountServiceAccountToken": False,
        # No docker-link variables: a Service named e.g. "gafka" would inject GAFKA_PORT, GAFKA_SERVICE_HOST...
        # into the broker's environment, where GAFKA_* is the broker's own configuration namespace.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "securityContext": security,
        "affinity": affinity,
        "containers": [_broker_container(ref, spec, platform, image)],
        "volumes": volumes,
    }
    if spec.rack_topology_key:
        pod["initContainers"] = [_rack_init_container(spec, image)]
        volumes.append(
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "rack", "fieldRef": {"fieldPath": f"metadata.annotations['{RACK_ANNOTATION}']"}},
                        {
                            "path": "rack-source",
                            "fieldRef": {"fieldPath": f"metadata.annotations['{RACK_SOURCE_ANNOTATION}']"},
                        },
                    ]
                },
            }
        )
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": spec.rack_topology_key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(ref.name)},
            }
        ]
    for key in ("tolerations", "nodeSelector", "topologySpreadConstraints", "priorityClassName", "imagePullSecrets"):
        if overrides.get(key):
            pod[key] = _plain(overrides[key])
    return pod


def stateful_set(
    ref: ClusterRef, spec: ClusterSpec, platform: Platform, *, replicas: int | None = None
) -> dict[str, Any]:
    """The brokers. ``replicas`` overrides spec.replicas while the operator drains brokers before a scale-down."""
    image = spec.image or platform.default_image
    labels = {**_plain(spec.pod_template.get("labels") or {}), **common_labels(ref.name)}
    annotations = {
        **_plain(spec.pod_template.get("annotations") or {}),
        "kubectl.kubernetes.io/default-container": BROKER_CONTAINER,
        CONFIG_HASH_ANNOTATION: config_hash(render_broker_config(ref, spec, platform)),
    }
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class_name:
        claim_spec["storageClassName"] = spec.storage.storage_class_name
    retention = "Delete" if spec.storage.delete_claim else "Retain"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(ref.name, ref),
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "serviceName": headless_service_name(ref.name),
            "selector": {"matchLabels": selector_labels(ref.name)},
            # Brokers start together (a recovering cluster needs all of them) and are only replaced when the operator
            # deletes a pod: it rolls one broker at a time, waiting for every partition to be back in sync.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention, "whenScaled": retention},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": _pod_spec(ref, spec, platform, image),
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": DATA_VOLUME, "labels": common_labels(ref.name)}, "spec": claim_spec}
            ],
        },
    }


CONSOLE_PORT = 8080
CONSOLE_CONTAINER = "console"


def console_labels(name: str) -> dict[str, str]:
    """The console's own component label: broker selectors (Services, PodMonitor, PDB) never pick it."""
    return {**common_labels(name), _COMPONENT_LABEL: "console"}


def console_deployment(ref: ClusterRef, spec: ClusterSpec, platform: Platform) -> dict[str, Any]:
    """``gafka console`` in the broker image, pointed at the client Service: stateless, one replica."""
    labels = console_labels(ref.name)
    selector = {_NAME_LABEL: "gafka", _INSTANCE_LABEL: ref.name, _COMPONENT_LABEL: "console"}
    container: dict[str, Any] = {
        "name": CONSOLE_CONTAINER,
        "image": spec.image or platform.default_image,
        "command": ["gafka", "console", "--bootstrap", bootstrap_url(ref, spec, platform)],
        "args": ["--listen", f"0.0.0.0:{CONSOLE_PORT}"],
        "ports": [{"name": "console", "containerPort": CONSOLE_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "console"}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "console"}, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**_metadata(console_name(ref.name), ref), "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def console_service(ref: ClusterRef, spec: ClusterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**_metadata(console_name(ref.name), ref), "labels": console_labels(ref.name)},
        "spec": {
            "type": spec.console.service_type,
            "selector": {_NAME_LABEL: "gafka", _INSTANCE_LABEL: ref.name, _COMPONENT_LABEL: "console"},
            "ports": [{"name": "console", "port": CONSOLE_PORT, "targetPort": "console", "protocol": "TCP"}],
        },
    }


CONSOLE_KINDS = ("Deployment", "Service")
"""What spec.console.enabled adds (named :func:`console_name`); removed again when it is turned off."""


def build_all(
    ref: ClusterRef, spec: ClusterSpec, platform: Platform, *, replicas: int | None = None
) -> list[dict[str, Any]]:
    """Every object of the cluster, in the order to create them (the StatefulSet after what its pods mount)."""
    objects = [
        service_account(ref),
        config_map(ref, spec, platform),
        headless_service(ref, spec),
        client_service(ref, spec),
        stateful_set(ref, spec, platform, replicas=replicas),
        pod_disruption_budget(ref),
    ]
    if spec.console.enabled:
        objects += [console_deployment(ref, spec, platform), console_service(ref, spec)]
    return objects
