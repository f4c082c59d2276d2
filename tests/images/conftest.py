"""Fixtures of the image tests: ``engine`` (a Docker engine, see :mod:`.engine`) and ``images`` (both built).

``images`` runs ``scripts/images``: on an engine this session started (no registry here) the base image is made
from Debian (``--base-from-debian``); on an engine that was already there, the Dockerfiles' own base is used.
The images are tagged with a hash of their inputs, so an unchanged tree is not built again. A cold build
(debootstrap, then both images) takes ~10 minutes on 2 busy cores, more than a test's timeout: the first test
that uses ``images`` gets :data:`BUILD_TIMEOUT_S`. At the end the engine is stopped and what it left behind on
the host (processes, mounts, interfaces, routes, ip_forward) fails the session's last test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from k8s.conftest import pytest_collection_modifyitems as give_kube_its_build_budget
from k8s.conftest import pytest_runtest_makereport
from k8s.controlplane import kube

from .engine import DockerEngine, EngineUnavailableError, find_or_start

__all__ = ["engine", "images", "kube", "pytest_runtest_makereport"]

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 2400


@dataclass(frozen=True)
class Images:
    broker: str
    operator: str
    base: str


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    give_kube_its_build_budget(config, items)
    users = [item for item in items if "images" in getattr(item, "fixturenames", ())]
    if users:  # pytest-timeout counts fixture set-up: the first user may have to build
        users[0].add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 300))


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    try:
        found = find_or_start()
    except EngineUnavailableError as unavailable:
        pytest.skip(str(unavailable))
    try:
        yield found
    finally:
        left = found.stop()
        assert not left, "the Docker engine left this behind (now cleaned up):\n" + "\n".join(left)


@pytest.fixture(scope="session")
def images(engine: DockerEngine) -> Images:
    argv = ["bash", str(REPO / "scripts" / "images")]
    if engine.owned:
        argv.append("--base-from-debian")
    built = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        env={**engine.env, "DOCKER": engine.cli},
        timeout=BUILD_TIMEOUT_S,
    )
    if built.returncode != 0:
        raise AssertionError(f"scripts/images failed ({built.returncode}):\n{built.stderr[-4000:]}")
    found = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
    return Images(broker=found["BROKER_IMAGE"], operator=found["OPERATOR_IMAGE"], base=found["PYTHON_IMAGE"])
