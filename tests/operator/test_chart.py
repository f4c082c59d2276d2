"""charts/gafka: `helm lint --strict` and `helm template` clean for the main value sets, and what they render.

helm comes from scripts/k8s-tools (cached in ${GAFKA_CACHE:-~/.cache/gafka}/helm/<version>/bin/helm) or PATH.
Without it these tests skip on a developer machine but fail under CI=true, where the test command must have
built it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crdcheck import apply_defaults, load_crd, validate, version_schema

from gafka_operator.manifests import common_labels

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gafka"
KUBE_VERSION = ["--kube-version", "v1.35.0"]
"""Explicit, so a helm built without its Kubernetes-version stamp (default v1.20) passes Chart.yaml's kubeVersion."""
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "standby": ["--set", "replicaCount=2"],
    "everything": [
        "--set",
        "exampleCluster.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.grafanaDashboards.enabled=true",
        "--set",
        "clusterDomain=cluster.local",
        "--set",
        "operator.logLevel=debug",
    ],
    "namespaced": ["--set", "watchNamespaces={team-a,team-b}", "--set", "rbac.rackAwareness=false"],
}


def _version_key(path: Path) -> tuple[int, ...]:
    digits = path.parent.parent.name.lstrip("v").split(".")
    return tuple(int(d) if d.isdigit() else 0 for d in digits)


@cache
def helm_binary() -> str | None:
    cache = Path(os.environ.get("GAFKA_CACHE") or Path.home() / ".cache" / "gafka")
    cached = sorted(cache.glob("helm/*/bin/helm"), key=_version_key)
    for candidate in reversed(cached):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        message = "helm not found in ~/.cache/gafka/helm/*/bin or PATH (scripts/k8s-tools builds it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/gafka-helm/cache", "HELM_CONFIG_HOME": "/tmp/gafka-helm/config"}
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, env=env, check=False)


class _StrictLoader(yaml.SafeLoader):
    """Refuses duplicate keys, which YAML parsers (and the API server's) would otherwise resolve silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicates}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _template(helm: str, *values: str, namespace: str = "gafka-system") -> list[dict[str, Any]]:
    result = _run(helm, "template", "gafka", str(CHART), "--namespace", namespace, *KUBE_VERSION, *values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.load_all(result.stdout, Loader=_StrictLoader) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_values_match_their_schema() -> None:
    """Also without helm: values.yaml is valid under values.schema.json, which is a valid draft-07 schema."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(values)) == []


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_lint_strict(helm: str, name: str) -> None:
    result = _run(helm, "lint", "--strict", str(CHART), *KUBE_VERSION, *VALUE_SETS[name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_template_renders_namespaced_labelled_objects(helm: str, name: str) -> None:
    docs = _template(helm, *VALUE_SETS[name])
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for doc in docs:
        meta = doc["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "gafka", doc["kind"]
        if doc["kind"] not in cluster_scoped:
            assert meta.get("namespace"), f"{doc['kind']} {meta['name']} has no namespace"


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (["--set", "replicaCount=3"], "replicaCount"),
        (["--set", "unknownKey=1"], "unknownKey"),
        (["--set", "operator.logLevel=trace"], "logLevel"),
        (["--set", "watchNamespaces={Bad_Name}"], "watchNamespaces"),
        (["--set", "watchNamespaces={team-a}", "--set", "exampleCluster.enabled=true"], "watchNamespaces leaves out"),
    ],
)
def test_schema_refuses_bad_values(helm: str, values: list[str], error: str) -> None:
    result = _run(helm, "template", "gafka", str(CHART), *KUBE_VERSION, *values)
    assert result.returncode != 0
    assert error in result.stderr, result.stderr


def test_operator_deployment(helm: str) -> None:
    docs = _template(helm)
    [deployment] = _by_kind(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "gafka/operator:0.1.0"
    command = " ".join(container["command"] + container["args"])
    for part in (
        "exec kopf run",
        "--module=gafka_operator.handlers",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--peering=gafka-operator",
        '--priority="$$(python',
    ):
        assert part in command, command
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["GAFKA_OPERATOR_CONTROLLER_URL"] == "http://gafka-operator-controller.gafka-system.svc:9093"
    assert env["GAFKA_OPERATOR_BROKER_IMAGE"] == "gafka/broker:0.1.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "controller"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [service] = _by_kind(docs, "Service")
    assert service["metadata"]["name"] == "gafka-operator-controller"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    [peering] = _by_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "gafka-operator"
    assert not _by_kind(docs, "GafkaCluster") and not _by_kind(docs, "PodDisruptionBudget")


def test_two_replicas_roll_one_at_a_time(helm: str) -> None:
    docs = _template(helm, *VALUE_SETS["standby"])
    [deployment] = _by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert "podAntiAffinity" in deployment["spec"]["template"]["spec"]["affinity"]
    [pdb] = _by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


def _rules(docs: list[dict[str, Any]], kind: str, name: str) -> dict[tuple[str, str], set[str]]:
    [role] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


MANAGED = {"get", "list", "watch", "create", "update", "patch", "delete"}


def test_rbac_is_least_privilege(helm: str) -> None:
    docs = _template(helm)
    for role in _by_kind(docs, "ClusterRole") + _by_kind(docs, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            assert "secrets" not in rule["resources"], "the operator never reads secrets"
            assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
    assert _rules(docs, "ClusterRole", "gafka-operator") == {
        ("gafka.dev", "gafkaclusters"): {"get", "list", "watch", "patch", "update"},
        ("gafka.dev", "gafkatopics"): {"get", "list", "watch", "patch", "update"},
        ("gafka.dev", "gafkaclusters/status"): {"get", "patch", "update"},
        ("gafka.dev", "gafkatopics/status"): {"get", "patch", "update"},
        ("gafka.dev", "gafkaclusters/scale"): {"get", "patch", "update"},
        ("gafka.dev", "gafkaclusters/finalizers"): {"update"},
        ("gafka.dev", "gafkatopics/finalizers"): {"update"},
        ("apps", "statefulsets"): MANAGED,
        ("apps", "deployments"): MANAGED,  # the web console (spec.console)
        ("", "services"): MANAGED,
        ("", "configmaps"): MANAGED,
        ("", "serviceaccounts"): MANAGED,
        ("policy", "poddisruptionbudgets"): MANAGED,
        ("", "pods"): {"get", "list", "watch", "delete", "patch"},
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "patch", "delete"},
        ("autoscaling", "horizontalpodautoscalers"): {"get", "list"},
        ("", "events"): {"create", "patch"},
        ("events.k8s.io", "events"): {"create", "patch"},
    }
    assert _rules(docs, "ClusterRole", "gafka-operator-cluster") == {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
        ("", "nodes"): {"get", "list", "watch"},
    }
    assert _rules(docs, "Role", "gafka-operator-leader") == {
        ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "patch"},
    }
    bindings = {b["metadata"]["name"]: b for b in _by_kind(docs, "ClusterRoleBinding")}
    assert set(bindings) == {"gafka-operator", "gafka-operator-cluster"}
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gafka-operator", "namespace": "gafka-system"}
        ]


