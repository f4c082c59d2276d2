"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager as local processes.

The binaries come from ``scripts/k8s-tools`` (built from Go modules into ``${GAFKA_CACHE:-~/.cache/gafka}``;
see ``docs/kubernetes-testing.md``). :class:`ControlPlane` starts them the way controller-runtime's envtest
does, plus a controller-manager so that StatefulSets get Pods, owner references are garbage-collected and
namespaces get their ``default`` ServiceAccount. There is no scheduler and no kubelet: Pods stay Pending and
unbound until something (a test, or the node agent of the end-to-end tests) binds them and reports status.

- certificates: a throw-away CA (``openssl``) signs the apiserver's serving certificate (SANs 127.0.0.1,
  localhost, the service IP), an admin client certificate (``O=system:masters``) and the controller-manager's
  client certificate (``CN=system:kube-controller-manager``, which runs each controller under its own
  ServiceAccount with ``--use-service-account-credentials`` and RBAC's bootstrap roles, like kubeadm);
  a separate RSA key signs ServiceAccount tokens.
- etcd: ``--unsafe-no-fsync``, free loopback ports, a temp data dir.
- kube-apiserver: ``--authorization-mode=RBAC``, ``--client-ca-file``, free secure port on 127.0.0.1,
  ``--endpoint-reconciler-type=none`` (127.0.0.1 cannot be the ``kubernetes`` Service's endpoint),
  ``--enable-aggregator-routing`` (an APIService's Service is reached at its endpoint: there is no kube-proxy).
- kube-controller-manager: :data:`DEFAULT_CONTROLLERS`, the HPA controller with test timings (:data:`HPA_ARGS`).
- each component writes ``<dir>/logs/<name>.log``; when a start fails the error carries its last lines.

:func:`existing_cluster_kubeconfig` implements ``GAFKA_KUBECONFIG`` / ``USE_EXISTING_CLUSTER=true``: the same
tests then run against an existing cluster (kind) and nothing is built or started.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from support import free_port

__all__ = [
    "DEFAULT_CONTROLLERS",
    "HPA_ARGS",
    "K8S_TOOLS",
    "KUBE_KEY",
    "ControlPlane",
    "ControlPlaneError",
    "Kube",
    "KubeTools",
    "ToolsUnavailableError",
    "ensure_tools",
    "existing_cluster_kubeconfig",
    "kube",
    "load_existing_cluster",
    "new_api_client",
    "tail",
    "write_kubeconfig",
]

REPO = Path(__file__).resolve().parents[2]
K8S_TOOLS = REPO / "scripts" / "k8s-tools"
BUILD_TIMEOUT_S = 85 * 60
"""A first build takes about 10-15 minutes on 2 cores; CI's budget is 90 minutes."""
START_TIMEOUT_S = float(os.environ.get("GAFKA_KUBE_START_TIMEOUT", "120"))
STOP_TIMEOUT_S = 20.0
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"

DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "statefulset-controller",
    "replicaset-controller",
    "deployment-controller",
    "garbage-collector-controller",
    "clusterrole-aggregation-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "disruption-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "job-controller",
    "horizontal-pod-autoscaler-controller",
)
"""What the operator and end-to-end tests need: workloads, garbage collection of owner references, namespace
lifecycle, ServiceAccounts, Service endpoints, PodDisruptionBudget status, PVC binding and HorizontalPodAutoscalers
(on the ``/scale`` subresource, with the node agent's ``metrics.k8s.io``). No node lifecycle, no scheduler (none
exists here). Override with ``GAFKA_KUBE_CONTROLLERS`` (comma-separated, kube-controller-manager ``--controllers``
syntax, e.g. ``*`` for all)."""

HPA_ARGS: tuple[str, ...] = (
    "--horizontal-pod-autoscaler-sync-period=2s",
    "--horizontal-pod-autoscaler-cpu-initialization-period=20s",
    "--horizontal-pod-autoscaler-initial-readiness-delay=10s",
)
"""The HPA controller's timings, shortened for tests (defaults: 15 s, 5 min, 30 s). Downscale stabilization
stays at its default: a test's HorizontalPodAutoscaler sets its own ``behavior``."""


class ControlPlaneError(RuntimeError):
    """A component failed to start (the message carries the tail of its log) or the tools failed to build."""


class ToolsUnavailableError(ControlPlaneError):
    """The binaries are missing and cannot be built here because ``go`` is not installed at all."""


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------------
# binaries


@dataclass(frozen=True)
class KubeTools:
    """Where ``scripts/k8s-tools`` put the binaries."""

    kube_bin: Path
    kubectl: Path
    helm: Path

    @property
    def kube_apiserver(self) -> Path:
        return self.kube_bin / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.kube_bin / "kube-controller-manager"

    @property
    def etcd(self) -> Path:
        return self.kube_bin / "etcd"


def _parse_tools(stdout: str) -> KubeTools:
    values = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    try:
        return KubeTools(Path(values["KUBE_BIN"]), Path(values["KUBECTL"]), Path(values["HELM"]))
    except KeyError as missing:
        raise ControlPlaneError(f"scripts/k8s-tools printed no {missing}:\n{stdout}") from None


def ensure_tools(log_path: Path, *, announce: Callable[[str], None] | None = None) -> KubeTools:
    """Return the binaries, building them with ``scripts/k8s-tools`` first when they are missing.

    Raises :class:`ToolsUnavailableError` only when a build is needed and ``go`` is not installed; any other failure
    (the proxy is unreachable, a compile error) is a :class:`ControlPlaneError` with the tail of the build log.
    """
    check = subprocess.run(
        ["bash", str(K8S_TOOLS), "--check"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if check.returncode == 0:
        return _parse_tools(check.stdout)
    if shutil.which("go") is None:
        raise ToolsUnavailableError(
            "the Kubernetes test binaries are not built and 'go' is not installed to build them "
            f"({check.stderr.strip()}); install Go or set GAFKA_KUBECONFIG/USE_EXISTING_CLUSTER=true"
        )
    if announce is not None:
        announce(
            f"building kube-apiserver, kube-controller-manager, etcd and helm from Go modules "
            f"(first run only, ~10-15 min on 2 cores); log: {log_path}"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w") as log_file:
        try:
            done = subprocess.run(
                ["bash", str(K8S_TOOLS)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ControlPlaneError(
                f"scripts/k8s-tools did not finish within {BUILD_TIMEOUT_S} s:\n{tail(log_path, 60)}"
            ) from None
    if done.returncode != 0:
        raise ControlPlaneError(f"scripts/k8s-tools failed (exit {done.returncode}):\n{tail(log_path, 80)}")
    if announce is not None:
        announce(f"built the Kubernetes test binaries in {time.monotonic() - started:.0f} s")
    return _parse_tools(done.stdout)


# --------------------------------------------------------------------------------------------------------
# certificates (openssl CLI: present wherever Python's ssl module is, no extra Python package needed)


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def _issue_cert(
    certs: Path, name: str, subject: str, *, sans: Sequence[str] = (), server: bool = False, days: int = 30
) -> tuple[Path, Path]:
    key, csr, crt, ext = (certs / f"{name}{suffix}" for suffix in (".key", ".csr", ".crt", ".ext"))
    _openssl("genrsa", "-out", str(key), "2048", cwd=certs)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=certs)
    usage = "serverAuth" if server else "clientAuth"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", str(days), "-sha256", "-extfile", str(ext), "-out", str(crt),
        cwd=certs,
    )  # fmt: skip
    return crt, key


@dataclass(frozen=True)
class Certificates:
    ca: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    kcm_cert: Path
    kcm_key: Path
    sa_key: Path
    sa_pub: Path

    @classmethod
    def create(cls, certs: Path) -> Certificates:
        if shutil.which("openssl") is None:
            raise ControlPlaneError("'openssl' is not on PATH; it makes the control plane's certificates")
        certs.mkdir(parents=True, exist_ok=True)
        _openssl("genrsa", "-out", "ca.key", "2048", cwd=certs)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=gafka-test-ca", "-days", "30", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", "ca.crt",
            cwd=certs,
        )  # fmt: skip
        serving = _issue_cert(
            certs,
            "apiserver",
            "/CN=kube-apiserver",
            sans=(
                "IP:127.0.0.1",
                f"IP:{SERVICE_IP}",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ),
            server=True,
        )
        admin = _issue_cert(certs, "admin", "/O=system:masters/CN=gafka-admin")
        kcm = _issue_cert(certs, "kube-controller-manager", "/CN=system:kube-controller-manager")
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=certs)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=certs)
        return cls(certs / "ca.crt", certs / "ca.key", *serving, *admin, *kcm, certs / "sa.key", certs / "sa.pub")


# --------------------------------------------------------------------------------------------------------
# processes


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the component when the test process dies without tearing down (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Component:
    """One control-plane process with its output in ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            log_file.write(f"$ {' '.join(self.argv)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self, what: str) -> ControlPlaneError:
        code = None if self.process is None else self.process.poll()
        state = "is still running" if code is None else f"exited with {code}"
        return ControlPlaneError(f"{self.name} {what} ({state}); last lines of {self.log_path}:\n{tail(self.log_path)}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def _wait_until(
    component: Component, what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not component.alive():
            raise component.failure(what)
        with contextlib.suppress(OSError, ssl.SSLError):  # URLError, ConnectionRefused, resets: not up yet
            if probe():
                return
        if time.monotonic() > deadline:
            raise component.failure(f"{what} within {timeout:.0f} s")
        time.sleep(interval)


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return int(response.status) == 200
    except urllib.error.HTTPError:
        return False


# --------------------------------------------------------------------------------------------------------
# the control plane


def new_api_client(kubeconfig: Path) -> k8s_client.ApiClient:
    """A ``kubernetes`` API client for a kubeconfig file (its current context), independent of the global one."""
    load: Callable[..., k8s_client.ApiClient] = k8s_config.new_client_from_config
    return load(config_file=str(kubeconfig), persist_config=False)


def close_api_client(api: k8s_client.ApiClient) -> None:
    close: Callable[[], None] = api.close
    close()


@dataclass
class Kube:
    """What the ``kube`` fixture yields: a kubeconfig, the server URL and a ready API client."""

    kubeconfig: Path
    server: str
    api_client: k8s_client.ApiClient = field(repr=False)
    kubectl_path: str = "kubectl"
    helm_path: str | None = None
    existing: bool = False
    """True when running against an existing cluster (``GAFKA_KUBECONFIG`` / ``USE_EXISTING_CLUSTER``)."""
    control_plane: ControlPlane | None = field(default=None, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """``KUBECONFIG=<kubeconfig>`` on top of ``os.environ``: for kopf, kubectl or helm subprocesses."""

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60.0, input: str | None = None) -> str:
        """Run kubectl against this cluster and return its stdout (raises with stderr on failure)."""
        done = subprocess.run(
            [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
        return done.stdout


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager under ``workdir`` (certs/, etcd/, logs/, kubeconfig)."""

    def __init__(
        self,
        tools: KubeTools,
        workdir: Path,
        *,
        controllers: Sequence[str] | None = None,
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
    ) -> None:
        self.tools = tools
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.kubeconfig = workdir / "kubeconfig"
        env_controllers = os.environ.get("GAFKA_KUBE_CONTROLLERS")
        if controllers is None:
            controllers = env_controllers.split(",") if env_controllers else DEFAULT_CONTROLLERS
        self.controllers = list(controllers)
        self.extra_apiserver_args = list(apiserver_args)
        self.extra_controller_manager_args = list(controller_manager_args)
        self.components: list[Component] = []
        self.certs: Certificates | None = None
        self.server = ""

    # -- lifecycle

    def start(self) -> ControlPlane:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.certs = Certificates.create(self.workdir / "certs")
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests

    def ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the test CA and presenting the admin client certificate."""
        assert self.certs is not None
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        context.load_cert_chain(str(self.certs.admin_cert), str(self.certs.admin_key))
        return context

    def api_client(self) -> k8s_client.ApiClient:
        return new_api_client(self.kubeconfig)

    def logs(self, lines: int = 40) -> str:
        """The tail of every component's log (for assertion messages)."""
        return "\n".join(f"--- {c.log_path}\n{tail(c.log_path, lines)}" for c in self.components)

    # -- components

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        etcd = Component(
            "etcd",
            [
                str(self.tools.etcd),
                "--name=gafka-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=gafka-test={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.log_dir,
        )
        self._launch(etcd)
        _wait_until(etcd, "did not become healthy", lambda: _http_ok(f"{client_url}/health"), START_TIMEOUT_S)
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.certs is not None
        certs = self.certs
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        apiserver = Component(
            "kube-apiserver",
            [
                str(self.tools.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={certs.ca.parent}",
                f"--tls-cert-file={certs.serving_cert}",
                f"--tls-private-key-file={certs.serving_key}",
                f"--client-ca-file={certs.ca}",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--service-account-issuer={self.server}/",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                "--endpoint-reconciler-type=none",
                # Aggregated APIs (the node agent's metrics.k8s.io) are reached at their endpoint's IP: no kube-proxy.
                "--enable-aggregator-routing=true",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
            self.log_dir,
        )
        self._launch(apiserver)
        context = self.ssl_context()
        _wait_until(
            apiserver, "did not become ready", lambda: _http_ok(f"{self.server}/readyz", context), START_TIMEOUT_S
        )

    def _start_controller_manager(self) -> None:
        assert self.certs is not None
        certs = self.certs
        kcm_kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        _write_kubeconfig(kcm_kubeconfig, self.server, certs.ca, certs.kcm_cert, certs.kcm_key, "kcm")
        port = free_port()
        kcm = Component(
            "kube-controller-manager",
            [
                str(self.tools.kube_controller_manager),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--controllers={','.join(self.controllers)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={certs.sa_key}",
                f"--root-ca-file={certs.ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--concurrent-gc-syncs=5",
                *HPA_ARGS,
                "--profiling=false",
                "--v=1",
                *self.extra_controller_manager_args,
            ],
            self.log_dir,
        )
        self._launch(kcm)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate
        _wait_until(kcm, "did not become healthy", lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", insecure), 60)
        if any(c in self.controllers for c in ("*", "serviceaccount-controller", "serviceaccount")):
            # Pods can only be created once their namespace's default ServiceAccount exists.
            context = self.ssl_context()
            _wait_until(
                kcm,
                "created no default ServiceAccount",
                lambda: _http_ok(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default", context),
                START_TIMEOUT_S,
                interval=0.2,
            )

    def _launch(self, component: Component) -> None:
        self.components.append(component)
        component.start()

    def _write_kubeconfig(self) -> None:
        assert self.certs is not None
        _write_kubeconfig(
            self.kubeconfig, self.server, self.certs.ca, self.certs.admin_cert, self.certs.admin_key, "gafka-test"
        )


def _write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, name: str) -> None:
    write_kubeconfig(path, server, ca, name, {"client-certificate": str(cert), "client-key": str(key)})


def write_kubeconfig(
    path: Path, server: str, ca: Path, name: str, user: Mapping[str, str], namespace: str = "default"
) -> None:
    """A one-context kubeconfig (readable by its owner only): ``user`` is the credential, a client certificate
    or a ServiceAccount's token."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": name, "user": dict(user)}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


# --------------------------------------------------------------------------------------------------------
# existing clusters (kind)


def existing_cluster_kubeconfig(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The kubeconfig of an existing cluster to use instead of starting one, or None.

    ``GAFKA_KUBECONFIG=<path>`` wins; otherwise ``USE_EXISTING_CLUSTER=true`` (envtest's switch) uses
    ``$KUBECONFIG`` (its first entry) or ``~/.kube/config``.
    """
    explicit = environ.get("GAFKA_KUBECONFIG")
    if explicit:
        return Path(explicit).expanduser()
    if environ.get("USE_EXISTING_CLUSTER", "").lower() in {"1", "true", "yes"}:
        kubeconfig = environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        return Path(kubeconfig).expanduser() if kubeconfig else Path.home() / ".kube" / "config"
    return None


def load_existing_cluster(kubeconfig: Path) -> Kube:
    if not kubeconfig.is_file():
        raise ControlPlaneError(f"existing-cluster kubeconfig {kubeconfig} does not exist")
    api = new_api_client(kubeconfig)
    server = str(api.configuration.host)
    k8s_client.VersionApi(api).get_code(_request_timeout=30)  # fail early and clearly when it is unreachable
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return Kube(
        kubeconfig=kubeconfig,
        server=server,
        api_client=api,
        kubectl_path=shutil.which("kubectl") or "kubectl",
        helm_path=shutil.which("helm"),
        existing=True,
        env=env,
    )


# --------------------------------------------------------------------------------------------------------
# the pytest fixture

KUBE_KEY = pytest.StashKey[Kube]()


def _announcer(config: pytest.Config) -> Callable[[str], None]:
    """Print straight to the terminal, past output capturing (a first build is long and silent otherwise)."""

    def announce(message: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        disabled = getattr(capture, "global_and_fixture_disabled", None)
        with disabled() if disabled is not None else contextlib.nullcontext():
            config.get_terminal_writer().line(f"[kube] {message}", yellow=True)

    return announce


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A real Kubernetes API server for the session (or an existing cluster, see the module docstring).

    Builds the binaries on first use (a failed build fails the tests; only a machine without ``go`` skips).
    """
    existing = existing_cluster_kubeconfig()
    if existing is not None:
        cluster = load_existing_cluster(existing)
        request.config.stash[KUBE_KEY] = cluster
        try:
            yield cluster
        finally:
            close_api_client(cluster.api_client)
        return

    workdir = tmp_path_factory.mktemp("kube")
    try:
        tools = ensure_tools(workdir / "k8s-tools-build.log", announce=_announcer(request.config))
    except ToolsUnavailableError as unavailable:
        pytest.skip(str(unavailable))
    plane = ControlPlane(tools, workdir).start()
    api = plane.api_client()
    cluster = Kube(
        kubeconfig=plane.kubeconfig,
        server=plane.server,
        api_client=api,
        kubectl_path=str(tools.kubectl),
        helm_path=str(tools.helm),
        control_plane=plane,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
    )
    request.config.stash[KUBE_KEY] = cluster
    try:
        yield cluster
    finally:
        close_api_client(api)
        plane.stop()
