"""The CRDs (schemas, defaults, CEL rules, in step with the broker) and the pure manifest builders and diff.

tests/operator has no __init__.py on purpose: as a package it would be named `operator` and shadow the standard
library module; pytest puts this directory on sys.path instead, which is how `crdcheck` is imported.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from crdcheck import ROOT, apply_defaults, load_crd, validate, version_schema, walk

from gafka_broker.config import SETTINGS, load_config
from gafka_broker.topic_config import SUPPORTED_CONFIGS, TopicConfig, TopicConfigError
from gafka_operator import API_GROUP, API_VERSION, GROUP_VERSION
from gafka_operator.drift import desired_vs_actual, parse_quantity
from gafka_operator.manifests import (
    CONFIG_HASH_ANNOTATION,
    DATA_DIR,
    RACK_ANNOTATION,
    ClusterRef,
    Platform,
    bootstrap_url,
    broker_url,
    build_all,
    cluster_id,
    console_name,
    label_selector,
    pvc_name,
    selector_labels,
    stateful_set,
    termination_grace_seconds,
)
from gafka_operator.podenv import container_command, container_environment
from gafka_operator.spec import OPERATOR_OWNED_SETTINGS, ClusterSpec, SpecError

REF = ClusterRef(name="demo", namespace="data", uid="0f8e6c7a-1b2c-4d5e-8f90-123456789abc")
PLATFORM = Platform(
    controller_url="http://gafka-operator-controller.gafka-system.svc:9093", default_image="gafka/broker:1"
)
CLUSTER_SCHEMA = version_schema(load_crd("gafkaclusters.yaml"))
TOPIC_SCHEMA = version_schema(load_crd("gafkatopics.yaml"))


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return data


def _cluster(spec: dict[str, Any] | None = None, name: str = "demo") -> dict[str, Any]:
    body = {"apiVersion": GROUP_VERSION, "kind": "GafkaCluster", "metadata": {"name": name}, "spec": spec or {}}
    return apply_defaults(CLUSTER_SCHEMA, body)


def _topic(spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": GROUP_VERSION, "kind": "GafkaTopic", "metadata": {"name": "orders"}, "spec": spec}
    return apply_defaults(TOPIC_SCHEMA, body)


def _built(spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, dict[str, Any]]:
    objects = build_all(REF, ClusterSpec.from_mapping(_cluster(spec)["spec"]), PLATFORM, **kwargs)
    return {obj["kind"]: obj for obj in objects if not (obj["kind"] == "Service" and obj["spec"].get("clusterIP"))} | {
        "HeadlessService": next(o for o in objects if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None")
    }


# ------------------------------------------------------------------------------------------------------- CRDs


@pytest.mark.parametrize("name", ["gafkaclusters.yaml", "gafkatopics.yaml", "kopf-peering.yaml"])
def test_chart_crds_are_the_top_level_crds(name: str) -> None:
    chart = ROOT / "charts" / "gafka" / "crds"
    assert sorted(p.name for p in chart.iterdir()) == sorted(p.name for p in (ROOT / "crds").iterdir())
    assert (chart / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), f"copy crds/{name} to {chart}"


@pytest.mark.parametrize(
    ("name", "kind", "short", "scale"),
    [("gafkaclusters.yaml", "GafkaCluster", "gk", True), ("gafkatopics.yaml", "GafkaTopic", "gt", False)],
)
def test_crd_identity(name: str, kind: str, short: str, scale: bool) -> None:
    crd = load_crd(name)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert spec["group"] == API_GROUP and spec["scope"] == "Namespaced"
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{API_GROUP}"
    assert spec["names"]["kind"] == kind and spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["gafka"]
    [version] = spec["versions"]
    assert version["name"] == API_VERSION and version["served"] and version["storage"]
    assert "status" in version["subresources"]
    if scale:
        assert version["subresources"]["scale"] == {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.labelSelector",
        }
        assert version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["labelSelector"] == {
            "type": "string",
            "description": "Label selector of the broker pods, serialized (for the /scale subresource).",
        }
    else:
        assert "scale" not in version["subresources"]


def test_printer_columns() -> None:
    def columns(name: str) -> dict[str, str]:
        [version] = load_crd(name)["spec"]["versions"]
        return {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}

    ready = '.status.conditions[?(@.type=="Ready")].status'
    assert columns("gafkaclusters.yaml") == {
        "Desired": ".spec.replicas",
        "Ready": ".status.readyReplicas",
        "Bootstrap": ".status.bootstrap",
        "Kafka": ".status.kafkaBootstrap",
        "Status": ready,
        "Reason": '.status.conditions[?(@.type=="Ready")].reason',
        "Age": ".metadata.creationTimestamp",
    }
    assert columns("gafkatopics.yaml") == {
        "Cluster": ".spec.cluster",
        "Partitions": ".spec.partitions",
        "RF": ".spec.replicationFactor",
        "Ready": ready,
        "URP": ".status.underReplicatedPartitions",
        "Age": ".metadata.creationTimestamp",
    }


@pytest.mark.parametrize("schema", [CLUSTER_SCHEMA, TOPIC_SCHEMA], ids=["cluster", "topic"])
def test_schemas_are_structural(schema: dict[str, Any]) -> None:
    """Every node typed, no properties next to additionalProperties, defaults valid where they sit."""
    for path, node in walk(schema):
        if path == "metadata":
            assert node == {"type": "object"}, "metadata may only be typed in a CRD"
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
            continue
        assert "type" in node, f"{path or '<root>'} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            assert validate(node, apply_defaults(node, node["default"])) == [], path
        if node.get("x-kubernetes-list-type") == "map":
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in node["items"]["required"], f"{path}: list-map key {key} must be required"


@pytest.mark.parametrize("schema", [CLUSTER_SCHEMA, TOPIC_SCHEMA], ids=["cluster", "topic"])
def test_conditions_schema(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert set(conditions["items"]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["observedGeneration"]["type"] == "integer"
    assert status["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_cluster_defaults() -> None:
    assert _cluster()["spec"] == {
        "replicas": 3,
        "storage": {"size": "10Gi", "deleteClaim": False},
        "config": {},
        "listeners": {"port": 9092, "kafkaPort": 9093, "serviceType": "ClusterIP", "addressType": "DNS"},
    }
    autoscaling = _cluster({"autoscaling": {}})["spec"]["autoscaling"]
    assert autoscaling == {"enabled": False, "minReplicas": 3, "stabilizationWindowSeconds": 300}


def test_spec_defaults_match_the_crd() -> None:
    """ClusterSpec fills in what the API server would, so manifests never depend on server-side defaulting."""
    assert ClusterSpec.from_mapping({}) == ClusterSpec.from_mapping(_cluster()["spec"])
    assert ClusterSpec.from_mapping({"autoscaling": {}}) == ClusterSpec.from_mapping(
        _cluster({"autoscaling": {}})["spec"]
    )


def test_topic_defaults() -> None:
    assert _topic({"cluster": "demo"})["spec"] == {"cluster": "demo", "partitions": 1, "replicationFactor": 3}


@pytest.mark.parametrize(("name", "schema"), [("gafkacluster.yaml", CLUSTER_SCHEMA), ("gafkatopic.yaml", TOPIC_SCHEMA)])
def test_examples_are_valid(name: str, schema: dict[str, Any]) -> None:
    example = apply_defaults(schema, _example(name))
    assert validate(schema, example) == []
    assert validate(schema, example, old=example) == [], "an unchanged object must pass the transition rules"


def test_example_cluster_builds() -> None:
    spec = ClusterSpec.from_mapping(apply_defaults(CLUSTER_SCHEMA, _example("gafkacluster.yaml"))["spec"])
    assert spec.replicas == 3 and spec.rack_topology_key == "topology.kubernetes.io/zone"
    assert len(build_all(REF, spec, PLATFORM)) == 6


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"replicas": 0}, "less than the minimum"),
        ({"replicas": "3"}, "is not of type 'integer'"),
        ({"storage": {"size": "lots"}}, "does not match"),
        ({"config": {"listen": "0.0.0.0:1"}}, "'listen' was unexpected"),
        ({"config": {"no_such_setting": 1}}, "'no_such_setting' was unexpected"),
        ({"config": {"max_request_bytes": 10}}, "less than the minimum of 1024"),
        ({"config": {"max_request_bytes": "8MiB"}}, "is not of type 'integer'"),
        ({"config": {"log_level": "verbose"}}, "is not one of"),
        ({"config": {"auto_create_topics": "yes"}}, "is not of type 'boolean'"),
        ({"config": {"group_heartbeat_interval_ms": 45000}}, "must be below group_session_timeout_ms"),
        ({"config": {"group_session_timeout_ms": 4000}}, "must be below group_session_timeout_ms"),
        ({"listeners": {"serviceType": "ExternalName"}}, "is not one of"),
        ({"listeners": {"addressType": "Hostname"}}, "is not one of"),
        ({"rack": {}}, "'topologyKey' is a required property"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "does not match"),
        ({"podTemplate": {"tolerations": [{"operator": "Maybe"}]}}, "is not one of"),
        ({"autoscaling": {"enabled": True, "targetCPUUtilization": 70}}, "maxReplicas is required"),
        ({"autoscaling": {"enabled": True, "maxReplicas": 6}}, "set targetThroughputBytesPerBroker"),
        ({"autoscaling": {"minReplicas": 5, "maxReplicas": 4}}, "maxReplicas must be at least minReplicas"),
        ({"autoscaling": {"targetCPUUtilization": 101}}, "greater than the maximum of 100"),
    ],
)
def test_invalid_cluster_specs_are_refused(spec: dict[str, Any], error: str) -> None:
    errors = validate(CLUSTER_SCHEMA, _cluster(spec))
    assert any(error in message for message in errors), errors


@pytest.mark.parametrize(
    ("name", "error"),
    [("x" * 53, "at most 52 characters"), ("1abc", "must start with a letter"), ("a" * 52, None)],
)
def test_cluster_name_rules(name: str, error: str | None) -> None:
    errors = validate(CLUSTER_SCHEMA, _cluster(name=name))
    assert (errors == []) if error is None else any(error in e for e in errors), errors


def test_cluster_id_is_fixed_at_creation() -> None:
    old = _cluster()
    assert validate(CLUSTER_SCHEMA, _cluster({"clusterId": "abc"}), old=old) == [
        "spec: clusterId cannot be added or removed after creation"
    ]
    old = _cluster({"clusterId": "abc"})
    assert validate(CLUSTER_SCHEMA, _cluster({"clusterId": "abd"}), old=old) == [
        "spec.clusterId: clusterId cannot be changed"
    ]
    assert validate(CLUSTER_SCHEMA, _cluster({"clusterId": "abc", "replicas": 5}), old=old) == []


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({}, "'cluster' is a required property"),
        ({"cluster": "demo", "partitions": 0}, "less than the minimum of 1"),
        ({"cluster": "demo", "replicationFactor": 0}, "less than the minimum of 1"),
        ({"cluster": "Demo"}, "does not match"),
        ({"cluster": "demo", "topicName": "bad name"}, "does not match"),
        ({"cluster": "demo", "topicName": "__consumer_offsets"}, "are internal"),
        ({"cluster": "demo", "config": {"retention.hours": 1}}, "'retention.hours' was unexpected"),
        ({"cluster": "demo", "config": {"retention.ms": -2}}, "less than the minimum of -1"),
        ({"cluster": "demo", "config": {"cleanup.policy": "forever"}}, "is not one of"),
        ({"cluster": "demo", "config": {"compression.type": "zstd"}}, "is not one of"),
        ({"cluster": "demo", "replicationFactor": 2, "config": {"min.insync.replicas": 3}}, "must not exceed"),
    ],
)
def test_invalid_topic_specs_are_refused(spec: dict[str, Any], error: str) -> None:
    errors = validate(TOPIC_SCHEMA, _topic(spec))
    assert any(error in message for message in errors), errors


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"partitions": 7}, None),
        ({"partitions": 5}, "partitions may only grow"),
        ({"replicationFactor": 2}, "replicationFactor cannot be changed"),
        ({"cluster": "other"}, "cluster cannot be changed"),
        ({"topicName": "orders.v2"}, "topicName cannot be added or removed"),
        ({"config": {"retention.ms": 1000}}, None),
    ],
)
def test_topic_updates(change: dict[str, Any], error: str | None) -> None:
    old = apply_defaults(TOPIC_SCHEMA, _example("gafkatopic.yaml"))
    new = copy.deepcopy(old)
    new["spec"].update(change)
    errors = validate(TOPIC_SCHEMA, new, old=old)
    assert (errors == []) if error is None else any(error in e for e in errors), errors


def test_topic_name_rules() -> None:
    long_name = {"apiVersion": GROUP_VERSION, "kind": "GafkaTopic", "metadata": {"name": "t" * 250}}
    assert any(
        "at most 249" in e for e in validate(TOPIC_SCHEMA, {**long_name, "spec": _topic({"cluster": "a"})["spec"]})
    )
    with_name = {**long_name, "spec": _topic({"cluster": "a", "topicName": "t"})["spec"]}
    assert validate(TOPIC_SCHEMA, with_name) == []


def _config_schema() -> dict[str, Any]:
    props: dict[str, Any] = CLUSTER_SCHEMA["properties"]["spec"]["properties"]["config"]["properties"]
    return props


def test_cluster_config_lists_every_broker_setting_the_operator_does_not_set() -> None:
    settable = {s.name for s in SETTINGS} - OPERATOR_OWNED_SETTINGS
    assert set(_config_schema()) == settable, (
        "spec.config of crds/gafkaclusters.yaml (and its copy in charts/gafka/crds) must list exactly the broker "
        "settings of gafka_broker.config.SETTINGS the operator does not set itself"
    )
    assert {s.name for s in SETTINGS} >= OPERATOR_OWNED_SETTINGS


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.name not in OPERATOR_OWNED_SETTINGS], ids=str)
def test_cluster_config_types_and_ranges_match_the_broker(setting: Any) -> None:
    schema = _config_schema()[setting.name]
    kind = {bool: "boolean", int: "integer", str: "string"}[type(setting.default)]
    assert schema["type"] == kind
    if kind == "integer":
        low = schema["minimum"]
        assert setting.parse(low) == low
        with pytest.raises(ValueError):
            setting.parse(low - 1)
        if "maximum" in schema:
            assert setting.parse(schema["maximum"]) == schema["maximum"]
            with pytest.raises(ValueError):
                setting.parse(schema["maximum"] + 1)
        else:
            assert setting.parse(1 << 62) == 1 << 62
    if "enum" in schema:
        for value in schema["enum"]:
            setting.parse(value)
        with pytest.raises(ValueError):
            setting.parse("not-" + schema["enum"][0])


def _topic_config_schema() -> dict[str, Any]:
    props: dict[str, Any] = TOPIC_SCHEMA["properties"]["spec"]["properties"]["config"]["properties"]
    return props


def test_topic_config_lists_every_topic_setting() -> None:
    assert set(_topic_config_schema()) == set(SUPPORTED_CONFIGS)


@pytest.mark.parametrize("name", SUPPORTED_CONFIGS)
def test_topic_config_ranges_match_the_broker(name: str) -> None:
    schema = _topic_config_schema()[name]
    if schema["type"] == "integer":
        TopicConfig.from_configs({name: schema["minimum"]})
        with pytest.raises(TopicConfigError):
            TopicConfig.from_configs({name: schema["minimum"] - 1})
        if "maximum" in schema:
            TopicConfig.from_configs({name: schema["maximum"]})
            with pytest.raises(TopicConfigError):
                TopicConfig.from_configs({name: schema["maximum"] + 1})
    for value in schema.get("enum", []) + ([True, False] if schema["type"] == "boolean" else []):
        TopicConfig.from_configs({name: value})


# -------------------------------------------------------------------------------------------------- manifests


def test_every_object_is_owned_labelled_and_namespaced() -> None:
    objects = build_all(REF, ClusterSpec.from_mapping(_cluster()["spec"]), PLATFORM)
    assert [o["kind"] for o in objects] == [
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
    ]
    owner = {
        "apiVersion": "gafka.dev/v1alpha1",
        "kind": "GafkaCluster",
        "name": "demo",
        "uid": REF.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "data"
        assert meta["ownerReferences"] == [owner], obj["kind"]
        assert meta["labels"]["app.kubernetes.io/name"] == "gafka"
        assert meta["labels"]["app.kubernetes.io/instance"] == "demo"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "gafka-operator"
    assert len({(o["kind"], o["metadata"]["name"]) for o in objects}) == len(objects)
    json.dumps(objects)  # plain data only: no read-only mappings, no tuples
    yaml.safe_dump_all(objects)


def test_names_and_urls() -> None:
    spec = ClusterSpec.from_mapping({})
    built = _built()
    assert built["StatefulSet"]["metadata"]["name"] == "demo"
    assert built["Service"]["metadata"]["name"] == "demo"
    assert built["HeadlessService"]["metadata"]["name"] == "demo-brokers"
    assert built["ConfigMap"]["metadata"]["name"] == "demo-config"
    assert built["ServiceAccount"]["metadata"]["name"] == "demo-broker"
    assert pvc_name("demo", 2) == "data-demo-2"
    assert bootstrap_url(REF, spec, PLATFORM) == "http://demo.data.svc:9092"
    assert broker_url(REF, spec, PLATFORM, 1) == "http://demo-1.demo-brokers.data.svc:9092"
    fqdn = Platform(PLATFORM.controller_url, PLATFORM.default_image, cluster_domain="cluster.local")
    assert bootstrap_url(REF, spec, fqdn) == "http://demo.data.svc.cluster.local:9092"
    assert label_selector("demo") == (
        "app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=gafka"
    )
    assert cluster_id(REF, spec) == "0f8e6c7a1b2c4d5e8f90123456789abc"
    assert cluster_id(REF, ClusterSpec.from_mapping({"clusterId": "kept"})) == "kept"


def test_broker_config_map() -> None:
    data = yaml.safe_load(
        _built({"config": {"log_level": "debug", "max_request_bytes": 2_000_000}})["ConfigMap"]["data"]["broker.yaml"]
    )
    assert data == {
        "cluster_id": "0f8e6c7a1b2c4d5e8f90123456789abc",
        "controller_url": "http://gafka-operator-controller.gafka-system.svc:9093/clusters/data/demo",
        "log_level": "debug",
        "max_request_bytes": 2_000_000,
    }


def test_services_and_pdb() -> None:
    built = _built(
        {
            "listeners": {
                "port": 19092,
                "kafkaPort": 19093,
                "serviceType": "LoadBalancer",
                "serviceAnnotations": {"a": "b"},
            }
        }
    )
    port = [
        {"name": "http", "port": 19092, "targetPort": "http", "protocol": "TCP"},
        {"name": "kafka", "port": 19093, "targetPort": "kafka", "protocol": "TCP"},
    ]
    headless = built["HeadlessService"]["spec"]
    assert headless == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": selector_labels("demo"),
        "ports": port,
    }
    client = built["Service"]
    assert client["spec"] == {"type": "LoadBalancer", "selector": selector_labels("demo"), "ports": port}
    assert client["metadata"]["annotations"] == {"a": "b"}
    pdb = built["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["selector"] == {"matchLabels": selector_labels("demo")}
    assert built["ServiceAccount"]["automountServiceAccountToken"] is False


def test_brokers_open_and_advertise_the_kafka_port() -> None:
    built = _built({"listeners": {"kafkaPort": 29093}})
    [container] = built["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "kafka", "containerPort": 29093, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GAFKA_KAFKA_LISTEN"] == "0.0.0.0:29093"
    assert env["GAFKA_KAFKA_ADVERTISED"].startswith("$(POD_NAME).demo-brokers.")
    assert env["GAFKA_KAFKA_ADVERTISED"].endswith(":29093")
    with pytest.raises(SpecError, match="kafkaPort must differ"):
        _built({"listeners": {"port": 9092, "kafkaPort": 9092}})


def _pod(sts: dict[str, Any], ordinal: int, ip: str = "10.1.2.3", rack: str | None = None) -> dict[str, Any]:
    """The pod a StatefulSet controller and a scheduler would make, as a kubelet sees it."""
    template = copy.deepcopy(sts["spec"]["template"])
    meta = template["metadata"]
    meta.update(name=f"{sts['metadata']['name']}-{ordinal}", namespace=sts["metadata"]["namespace"])
    meta["labels"]["apps.kubernetes.io/pod-index"] = str(ordinal)
    if rack is not None:
        meta["annotations"][RACK_ANNOTATION] = rack
    return {"metadata": meta, "spec": {**template["spec"], "nodeName": "node-a"}, "status": {"podIP": ip}}


def test_statefulset_shape() -> None:
    sts = _built({"storage": {"size": "20Gi", "storageClassName": "fast"}, "replicas": 5})["StatefulSet"]["spec"]
    assert sts["replicas"] == 5
    assert sts["serviceName"] == "demo-brokers"
    assert sts["selector"] == {"matchLabels": selector_labels("demo")}
    assert sts["updateStrategy"] == {"type": "OnDelete"}
    assert sts["podManagementPolicy"] == "Parallel"
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    [claim] = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast",
    }
    pod = sts["template"]["spec"]
    [broker] = pod["containers"]
    assert broker["command"] == ["gafka", "broker"]
    assert broker["image"] == "gafka/broker:1"
    assert broker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert broker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = broker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert {"name": "data", "mountPath": "/var/lib/gafka"} in broker["volumeMounts"]
    assert DATA_DIR.startswith("/var/lib/gafka/")
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti == {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector_labels("demo")}}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # GAFKA_* service-link variables would reach the broker
    assert pod["serviceAccountName"] == "demo-broker"
    assert "initContainers" not in pod and "topologySpreadConstraints" not in pod


def test_delete_claim_deletes_with_the_cluster_and_on_scale_down() -> None:
    sts = _built({"storage": {"deleteClaim": True}})["StatefulSet"]["spec"]
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Delete"}
    assert "storageClassName" not in sts["volumeClaimTemplates"][0]["spec"]


def test_termination_grace_covers_the_controlled_shutdown() -> None:
    assert termination_grace_seconds(ClusterSpec.from_mapping({})) == 5 + 30 + 30
    spec = ClusterSpec.from_mapping({"config": {"shutdown_timeout_ms": 90_500}})
    assert termination_grace_seconds(spec) == 5 + 91 + 30
    assert (
        _built({"config": {"shutdown_timeout_ms": 90_500}})["StatefulSet"]["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        == 126
    )
    spec = ClusterSpec.from_mapping({"podTemplate": {"terminationGracePeriodSeconds": 300}})
    assert termination_grace_seconds(spec) == 300


def test_the_broker_accepts_what_the_pod_gets(tmp_path: Path) -> None:
    """Resolve the pod's environment as a kubelet would, then load the broker config exactly as `gafka broker`."""
    built = _built({"config": {"default_partitions": 6}})
    sts = built["StatefulSet"]
    config_file = tmp_path / "broker.yaml"
    config_file.write_text(built["ConfigMap"]["data"]["broker.yaml"])
    pod = _pod(sts, 2)
    [container] = pod["spec"]["containers"]
    env = container_environment(pod, container)
    assert env["GAFKA_CONFIG"] == "/etc/gafka/broker.yaml"
    env["GAFKA_CONFIG"] = str(config_file)
    config = load_config({}, env)
    assert config.broker_id == 2
    assert config.listen == "0.0.0.0:9092"
    assert config.advertised_url == "http://demo-2.demo-brokers.data.svc:9092"
    assert config.controller_url == "http://gafka-operator-controller.gafka-system.svc:9093/clusters/data/demo"
    assert config.cluster_id == "0f8e6c7a1b2c4d5e8f90123456789abc"
    assert str(config.data_dir) == DATA_DIR
    assert config.default_partitions == 6
    assert config.rack is None
    assert container_command(container, env) == ["gafka", "broker"]