def test_namespaced_install_uses_role_bindings_only_in_those_namespaces(helm: str) -> None:
    docs = _template(helm, *VALUE_SETS["namespaced"])
    bindings = _by_kind(docs, "RoleBinding")
    watched = sorted(b["metadata"]["namespace"] for b in bindings if b["roleRef"]["name"] == "gafka-operator")
    assert watched == ["team-a", "team-b"]
    assert [b["metadata"]["name"] for b in _by_kind(docs, "ClusterRoleBinding")] == ["gafka-operator-cluster"]
    cluster = _rules(docs, "ClusterRole", "gafka-operator-cluster")
    assert ("", "nodes") not in cluster and ("", "namespaces") in cluster
    assert _rules(docs, "ClusterRole", "gafka-operator")[("", "pods")] == {"get", "list", "watch", "delete"}
    peerings = _by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    [deployment] = _by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--namespace=team-a --namespace=team-b" in args and "--all-namespaces" not in args


def test_optional_example_cluster_and_monitors(helm: str) -> None:
    docs = _template(helm, *VALUE_SETS["everything"])
    [cluster] = _by_kind(docs, "GafkaCluster")
    schema = version_schema(load_crd("gafkaclusters.yaml"))
    assert validate(schema, apply_defaults(schema, cluster)) == []
    assert cluster["spec"]["replicas"] == 3 and cluster["metadata"]["namespace"] == "gafka-system"
    [monitor] = _by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0] == {"port": "controller", "path": "/metrics", "interval": "30s"}
    [pods] = _by_kind(docs, "PodMonitor")
    assert pods["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "broker"
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    assert pods["spec"]["namespaceSelector"] == {"any": True}
    [deployment] = _by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--debug" in container["args"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert (
        env["GAFKA_OPERATOR_CONTROLLER_URL"] == "http://gafka-operator-controller.gafka-system.svc.cluster.local:9093"
    )


def test_monitor_labels_match_the_brokers() -> None:
    """The PodMonitor selects what the operator puts on broker pods (no helm needed)."""
    template = (CHART / "templates" / "podmonitor.yaml").read_text()
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/managed-by"):
        assert f"{key}: {common_labels('x')[key]}" in template


def test_monitoring_is_off_by_default_and_renders_the_files_as_they_are(helm: str) -> None:
    """The PrometheusRule is the rule file promtool tests; each dashboard ConfigMap carries the sidecar's label
    and the dashboard JSON unchanged."""
    assert not _by_kind(_template(helm), "PrometheusRule")
    assert not [doc for doc in _by_kind(_template(helm), "ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]
    docs = _template(helm, *VALUE_SETS["everything"])
    (rule,) = _by_kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "rules" / "gafka.rules.yaml").read_text())
    dashboards = [doc for doc in _by_kind(docs, "ConfigMap") if doc["metadata"]["name"].endswith("-dashboard")]
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(dashboards) == len(files) == 5
    for doc in dashboards:
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = doc["data"].items()
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())
