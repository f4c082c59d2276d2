"""The agent's control loop: nodes, scheduling, volume provisioning and one :class:`PodRunner` per pod."""

from __future__ import annotations

import itertools
import logging
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gafka_operator.kube import ApiException, KubeApi, ObjectRef

from . import network
from .metrics_api import PodProcesses, ResourceMetricsApi
from .pods import NodeInfo, PodRunner, VolumeLocks, now_iso
from .scheduling import choose_node, matches_selector

__all__ = ["AGENT_LABEL", "NodeAgent", "node_labels"]

log = logging.getLogger("node_agent")

AGENT_LABEL = "e2e.gafka.dev/node-agent"
"""On the PersistentVolumes the agent provisions (so it only ever deletes its own)."""
LOOP_S = 0.2
HEARTBEAT_S = 15.0
DEFAULT_SCHEDULER = "default-scheduler"
POD_NETWORK = "10.244"
"""Pod IPs are ``10.244.<node>.<n>``, each added to ``lo`` while its pod runs (:mod:`.network`): Kubernetes
refuses loopback addresses (127/8) in EndpointSlices, so Services would have no endpoints. (``10.245`` and up when
other agents run on the host: :func:`.network.claim_network`.)"""
METRICS_SUBNET = 250
"""The resource metrics API (:mod:`.metrics_api`) listens on ``<pod network>.250.1``: outside every node's range."""
METRICS_PORT = 4443


def node_labels(name: str, zone: str) -> dict[str, str]:
    """The labels kind-config.yaml gives kind's workers, so the same GafkaCluster specs work on both."""
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": f"zone-{zone}",
        "gafka.dev/rack": f"rack-{zone}",
    }


def _selector(text: str) -> dict[str, Any]:
    """``k=v,k2=v2`` as a LabelSelector."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return {"matchLabels": {key: value for key, value in pairs}}


class _Addresses:
    """Pod IPs of one node, ``10.244.<n>.2`` to ``.254``, handed out round-robin so an address is not reused at
    once (a client holding stale metadata must not reach a different broker on the same address)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._cycle = itertools.cycle(range(2, 255))
        self._used: set[str] = set()

    def take(self) -> str:
        for _ in range(253):
            ip = f"{self.prefix}.{next(self._cycle)}"
            if ip not in self._used:
                self._used.add(ip)
                network.add_address(ip)
                return ip
        raise RuntimeError(f"no free pod IP under {self.prefix}")

    def give_back(self, ip: str) -> None:
        network.remove_address(ip)
        self._used.discard(ip)