def test_pod_ip_addressing(tmp_path: Path) -> None:
    """For clients outside cluster DNS (and a test node agent with pods on 127.0.0.x)."""
    built = _built({"listeners": {"addressType": "PodIP", "port": 9100}})
    config_file = tmp_path / "broker.yaml"
    config_file.write_text(built["ConfigMap"]["data"]["broker.yaml"])
    pod = _pod(built["StatefulSet"], 0, ip="127.0.0.7")
    env = container_environment(pod, pod["spec"]["containers"][0]) | {"GAFKA_CONFIG": str(config_file)}
    config = load_config({}, env)
    assert config.listen == "127.0.0.7:9100"
    assert config.advertised_url == "http://127.0.0.7:9100"


def test_rack_awareness(tmp_path: Path) -> None:
    built = _built({"rack": {"topologyKey": "topology.kubernetes.io/zone"}})
    pod_spec = built["StatefulSet"]["spec"]["template"]["spec"]
    [init] = pod_spec["initContainers"]
    assert init["command"][:2] == ["sh", "-c"] and "/etc/podinfo/rack" in init["command"][2]
    assert {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True} in init["volumeMounts"]
    podinfo = next(v for v in pod_spec["volumes"] if v["name"] == "podinfo")
    assert podinfo["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == f"metadata.annotations['{RACK_ANNOTATION}']"
    assert pod_spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels("demo")},
        }
    ]
    config_file = tmp_path / "broker.yaml"
    config_file.write_text(built["ConfigMap"]["data"]["broker.yaml"])
    pod = _pod(built["StatefulSet"], 1, rack="zone-b")
    env = container_environment(pod, pod["spec"]["containers"][0]) | {"GAFKA_CONFIG": str(config_file)}
    assert load_config({}, env).rack == "zone-b"


