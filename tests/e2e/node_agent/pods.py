"""One bound pod, run as local processes: volumes, init containers, containers, probes, status, termination.

A :class:`PodRunner` is a thread per pod uid. The agent hands it each newer version of the pod
(:meth:`PodRunner.observe`) and tells it when the pod is gone (:meth:`PodRunner.vanish`); everything else
(restarts, probes, status reports, the graceful stop on a delete) happens in the runner.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gafka_operator.kube import ApiException, KubeApi, ObjectRef
from gafka_operator.podenv import container_command, container_environment

from .metrics_api import PodProcesses
from .probes import ProbeState, run_probe
from .volumes import Mount, configmap_files, downward_files, path_rewriter, secret_files, write_files

__all__ = ["NodeInfo", "PodRunner", "VolumeLocks"]

log = logging.getLogger("node_agent")

TICK_S = 0.2
REFRESH_S = 0.5
"""How often configMap, secret and downwardAPI volumes are rewritten from the API (a kubelet: about a minute)."""
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 10.0
"""Container restart back-off (a kubelet: 10 s doubling to 5 min)."""
SHUTDOWN_GRACE_S = 10.0
"""Grace of the processes when the agent itself stops."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    host_ip: str
    labels: Mapping[str, str]


class VolumeLocks:
    """One holder per persistent volume directory: a recreated pod waits until its predecessor's processes are
    gone before it starts on the same data (ReadWriteOnce, as a real node would detach and attach)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: set[Path] = set()

    def try_acquire(self, paths: Sequence[Path]) -> bool:
        with self._guard:
            if any(p in self._held for p in paths):
                return False
            self._held.update(paths)
            return True

    def release(self, paths: Sequence[Path]) -> None:
        with self._guard:
            self._held.difference_update(paths)


class PodGoneError(Exception):
    """The pod was force-deleted: stop at once."""


class PodDeletingError(Exception):
    """The pod got a deletionTimestamp: stop gracefully."""


@dataclass
class Container:
    """A container of the pod and its current process (one run at a time)."""

    spec: Mapping[str, Any]
    init: bool
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: int = 0
    started_at: str | None = None
    run_started: float = 0.0
    last_terminated: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None
    waiting_reason: str | None = "ContainerCreating"
    next_start: float = 0.0
    backoff: float = BACKOFF_MIN_S
    startup: ProbeState | None = None
    liveness: ProbeState | None = None
    readiness: ProbeState | None = None
    completed: bool = False

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def started(self) -> bool:
        return self.running and (self.startup is None or self.startup.passing)

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        return self.readiness is None or self.readiness.passing

    def status(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.running:
            state = {"running": {"startedAt": self.started_at}}
        elif self.terminated is not None and (self.completed or self.init):
            state = {"terminated": self.terminated}
        elif self.terminated is not None:
            state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}
        else:
            state = {"waiting": {"reason": self.waiting_reason or "ContainerCreating"}}
        status: dict[str, Any] = {
            "name": self.name,
            "image": str(self.spec.get("image", "")),
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restarts,
            "state": state,
        }
        if self.process is not None:
            status["containerID"] = f"local://{self.process.pid}"
        if self.last_terminated is not None:
            status["lastState"] = {"terminated": self.last_terminated}
        return status


@dataclass
class _Volume:
    name: str
    source: Mapping[str, Any]
    host: Path
    persistent: bool = False


@dataclass
class _Conditions:
    """Pod conditions with their transition times, changed only when their value does."""

    values: dict[str, tuple[str, str]] = field(default_factory=dict)

    def set(self, kind: str, value: bool) -> None:
        status = "True" if value else "False"
        if self.values.get(kind, ("", ""))[0] != status:
            self.values[kind] = (status, now_iso())

    def render(self) -> list[dict[str, Any]]:
        return [{"type": k, "status": s, "lastTransitionTime": t} for k, (s, t) in self.values.items()]


class PodRunner:
    """Runs one pod (one uid) until it is deleted, vanishes, or the agent stops."""

    def __init__(
        self,
        api: KubeApi,
        pod: Mapping[str, Any],
        node: NodeInfo,
        pod_ip: str,
        root: Path,
        base_env: Mapping[str, str],
        locks: VolumeLocks,
        on_exit: Callable[[PodRunner], None],
    ) -> None:
        meta = pod["metadata"]
        self.api = api
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.node = node
        self.pod_ip = pod_ip
        self.dir = root / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.base_env = dict(base_env)
        self.locks = locks
        self.on_exit = on_exit
        self._pod: dict[str, Any] = dict(pod)
        self._pod_lock = threading.Lock()
        self._vanished = threading.Event()
        self._stopping = threading.Event()
        self._volumes: list[_Volume] = []
        self._refreshed_at = 0.0
        self._held: list[Path] = []
        self._containers: list[Container] = []
        self._conditions = _Conditions()
        self._published: dict[str, Any] | None = None
        self._start_time = now_iso()
        self._phase = "Pending"
        self._reason: str | None = None
        self._thread = threading.Thread(target=self._main, name=f"pod-{self.namespace}/{self.name}", daemon=True)

    # -- what the agent calls ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def observe(self, pod: Mapping[str, Any]) -> None:
        with self._pod_lock:
            self._pod = dict(pod)

    def vanish(self) -> None:
        self._vanished.set()

    def stop(self) -> None:
        """The agent stops: end the processes (SIGTERM, then SIGKILL after a grace), leave the pod object."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def processes(self) -> PodProcesses:
        """The pod's running containers and their process ids (what the resource metrics sample)."""
        meta = self.pod["metadata"]
        containers = {
            c.name: c.process.pid for c in list(self._containers) if not c.init and c.process is not None and c.running
        }
        labels = dict(meta.get("labels") or {})
        return PodProcesses(self.namespace, self.name, self.uid, self.node.name, labels, containers)

    @property
    def pod(self) -> dict[str, Any]:
        with self._pod_lock:
            return self._pod

    # -- the thread ----------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._run()
        except PodGoneError:
            log.info("event=pod_gone pod=%s/%s uid=%s", self.namespace, self.name, self.uid)
            self._kill_all(signal.SIGKILL, 0)
        except PodDeletingError:
            self._terminate_gracefully()
        except Exception:
            log.exception("event=pod_runner_failed pod=%s/%s", self.namespace, self.name)
            self._kill_all(signal.SIGKILL, 0)
        finally:
            for container in self._containers:
                if container.log_file is not None:
                    container.log_file.close()
            self.locks.release(self._held)
            self.on_exit(self)

    def _check(self) -> None:
        if self._vanished.is_set():
            raise PodGoneError
        if self._stopping.is_set() or self.pod["metadata"].get("deletionTimestamp"):
            raise PodDeletingError

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(TICK_S, left))

    def _run(self) -> None:
        spec = self.pod["spec"]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self._containers += [Container(c, init=False) for c in spec.get("containers") or []]
        self._conditions.set("PodScheduled", True)
        self._conditions.set("Initialized", False)
        self._conditions.set("ContainersReady", False)
        self._conditions.set("Ready", False)
        self._publish()
        self._prepare_volumes()
        for container in (c for c in self._containers if c.init):
            self._run_to_completion(container)
        self._conditions.set("Initialized", True)
        main = [c for c in self._containers if not c.init]
        for container in main:
            self._start_process(container)
        self._phase = "Running"
        while True:
            self._check()
            now = time.monotonic()
            self._refresh_volumes()
            for container in main:
                self._supervise(container, now)
            if self._phase in ("Succeeded", "Failed"):
                self._publish()
                return
            ready = all(c.ready for c in main)
            self._conditions.set("ContainersReady", ready)
            self._conditions.set("Ready", ready)
            self._publish()
            time.sleep(TICK_S)

    # -- volumes -------------------------------------------------------------------------------------------
    def _claim_directory(self, claim: str) -> Path | None:
        """The hostPath of the volume bound to ``claim``, or None while it is not bound."""
        pvc = self.api.get(ObjectRef("PersistentVolumeClaim", self.namespace, claim))
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
            return None
        volume = self.api.request("GET", f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        host_path = (volume.get("spec") or {}).get("hostPath") or {}
        if not host_path.get("path"):
            raise ValueError(f"claim {claim}: volume {volume['metadata']['name']} is not a hostPath volume")
        return Path(host_path["path"])

    def _prepare_volumes(self) -> None:
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                self._waiting("ContainerCreating", f"waiting for claim {claim} to be bound")
                while (host := self._claim_directory(claim)) is None:
                    self._sleep(0.5)
                host.mkdir(parents=True, exist_ok=True)
                self._volumes.append(_Volume(name, volume, host, persistent=True))
            elif any(kind in volume for kind in ("emptyDir", "configMap", "secret", "downwardAPI")):
                self._volumes.append(_Volume(name, volume, self.dir / "volumes" / name))
            else:
                raise ValueError(f"volume {name}: unsupported source {sorted(set(volume) - {'name'})}")
        persistent = [v.host for v in self._volumes if v.persistent]
        while not self.locks.try_acquire(persistent):
            self._waiting("ContainerCreating", "the previous pod on this volume is still stopping")
            self._sleep(0.2)
        self._held = persistent
        for volume in self._volumes:
            volume.host.mkdir(parents=True, exist_ok=True)
        self._refresh_volumes(force=True)

    def _refresh_volumes(self, *, force: bool = False) -> None:
        """Rewrite configMap, secret and downwardAPI volumes from the API, at most every :data:`REFRESH_S`."""
        now = time.monotonic()
        if not force and now - self._refreshed_at < REFRESH_S:
            return
        self._refreshed_at = now
        pod = self._with_addresses(self.pod)
        for volume in self._volumes:
            source = volume.source
            if "configMap" in source:
                ref = source["configMap"]
                configmap = self.api.get(ObjectRef("ConfigMap", self.namespace, ref["name"]))
                write_files(volume.host, configmap_files(configmap, ref))
            elif "secret" in source:
                ref = source["secret"]
                secret = self.api.request("GET", f"/api/v1/namespaces/{self.namespace}/secrets/{ref['secretName']}")
                write_files(volume.host, secret_files(secret, ref))
            elif "downwardAPI" in source:
                write_files(volume.host, downward_files(pod, source["downwardAPI"]))

    def _mounts(self, container: Container) -> list[Mount]:
        by_name = {v.name: v.host for v in self._volumes}
        mounts = []
        for mount in container.spec.get("volumeMounts") or []:
            host = by_name[mount["name"]]
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(mount["mountPath"], host))
        return mounts

    # -- processes -----------------------------------------------------------------------------------------
    def _with_addresses(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """The pod as its environment sees it: with the IPs this runner gave it (the API copy may lag)."""
        status = {**(pod.get("status") or {}), "podIP": self.pod_ip, "hostIP": self.node.host_ip}
        spec = {**(pod.get("spec") or {}), "nodeName": self.node.name}
        return {**pod, "status": status, "spec": spec}

    def _lookup(self, kind: str, ref: Mapping[str, Any]) -> str:
        if kind == "configMapKeyRef":
            configmap = self.api.get(ObjectRef("ConfigMap", self.namespace, ref["name"])) or {}
            return str((configmap.get("data") or {})[ref["key"]])
        if kind == "secretKeyRef":
            secret = self.api.request("GET", f"/api/v1/namespaces/{self.namespace}/secrets/{ref['name']}")
            return base64.b64decode(secret["data"][ref["key"]]).decode()
        raise ValueError(f"unsupported env source {kind}")

    def _environment(self, container: Container) -> tuple[list[str], dict[str, str], Path]:
        pod = self._with_addresses(self.pod)
        rewrite = path_rewriter(self._mounts(container))
        env = container_environment(pod, container.spec, self._lookup)
        env = {name: rewrite(value) for name, value in env.items()}
        argv = [rewrite(word) for word in container_command(container.spec, env)]
        if not argv:
            raise ValueError(f"container {container.name}: the node agent needs an explicit command (no image here)")
        full_env = {**self.base_env, "HOSTNAME": self.name, **env}
        executable = shutil.which(argv[0], path=full_env.get("PATH"))
        if executable is None:
            raise FileNotFoundError(f"container {container.name}: {argv[0]!r} is not on PATH")
        workdir = Path(rewrite(container.spec["workingDir"])) if container.spec.get("workingDir") else self.dir
        return [executable, *argv[1:]], full_env, workdir

    def _start_process(self, container: Container) -> None:
        self._check()
        argv, env, workdir = self._environment(container)
        if container.log_file is None:
            container.log_file = (self.dir / f"{container.name}.log").open("ab")
        container.log_file.write(f"--- {now_iso()} start #{container.restarts}: {argv}\n".encode())
        container.log_file.flush()
        container.process = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=container.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        container.started_at = now_iso()
        container.run_started = time.monotonic()
        container.terminated = None
        spec = container.spec
        started = container.run_started
        container.startup = ProbeState(spec["startupProbe"], started) if spec.get("startupProbe") else None
        container.liveness = ProbeState(spec["livenessProbe"], started) if spec.get("livenessProbe") else None
        container.readiness = ProbeState(spec["readinessProbe"], started) if spec.get("readinessProbe") else None
        log.info(
            "event=container_started pod=%s/%s container=%s pid=%d ip=%s",
            self.namespace,
            self.name,
            container.name,
            container.process.pid,
            self.pod_ip,
        )

    def _exited(self, container: Container) -> None:
        """Record the end of the container's current run."""
        assert container.process is not None
        code = container.process.returncode
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: what a runtime reports
        container.terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": container.started_at,
            "finishedAt": now_iso(),
        }
        log.info(
            "event=container_exited pod=%s/%s container=%s code=%s", self.namespace, self.name, container.name, code
        )

    def _run_to_completion(self, container: Container) -> None:
        """An init container: run until it exits 0, restarting it with back-off (restartPolicy Always)."""
        while True:
            self._start_process(container)
            assert container.process is not None
            while container.process.poll() is None:
                self._sleep(TICK_S)
                self._refresh_volumes()
                self._publish()
            self._exited(container)
            if container.process.returncode == 0:
                container.completed = True
                return
            container.last_terminated = container.terminated
            container.restarts += 1
            self._publish()
            self._sleep(container.backoff)
            container.backoff = min(container.backoff * 2, BACKOFF_MAX_S)

    def _supervise(self, container: Container, now: float) -> None:
        """Restart an exited container after its back-off, and run its due probes."""
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if container.process is not None and container.process.poll() is not None and container.terminated is None:
            self._exited(container)
            code = container.terminated["exitCode"] if container.terminated else 1
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                container.completed = True
                self._phase = "Succeeded" if code == 0 else "Failed"
                return
            container.next_start = now + container.backoff
            container.backoff = min(container.backoff * 2, BACKOFF_MAX_S)
        if not container.running:
            if container.terminated is not None and not container.completed and now >= container.next_start:
                container.last_terminated = container.terminated
                container.restarts += 1
                self._start_process(container)
            return
        if now - container.run_started > 120:
            container.backoff = BACKOFF_MIN_S  # ran long enough: the next crash starts over
        self._probe(container, now)

    def _probe(self, container: Container, now: float) -> None:
        ports = {p["name"]: int(p["containerPort"]) for p in container.spec.get("ports") or [] if p.get("name")}

        def command(argv: Sequence[str]) -> list[str]:
            rewrite = path_rewriter(self._mounts(container))
            return [rewrite(word) for word in argv]

        env = self.base_env
        if container.startup is not None and not container.startup.passing:
            if container.startup.due(now):
                container.startup.record(run_probe(container.startup.spec, self.pod_ip, ports, command, env))
                if container.startup.failed:
                    self._restart_unhealthy(container, "startup")
            return
        if container.liveness is not None and container.liveness.due(now):
            container.liveness.record(run_probe(container.liveness.spec, self.pod_ip, ports, command, env))
            if container.liveness.failed:
                self._restart_unhealthy(container, "liveness")
                return
        if container.readiness is not None and container.readiness.due(now):
            container.readiness.record(run_probe(container.readiness.spec, self.pod_ip, ports, command, env))

    def _restart_unhealthy(self, container: Container, probe: str) -> None:
        log.info("event=probe_failed pod=%s/%s container=%s probe=%s", self.namespace, self.name, container.name, probe)
        self._stop_process(container, self._grace())
        self._exited(container)

    # -- stopping ------------------------------------------------------------------------------------------
    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        if self._stopping.is_set():
            return SHUTDOWN_GRACE_S
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _stop_process(self, container: Container, grace: float) -> None:
        process = container.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=max(grace, 0.0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _kill_all(self, sig: signal.Signals, grace: float) -> None:
        running = [c for c in self._containers if c.running]
        for container in running:
            assert container.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.process.pid, sig)
        deadline = time.monotonic() + grace
        for container in running:
            assert container.process is not None
            try:
                container.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(container.process.pid, signal.SIGKILL)
                container.process.wait()

    def _terminate_gracefully(self) -> None:
        """SIGTERM, wait up to the grace period (cut short if the pod vanishes), SIGKILL; then remove the pod."""
        grace = self._grace()
        log.info("event=pod_stopping pod=%s/%s uid=%s grace_s=%.0f", self.namespace, self.name, self.uid, grace)
        running = [c for c in self._containers if c.running]
        for container in running:
            assert container.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.running for c in running) and time.monotonic() < deadline and not self._vanished.is_set():
            time.sleep(0.05)
        self._kill_all(signal.SIGKILL, 0)
        for container in running:
            self._exited(container)
        if self._stopping.is_set() or self._vanished.is_set():
            return
        with contextlib.suppress(ApiException):
            self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        log.info("event=pod_deleted pod=%s/%s uid=%s", self.namespace, self.name, self.uid)

    # -- status --------------------------------------------------------------------------------------------
    def _waiting(self, reason: str, message: str) -> None:
        for container in self._containers:
            container.waiting_reason = reason
        if self._reason != message:
            self._reason = message
            log.info("event=pod_waiting pod=%s/%s reason=%s", self.namespace, self.name, message)
        self._publish()

    def _publish(self) -> None:
        """PATCH pods/status when what the runner knows changed."""
        status: dict[str, Any] = {
            "phase": self._phase,
            "hostIP": self.node.host_ip,
            "hostIPs": [{"ip": self.node.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self._start_time,
            "conditions": self._conditions.render(),
            "initContainerStatuses": [c.status() for c in self._containers if c.init],
            "containerStatuses": [c.status() for c in self._containers if not c.init],
        }
        if status == self._published:
            return
        try:
            # The uid makes the patch conditional (as the kubelet's): never the status of a namesake pod.
            patch = {"metadata": {"uid": self.uid}, "status": status}
            self.api.merge_patch(ObjectRef("Pod", self.namespace, self.name), patch, "status")
            self._published = status
        except ApiException as error:
            if error.status in (404, 409, 422):
                self._vanished.set()
            else:
                raise
