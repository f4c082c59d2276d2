"""The two images as containers, the way Kubernetes runs them (charts/gafka, the operator's StatefulSets):
read-only root filesystem, a tmpfs on /tmp, the numeric non-root user of the image, SIGTERM to stop.

The containers use the host's network (the test engine has no bridge) and listen on loopback ports from the
kernel. Checked: /healthz answers; the process runs as 10001:10001; the broker stores what it acknowledged on
its volume and nowhere else (``docker diff`` empty, the records back after a restart on the same volume); a
SIGTERM ends both cleanly within the grace period.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.platform import chart_operator_kubeconfig
from gafka import Admin, Consumer, Producer, TopicPartition
from k8s.controlplane import Kube, free_port
from operator_k8s.harness import install_crds

from .conftest import Images
from .engine import DockerEngine

USER = "10001"
GRACE_S = 30


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


class Container:
    """One ``docker run -d`` with the restrictions of the chart's pods; removed (with nothing left) on close."""

    def __init__(self, engine: DockerEngine, image: str, *options: str, command: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self.id = engine.docker(
            "run",
            "-d",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=64m",
            "--network",
            "host",
            f"--stop-timeout={GRACE_S}",
            *options,
            image,
            *command,
        ).strip()

    def wait_healthy(self, url: str, timeout: float = 120) -> None:
        """Until ``url`` answers 200 (while the container runs)."""
        deadline = time.monotonic() + timeout
        while http_status(url) != 200:
            state = self.inspect()["State"]
            if not state["Running"] or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered 200 (state {state}):\n{self.logs()}")
            time.sleep(0.3)

    def inspect(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.engine.docker("inspect", self.id))[0]  # type: ignore[no-any-return]

    def exec(self, *argv: str) -> str:
        return self.engine.docker("exec", self.id, *argv).strip()

    def logs(self) -> str:
        return self.engine.docker("logs", "--tail", "60", self.id, check=False)

    def stop(self) -> int:
        """SIGTERM (the image's STOPSIGNAL) and the exit code; SIGKILL would come only after the grace period."""
        started = time.monotonic()
        self.engine.docker("stop", "-t", str(GRACE_S), self.id, timeout=GRACE_S + 30)
        assert time.monotonic() - started < GRACE_S, f"it took the whole grace period to stop:\n{self.logs()}"
        return int(self.inspect()["State"]["ExitCode"])

    def remove(self) -> None:
        self.engine.docker("rm", "-f", "-v", self.id, check=False)


@pytest.fixture
def volume(engine: DockerEngine) -> Iterator[str]:
    name = f"gafka-images-test-{os.getpid()}-{time.monotonic_ns()}"
    engine.docker("volume", "create", name)
    yield name
    engine.docker("volume", "rm", "-f", name, check=False)


def test_image_size_and_base(engine: DockerEngine, images: Images) -> None:
    for image in (images.broker, images.operator):
        config = json.loads(engine.docker("image", "inspect", image))[0]
        assert config["Config"]["User"] == f"{USER}:{USER}"
        assert config["Os"] == "linux"
    broker = json.loads(engine.docker("image", "inspect", images.broker))[0]
    assert broker["Size"] <= 200 * 1000 * 1000, f"broker image is {broker['Size'] / 1e6:.0f} MB (goal: <= 200 MB)"
    # the broker image carries neither the operator nor the Kubernetes client (the `operator` extra)
    engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        images.broker,
        "-c",
        "import importlib.util as u; assert u.find_spec('kopf') is None and u.find_spec('kubernetes') is None",
    )


def test_broker_container(engine: DockerEngine, images: Images, volume: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    options = ("-v", f"{volume}:/var/lib/gafka", "-e", f"GAFKA_LISTEN=127.0.0.1:{port}")
    broker = Container(engine, images.broker, *options)
    try:
        broker.wait_healthy(f"{url}/healthz")
        broker.wait_healthy(f"{url}/readyz")
        assert broker.exec("id", "-u") == USER and broker.exec("id", "-g") == USER
        assert broker.inspect()["HostConfig"]["ReadonlyRootfs"] is True
        with Admin(url) as admin:
            admin.create_topic("in-a-container", partitions=2)
        with Producer(url, acks="all") as producer:
            for i in range(20):
                producer.send("in-a-container", f"record-{i}", key=str(i)).result(timeout=30)
        assert broker.engine.docker("diff", broker.id).strip() == "", "wrote outside its volume and /tmp"
        assert broker.stop() == 0, broker.logs()
    finally:
        broker.remove()
    # the records were on the volume: a new container on it serves them
    again = Container(engine, images.broker, *options)
    try:
        again.wait_healthy(f"{url}/readyz")
        with Consumer(url, auto_offset_reset="earliest") as consumer:
            consumer.assign([TopicPartition("in-a-container", p) for p in (0, 1)])
            values: set[str] = set()
            deadline = time.monotonic() + 60
            while len(values) < 20 and time.monotonic() < deadline:
                values.update(r.value.decode() for r in consumer.poll(1) if r.value is not None)
        assert values == {f"record-{i}" for i in range(20)}
        assert again.stop() == 0, again.logs()
    finally:
        again.remove()


def test_operator_container(engine: DockerEngine, images: Images, kube: Kube, tmp_path: Path) -> None:
    """The operator image against the test control plane, as the chart's ServiceAccount (the chart's RBAC)."""
    if kube.existing:
        pytest.skip("runs against the local control plane (a kind cluster runs the image itself)")
    install_crds(kube)
    config = tmp_path / "mounted"
    config.mkdir()
    kubeconfig = chart_operator_kubeconfig(kube, tmp_path / "operator.kubeconfig")
    assert kube.control_plane is not None and kube.control_plane.certs is not None
    shutil.copy(kube.control_plane.certs.ca, config / "ca.crt")
    text = kubeconfig.read_text().replace(str(kube.control_plane.certs.ca), "/mnt/ca.crt")
    (config / "kubeconfig").write_text(text)
    # on /mnt (an existing, empty directory: a new mount point would show in `docker diff`), readable by the
    # image's user as a projected ServiceAccount token would be
    for path in (config, *config.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    controller, liveness = free_port(), free_port()
    operator = Container(
        engine,
        images.operator,
        "-v",
        f"{config}:/mnt:ro",
        "-e",
        "KUBECONFIG=/mnt/kubeconfig",
        "-e",
        f"GAFKA_OPERATOR_CONTROLLER_LISTEN=127.0.0.1:{controller}",
        "-e",
        f"GAFKA_OPERATOR_CONTROLLER_URL=http://127.0.0.1:{controller}",
        "-e",
        f"GAFKA_OPERATOR_BROKER_IMAGE={images.broker}",
        command=(
            "--module=gafka_operator.handlers",
            f"--namespace=images-{os.getpid()}",
            "--standalone",
            f"--liveness=http://127.0.0.1:{liveness}/healthz",
        ),
    )
    try:
        operator.wait_healthy(f"http://127.0.0.1:{liveness}/healthz")
        operator.wait_healthy(f"http://127.0.0.1:{controller}/healthz")
        assert operator.exec("id", "-u") == USER
        assert engine.docker("diff", operator.id).strip() == ""
        assert operator.stop() == 0, operator.logs()
    finally:
        operator.remove()