def test_pod_template_overrides_merge_under_the_operators_own_fields() -> None:
    overrides = {
        "labels": {"team": "data", "app.kubernetes.io/instance": "hijack"},
        "annotations": {"prometheus.io/scrape": "true", CONFIG_HASH_ANNOTATION: "stale"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gafka", "effect": "NoSchedule"}],
        "nodeSelector": {"disk": "ssd"},
        "priorityClassName": "high",
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"runAsUser": 20000},
    }
    template = _built({"podTemplate": overrides})["StatefulSet"]["spec"]["template"]
    meta, pod = template["metadata"], template["spec"]
    assert meta["labels"]["team"] == "data"
    assert meta["labels"]["app.kubernetes.io/instance"] == "demo", "selector labels cannot be overridden"
    assert meta["annotations"]["prometheus.io/scrape"] == "true"
    assert meta["annotations"][CONFIG_HASH_ANNOTATION] != "stale"
    assert set(pod["affinity"]) == {"podAntiAffinity", "nodeAffinity"}
    assert pod["tolerations"] == overrides["tolerations"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["priorityClassName"] == "high"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["securityContext"]["runAsUser"] == 20000 and pod["securityContext"]["fsGroup"] == 10001
    replaced = _built({"podTemplate": {"affinity": {"podAntiAffinity": {}}}})["StatefulSet"]["spec"]["template"]
    assert replaced["spec"]["affinity"] == {"podAntiAffinity": {}}


def test_config_hash_follows_the_config_only() -> None:
    def digest(spec: dict[str, Any]) -> str:
        annotations = _built(spec)["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations[CONFIG_HASH_ANNOTATION]
        return value

    base = digest({})
    assert digest({"replicas": 7}) == base
    assert digest({"image": "gafka/broker:2"}) == base  # changes the template itself anyway
    assert digest({"config": {"log_level": "debug"}}) != base
    assert digest({"config": {"log_level": "debug"}}) == digest({"config": {"log_level": "debug"}})


def test_image_resources_and_pull_policy_come_from_the_spec() -> None:
    spec = {"image": "registry/gafka:2", "imagePullPolicy": "Never", "resources": {"limits": {"memory": "1Gi"}}}
    [broker] = _built(spec)["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert broker["image"] == "registry/gafka:2"
    assert broker["imagePullPolicy"] == "Never"
    assert broker["resources"] == {"limits": {"memory": "1Gi"}}


def test_replicas_override_for_draining() -> None:
    spec = ClusterSpec.from_mapping({"replicas": 3})
    assert stateful_set(REF, spec, PLATFORM, replicas=5)["spec"]["replicas"] == 5


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"config": {"broker_id": 1}}, "set by the operator"),
        ({"config": {"advertised_url": "http://x"}}, "set by the operator"),
        ({"config": {"nope": 1}}, "not a broker setting"),
        ({"config": {"max_request_bytes": 1}}, "spec.config.max_request_bytes"),
        ({"config": {"group_heartbeat_interval_ms": 50_000}}, "must be below group_session_timeout_ms"),
        ({"replicas": 0}, "spec.replicas"),
        ({"listeners": {"serviceType": "Ingress"}}, "spec.listeners.serviceType"),
        ({"rack": {}}, "spec.rack.topologyKey"),
        ({"autoscaling": {"enabled": True}}, "maxReplicas is required"),
        ({"storage": []}, "spec.storage must be an object"),
    ],
)
def test_spec_errors_name_the_field(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecError, match=error.replace(".", r"\.")):
        ClusterSpec.from_mapping(spec)