class NodeAgent:
    def __init__(
        self,
        api: KubeApi,
        root: Path,
        zones: Sequence[str],
        namespace_selector: str,
        *,
        pod_network: str = POD_NETWORK,
        metrics: bool = True,
        metrics_port: int = METRICS_PORT,
    ) -> None:
        self.api = api
        self.root = root
        self.namespace_selector = _selector(namespace_selector)
        self.nodes: dict[str, NodeInfo] = {}
        self._addresses: dict[str, _Addresses] = {}
        for index, zone in enumerate(zones, start=1):
            name = f"e2e-node-{zone}"
            self.nodes[name] = NodeInfo(name, f"{pod_network}.{index}.1", node_labels(name, zone))
            self._addresses[name] = _Addresses(f"{pod_network}.{index}")
        self.locks = VolumeLocks()
        self.runners: dict[str, PodRunner] = {}
        self._guard = threading.Lock()
        self._last_heartbeat = 0.0
        self.base_env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.pod_network = pod_network
        self.metrics: ResourceMetricsApi | None = None
        if metrics:
            metrics_ip = f"{pod_network}.{METRICS_SUBNET}.1"
            self.metrics = ResourceMetricsApi(
                api, self.pod_processes, list(self.nodes), root / "metrics-api", metrics_ip, metrics_port
            )

    # -- nodes ---------------------------------------------------------------------------------------------
    def register_nodes(self) -> None:
        for node in self.nodes.values():
            body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name, "labels": dict(node.labels)}}
            try:
                self.api.create(body)
            except ApiException as error:
                if error.status != 409:
                    raise
                self.api.merge_patch(ObjectRef("Node", None, node.name), {"metadata": {"labels": dict(node.labels)}})
            log.info("event=node_registered node=%s ip=%s zone=%s", node.name, node.host_ip, node.labels)
        self._heartbeat()

    def _heartbeat(self) -> None:
        now = now_iso()
        for node in self.nodes.values():
            conditions = [
                {"type": kind, "status": status, "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now}
                for kind, status, reason in (
                    ("Ready", "True", "KubeletReady"),
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID"),
                )
            ]
            capacity = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
            status = {
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": node.host_ip},
                    {"type": "Hostname", "address": node.name},
                ],
                "capacity": capacity,
                "allocatable": capacity,
                "nodeInfo": {
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "kubeletVersion": "gafka-e2e-node-agent",
                    "containerRuntimeVersion": "local-processes://1",
                    "kernelVersion": "",
                    "osImage": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
            }
            self.api.merge_patch(ObjectRef("Node", None, node.name), {"status": status}, "status")
        self._last_heartbeat = time.monotonic()

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        network.remove_stale(self.pod_network)
        self.register_nodes()
        if self.metrics is not None:
            try:
                self.metrics.start()
            except (OSError, RuntimeError) as error:  # pods still run; only HPAs go without metrics
                log.error("event=metrics_api_failed error=%r", error)
                self.metrics = None
        while not stop.is_set():
            try:
                self.tick()
            except ApiException as error:
                log.warning("event=tick_failed status=%s reason=%s", error.status, error.reason)
            except OSError as error:  # the API server restarting, a connection reset
                log.warning("event=tick_failed error=%r", error)
            stop.wait(LOOP_S)
        self.shutdown()

    def _namespaces(self) -> set[str]:
        """The namespaces whose pods this agent runs (terminating ones too: their pods must still stop)."""
        items = self.api.request("GET", "/api/v1/namespaces").get("items") or []
        return {
            ns["metadata"]["name"]
            for ns in items
            if matches_selector(ns["metadata"].get("labels") or {}, self.namespace_selector)
        }

    def tick(self) -> None:
        namespaces = self._namespaces()
        pods = [
            pod
            for pod in self.api.request("GET", "/api/v1/pods").get("items") or []
            if pod["metadata"]["namespace"] in namespaces
        ]
        self._provision(namespaces)
        self._schedule(pods)
        self._run_pods(pods)
        if self.metrics is not None and not self.metrics.registered:
            self.metrics.register()  # here, not once at start: a failed attempt is retried on the next tick
        if time.monotonic() - self._last_heartbeat > HEARTBEAT_S:
            self._heartbeat()

    # -- scheduling ----------------------------------------------------------------------------------------
    def _schedule(self, pods: list[dict[str, Any]]) -> None:
        placed = [(p["spec"]["nodeName"], p) for p in pods if p["spec"].get("nodeName")]
        labels = {name: node.labels for name, node in self.nodes.items()}
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            if spec.get("nodeName") or meta.get("deletionTimestamp"):
                continue
            if spec.get("schedulerName", DEFAULT_SCHEDULER) != DEFAULT_SCHEDULER:
                continue
            node = choose_node(pod, labels, placed)
            if node is None:
                continue
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            }
            try:
                self.api.request(
                    "POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=binding
                )
            except ApiException as error:
                if error.status in (404, 409):
                    continue
                raise
            pod["spec"]["nodeName"] = node
            placed.append((node, pod))
            log.info("event=pod_bound pod=%s/%s node=%s", meta["namespace"], meta["name"], node)

    # -- volumes -------------------------------------------------------------------------------------------
    def _provision(self, namespaces: set[str]) -> None:
        """A hostPath PersistentVolume pre-bound to each pending claim (no class, or a class nobody provisions
        here); the controller-manager's binder completes the binding. Released volumes are deleted."""
        for claim in self.api.request("GET", "/api/v1/persistentvolumeclaims").get("items") or []:
            meta, spec = claim["metadata"], claim["spec"]
            if meta["namespace"] not in namespaces or spec.get("volumeName") or meta.get("deletionTimestamp"):
                continue
            if (claim.get("status") or {}).get("phase") not in (None, "Pending"):
                continue
            name = f"e2e-{meta['uid']}"
            path = self.root / "volumes" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
            path.mkdir(parents=True, exist_ok=True)
            volume = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {AGENT_LABEL: "true"}},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": spec.get("storageClassName") or "",
                    "volumeMode": spec.get("volumeMode") or "Filesystem",
                    "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            }
            try:
                self.api.request("POST", "/api/v1/persistentvolumes", body=volume)
                log.info("event=volume_provisioned claim=%s/%s path=%s", meta["namespace"], meta["name"], path)
            except ApiException as error:
                if error.status != 409:
                    raise
        released = self.api.request("GET", "/api/v1/persistentvolumes", query={"labelSelector": f"{AGENT_LABEL}=true"})
        for volume in released.get("items") or []:
            if (volume.get("status") or {}).get("phase") != "Released":
                continue
            path = Path(volume["spec"]["hostPath"]["path"])
            try:
                self.api.request("DELETE", f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
            except ApiException as error:
                if error.status != 404:
                    raise
            if self.root in path.parents:
                shutil.rmtree(path, ignore_errors=True)
            log.info("event=volume_deleted volume=%s", volume["metadata"]["name"])

    # -- pods ----------------------------------------------------------------------------------------------
    def _run_pods(self, pods: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for pod in pods:
            meta = pod["metadata"]
            node = self.nodes.get(pod["spec"].get("nodeName") or "")
            if node is None:
                continue
            uid = meta["uid"]
            seen.add(uid)
            with self._guard:
                runner = self.runners.get(uid)
            if runner is not None:
                runner.observe(pod)
                continue
            if meta.get("deletionTimestamp"):
                # Never started here (or the agent restarted): nothing runs, so confirm the deletion.
                self._confirm_deleted(meta)
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            self._start_runner(pod, node)
        with self._guard:
            gone = [runner for uid, runner in self.runners.items() if uid not in seen]
        for runner in gone:
            runner.vanish()

    def _start_runner(self, pod: Mapping[str, Any], node: NodeInfo) -> None:
        ip = self._addresses[node.name].take()

        def finished(runner: PodRunner) -> None:
            with self._guard:
                self.runners.pop(runner.uid, None)
            self._addresses[node.name].give_back(runner.pod_ip)

        runner = PodRunner(self.api, pod, node, ip, self.root, self.base_env, self.locks, finished)
        with self._guard:
            self.runners[runner.uid] = runner
        runner.start()
        log.info("event=pod_admitted pod=%s/%s node=%s ip=%s", runner.namespace, runner.name, node.name, ip)

    def pod_processes(self) -> list[PodProcesses]:
        """The running containers of every pod this agent runs (for the resource metrics' sampler thread)."""
        with self._guard:
            runners = list(self.runners.values())
        return [runner.processes() for runner in runners]

    def _confirm_deleted(self, meta: Mapping[str, Any]) -> None:
        try:
            self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def shutdown(self) -> None:
        """Stop every pod's processes (SIGTERM, a short grace, SIGKILL); the pod objects stay."""
        with self._guard:
            runners = list(self.runners.values())
        for runner in runners:
            runner.stop()
        for runner in runners:
            runner.join(timeout=30)
        if self.metrics is not None:
            self.metrics.stop()
        log.info("event=agent_stopped pods=%d", len(runners))
