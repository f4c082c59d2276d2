"""A GafkaCluster's spec as typed values, with the CRD's defaults applied.

The API server applies the defaults of crds/gafkaclusters.yaml before the operator sees an object, but the
manifest builders must not depend on that (unit tests, objects created before a CRD upgrade added a default),
so the same defaults live here too; tests/operator/test_manifests.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gafka_broker.config import SETTINGS

__all__ = [
    "OPERATOR_OWNED_SETTINGS",
    "AutoscalingSpec",
    "ClusterSpec",
    "ListenersSpec",
    "SpecError",
    "StorageSpec",
    "broker_config_values",
]

OPERATOR_OWNED_SETTINGS = frozenset(
    {
        "data_dir",
        "listen",
        "broker_id",
        "cluster_id",
        "advertised_url",
        "controller_url",
        "rack",
        "kafka_listen",
        "kafka_advertised",
    }
)
"""Broker settings the operator sets per cluster or per pod; spec.config may not hold them."""

_SETTINGS = {setting.name: setting for setting in SETTINGS}
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
ADDRESS_TYPES = ("DNS", "PodIP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class SpecError(ValueError):
    """The spec cannot be turned into manifests; the message names the field (for a condition or an Event)."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SpecError(f"{where} must be {bound}, got {value}")
    return value


def _str(value: Any, where: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where} must be a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise SpecError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _optional_str(value: Any, where: str, choices: tuple[str, ...] | None = None) -> str | None:
    return None if value is None else _str(value, where, choices)


def _str_map(value: Any, where: str) -> Mapping[str, str]:
    raw = _mapping(value, where)
    for key, item in raw.items():
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key} must be a string, got {item!r}")
    return MappingProxyType(dict(raw))


def broker_config_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """spec.config checked by the broker's own parsers, so a bad value is refused before any pod restarts."""
    values: dict[str, Any] = {}
    for key, raw in config.items():
        name = str(key).replace("-", "_")
        if name in OPERATOR_OWNED_SETTINGS:
            raise SpecError(f"spec.config.{key} is set by the operator and cannot be configured")
        setting = _SETTINGS.get(name)
        if setting is None:
            raise SpecError(f"spec.config.{key} is not a broker setting (see docs/configuration.md)")
        try:
            values[name] = setting.parse(raw)
        except ValueError as exc:
            raise SpecError(f"spec.config.{key}: {exc}") from None
    heartbeat = values.get("group_heartbeat_interval_ms", _SETTINGS["group_heartbeat_interval_ms"].default)
    session = values.get("group_session_timeout_ms", _SETTINGS["group_session_timeout_ms"].default)
    if heartbeat >= session:
        raise SpecError(
            f"spec.config.group_heartbeat_interval_ms ({heartbeat}) must be below group_session_timeout_ms ({session})"
        )
    return dict(sorted(values.items()))


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """spec.storage: the claim each broker's log lives on."""

    size: str = "10Gi"
    storage_class_name: str | None = None
    delete_claim: bool = False


@dataclass(frozen=True, slots=True)
class ListenersSpec:
    """spec.listeners: the port, the client Service's type and what address brokers advertise."""

    port: int = 9092
    kafka_port: int = 9093
    """Port of the brokers' Kafka protocol listener (docs/kafka.md)."""
    service_type: str = "ClusterIP"
    address_type: str = "DNS"
    service_annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def _kafka_port(listeners: Mapping[str, Any], defaults: ListenersSpec) -> int:
    port = _int(listeners.get("port", defaults.port), "spec.listeners.port", 1, 65535)
    kafka_port = _int(listeners.get("kafkaPort", defaults.kafka_port), "spec.listeners.kafkaPort", 1, 65535)
    if kafka_port == port:
        raise SpecError(f"spec.listeners.kafkaPort must differ from spec.listeners.port ({port})")
    return kafka_port


@dataclass(frozen=True, slots=True)
class AutoscalingSpec:
    """spec.autoscaling: the operator's own autoscaler (off unless enabled)."""

    enabled: bool = False
    min_replicas: int = 3
    max_replicas: int | None = None
    target_throughput_bytes_per_broker: int | None = None
    target_cpu_utilization: int | None = None
    stabilization_window_seconds: int = 300