def test_platform_from_env() -> None:
    env = {"GAFKA_OPERATOR_CONTROLLER_URL": "http://c:9093/", "GAFKA_OPERATOR_BROKER_IMAGE": "gafka/broker:1"}
    assert Platform.from_env(env) == Platform("http://c:9093", "gafka/broker:1")
    with pytest.raises(ValueError, match="GAFKA_OPERATOR_BROKER_IMAGE"):
        Platform.from_env({"GAFKA_OPERATOR_CONTROLLER_URL": "http://c"})


# ------------------------------------------------------------------------------------------------------- drift


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _as_served(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: defaults added, quantities normalized, other controllers' marks."""
    live = copy.deepcopy(obj)
    live["metadata"] |= {"uid": "u-1", "resourceVersion": "42", "generation": 3}
    live["metadata"]["annotations"] = {**live["metadata"].get("annotations", {}), "deployment.kubernetes.io/x": "1"}
    live["status"] = {"replicas": 3}
    if obj["kind"] == "StatefulSet":
        spec = live["spec"]
        spec["revisionHistoryLimit"] = 10
        pod = spec["template"]["spec"]
        pod |= {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}
        spec["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "2024-01-01T00:00:00Z"
        for container in pod["containers"]:
            container |= {"terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
            for item in container["env"]:
                if "valueFrom" in item:
                    item["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
            container["readinessProbe"] |= {"successThreshold": 1}
            container["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
            container["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}}
        claim = spec["volumeClaimTemplates"][0]
        claim |= {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}
        claim["spec"]["volumeMode"] = "Filesystem"
    if obj["kind"] == "Service":
        live["spec"] |= {"sessionAffinity": "None", "ipFamilies": ["IPv4"]}
        for port in live["spec"]["ports"]:
            port["nodePort"] = 30001
    return live


def test_a_served_object_is_in_sync() -> None:
    spec = {"resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}}}
    for obj in build_all(REF, ClusterSpec.from_mapping(_cluster(spec)["spec"]), PLATFORM):
        drift = desired_vs_actual(obj, _as_served(obj))
        assert drift.in_sync, (obj["kind"], drift)
        assert drift.patch == {}


def test_a_missing_object_is_reported() -> None:
    drift = desired_vs_actual(_built()["ConfigMap"], None)
    assert drift.missing and not drift.in_sync


def test_drift_is_found_and_patched_back() -> None:
    desired = _built()["StatefulSet"]
    live = _as_served(desired)
    live["spec"]["replicas"] = 1
    live["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "someone"
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    live["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "other"}]
    drift = desired_vs_actual(desired, live)
    assert set(drift.changed) == {
        ("spec", "replicas"),
        ("metadata", "labels", "app.kubernetes.io/managed-by"),
        ("spec", "template", "spec", "containers"),
        ("metadata", "ownerReferences"),
    }
    assert drift.immutable == ()
    fixed = _merge_patch(live, drift.patch)
    assert desired_vs_actual(desired, fixed).in_sync, "applying the patch once is enough"
    assert {ref["uid"] for ref in fixed["metadata"]["ownerReferences"]} == {"other", REF.uid}
    assert fixed["metadata"]["annotations"]["deployment.kubernetes.io/x"] == "1", "foreign annotations are kept"
    assert fixed["spec"]["template"]["spec"]["containers"][0]["image"] == "gafka/broker:1"


def test_config_change_drifts_the_config_map_and_the_template() -> None:
    old = build_all(REF, ClusterSpec.from_mapping({}), PLATFORM)
    new = build_all(REF, ClusterSpec.from_mapping({"config": {"log_level": "debug"}}), PLATFORM)
    changed = {n["kind"]: desired_vs_actual(n, _as_served(o)).changed for n, o in zip(new, old, strict=True)}
    assert changed["ConfigMap"] == (("data", "broker.yaml"),)
    assert changed["StatefulSet"] == (("spec", "template", "metadata", "annotations", CONFIG_HASH_ANNOTATION),)
    assert changed["Service"] == () and changed["PodDisruptionBudget"] == ()


def test_immutable_fields_are_reported_apart() -> None:
    live = _as_served(_built()["StatefulSet"])
    desired = _built({"storage": {"size": "50Gi"}, "replicas": 4})["StatefulSet"]
    drift = desired_vs_actual(desired, live)
    assert drift.immutable == (("spec", "volumeClaimTemplates"),)
    assert drift.changed == (("spec", "replicas"),)
    assert drift.patch == {"spec": {"replicas": 4}}


def test_service_type_change_is_patchable() -> None:
    live = _as_served(_built()["Service"])
    desired = _built({"listeners": {"serviceType": "NodePort"}})["Service"]
    drift = desired_vs_actual(desired, live)
    assert drift.changed == (("spec", "type"),) and drift.patch == {"spec": {"type": "NodePort"}}


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", "1"), ("1000m", "1"), ("1Gi", str(1 << 30)), ("1024Mi", str(1 << 30)), ("1e3", "1000"), ("1.5k", "1500")],
)
def test_quantities(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value)


def test_bad_quantity() -> None:
    with pytest.raises(ValueError):
        parse_quantity("lots")


# ------------------------------------------------------------------------------------------------ the console


def test_console_is_off_by_default_and_adds_a_deployment_and_service_when_enabled() -> None:
    assert ClusterSpec.from_mapping(_cluster()["spec"]).console.enabled is False
    assert [o["kind"] for o in build_all(REF, ClusterSpec.from_mapping(_cluster()["spec"]), PLATFORM)].count(
        "Deployment"
    ) == 0
    spec = ClusterSpec.from_mapping(_cluster({"console": {"enabled": True, "serviceType": "NodePort"}})["spec"])
    objects = {(o["kind"], o["metadata"]["name"]): o for o in build_all(REF, spec, PLATFORM)}
    deployment = objects[("Deployment", console_name(REF.name))]
    service = objects[("Service", console_name(REF.name))]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gafka", "console", "--bootstrap", bootstrap_url(REF, spec, PLATFORM)]
    assert container["args"] == ["--listen", "0.0.0.0:8080"]
    assert container["image"] == PLATFORM.default_image
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items() and service["spec"]["selector"] == selector
    # the brokers' selectors (client Service, PodMonitor, PDB, StatefulSet) never pick the console's pod
    assert not selector_labels(REF.name).items() <= pod_labels.items()
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["targetPort"] == "console"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == REF.uid


def test_console_spec_is_validated() -> None:
    errors = validate(CLUSTER_SCHEMA, _cluster({"console": {"enabled": True, "serviceType": "ExternalName"}}))
    assert any("is not one of" in error for error in errors), errors
    assert _cluster({"console": {}})["spec"]["console"] == {"enabled": False, "serviceType": "ClusterIP"}
    with pytest.raises(SpecError, match=r"spec.console.serviceType"):
        ClusterSpec.from_mapping({"console": {"serviceType": "Nowhere"}})
