"""``pip install gafka`` as an application that only produces and consumes gets it: the SDK and the CLI with
their own few packages, in a fresh virtual environment of their own, talking to a real broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import unique_topic

if TYPE_CHECKING:
    from conftest import BrokerProcess

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = {"starlette", "uvicorn", "prometheus-client", "pyyaml", "httpx", "kopf", "kubernetes"}
ROUND_TRIP = """
import sys
from gafka import Admin, Consumer, Producer
url, topic = sys.argv[1], sys.argv[2]
with Admin(url) as admin:
    admin.create_topic(topic, 1)
with Producer(url) as producer:
    producer.send(topic, b"from the sdk alone").result(30)
with Consumer(url, auto_offset_reset="earliest") as consumer:
    consumer.assign([(topic, 0)])
    records = []
    while not records:
        records = consumer.poll(5)
print(records[0].value.decode())
"""

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GAFKA_", "PIP_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, env=env, timeout=600, check=False, **kwargs
    )


def test_the_sdk_installs_alone_and_talks_to_a_broker(shared_broker: BrokerProcess, tmp_path: Path) -> None:
    source = tmp_path / "source"  # what the package is built from, as the images copy it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("client", "broker", "operator"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    created = _run(sys.executable, "-m", "venv", venv)
    assert created.returncode == 0, created.stderr
    python, gafka = venv / "bin" / "python", venv / "bin" / "gafka"
    installed = _run(python, "-m", "pip", "install", "-q", source)
    assert installed.returncode == 0, installed.stderr
    listed = _run(python, "-m", "pip", "list", "--format=json")
    names = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert "gafka" in names
    assert not names & SERVER_PACKAGES, f"the SDK pulled in {sorted(names & SERVER_PACKAGES)}"

    topic = unique_topic("sdk-alone")
    round_trip = _run(python, "-c", ROUND_TRIP, shared_broker.url, topic)
    assert round_trip.returncode == 0, round_trip.stderr
    assert round_trip.stdout.strip() == "from the sdk alone"
    listing = _run(gafka, "topics", "list", "-b", shared_broker.url)
    assert listing.returncode == 0 and topic in listing.stdout, listing.stderr
    dev = _run(gafka, "dev", "--data-dir", tmp_path / "data")
    assert dev.returncode == 2
    assert "pip install 'gafka[broker]'" in dev.stderr and "Traceback" not in dev.stderr, dev.stderr