@dataclass(frozen=True, slots=True)
class ConsoleSpec:
    """spec.console: the web console beside the brokers (off unless enabled)."""

    enabled: bool = False
    service_type: str = "ClusterIP"


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A GafkaCluster's spec with every default filled in."""

    replicas: int = 3
    image: str | None = None
    image_pull_policy: str | None = None
    cluster_id: str | None = None
    storage: StorageSpec = field(default_factory=StorageSpec)
    resources: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rack_topology_key: str | None = None
    listeners: ListenersSpec = field(default_factory=ListenersSpec)
    pod_template: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    console: ConsoleSpec = field(default_factory=ConsoleSpec)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any] | None) -> ClusterSpec:
        """Parse ``body['spec']``; raises :class:`SpecError` naming the bad field."""
        raw = _mapping(spec, "spec")
        storage = _mapping(raw.get("storage"), "spec.storage")
        listeners = _mapping(raw.get("listeners"), "spec.listeners")
        autoscaling = _mapping(raw.get("autoscaling"), "spec.autoscaling")
        rack = _mapping(raw.get("rack"), "spec.rack")
        console = _mapping(raw.get("console"), "spec.console")
        defaults, storage_defaults, listener_defaults = cls(), StorageSpec(), ListenersSpec()
        scaling_defaults = AutoscalingSpec()
        scaling = AutoscalingSpec(
            enabled=bool(autoscaling.get("enabled", scaling_defaults.enabled)),
            min_replicas=_int(
                autoscaling.get("minReplicas", scaling_defaults.min_replicas), "spec.autoscaling.minReplicas", 1
            ),
            max_replicas=(
                None
                if autoscaling.get("maxReplicas") is None
                else _int(autoscaling["maxReplicas"], "spec.autoscaling.maxReplicas", 1)
            ),
            target_throughput_bytes_per_broker=autoscaling.get("targetThroughputBytesPerBroker"),
            target_cpu_utilization=autoscaling.get("targetCPUUtilization"),
            stabilization_window_seconds=_int(
                autoscaling.get("stabilizationWindowSeconds", scaling_defaults.stabilization_window_seconds),
                "spec.autoscaling.stabilizationWindowSeconds",
                0,
            ),
        )
        if scaling.enabled and scaling.max_replicas is None:
            raise SpecError("spec.autoscaling.maxReplicas is required when autoscaling is enabled")
        if scaling.max_replicas is not None and scaling.max_replicas < scaling.min_replicas:
            raise SpecError("spec.autoscaling.maxReplicas must be at least minReplicas")
        return cls(
            replicas=_int(raw.get("replicas", defaults.replicas), "spec.replicas", 1),
            image=_optional_str(raw.get("image"), "spec.image"),
            image_pull_policy=_optional_str(raw.get("imagePullPolicy"), "spec.imagePullPolicy", PULL_POLICIES),
            cluster_id=_optional_str(raw.get("clusterId"), "spec.clusterId"),
            storage=StorageSpec(
                size=_str(storage.get("size", storage_defaults.size), "spec.storage.size"),
                storage_class_name=_optional_str(storage.get("storageClassName"), "spec.storage.storageClassName"),
                delete_claim=bool(storage.get("deleteClaim", storage_defaults.delete_claim)),
            ),
            resources=MappingProxyType(dict(_mapping(raw.get("resources"), "spec.resources"))),
            config=MappingProxyType(broker_config_values(_mapping(raw.get("config"), "spec.config"))),
            rack_topology_key=(
                _str(rack.get("topologyKey"), "spec.rack.topologyKey") if raw.get("rack") is not None else None
            ),
            listeners=ListenersSpec(
                port=_int(listeners.get("port", listener_defaults.port), "spec.listeners.port", 1, 65535),
                kafka_port=_kafka_port(listeners, listener_defaults),
                service_type=_str(
                    listeners.get("serviceType", listener_defaults.service_type),
                    "spec.listeners.serviceType",
                    SERVICE_TYPES,
                ),
                address_type=_str(
                    listeners.get("addressType", listener_defaults.address_type),
                    "spec.listeners.addressType",
                    ADDRESS_TYPES,
                ),
                service_annotations=_str_map(listeners.get("serviceAnnotations"), "spec.listeners.serviceAnnotations"),
            ),
            pod_template=MappingProxyType(dict(_mapping(raw.get("podTemplate"), "spec.podTemplate"))),
            autoscaling=scaling,
            console=ConsoleSpec(
                enabled=bool(console.get("enabled", False)),
                service_type=_str(console.get("serviceType", "ClusterIP"), "spec.console.serviceType", SERVICE_TYPES),
            ),
        )

    def setting(self, name: str) -> Any:
        """Effective value of a broker setting: spec.config, else the broker's default."""
        return self.config.get(name, _SETTINGS[name].default)
