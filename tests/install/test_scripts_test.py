"""``scripts/test`` runs in a virtual environment of its own (created when missing, reused warm), never the
system's Python, and ``--quick`` needs no JDK, no Kafka jars and no Kubernetes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1200)]


def _scripts_test(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "venv" not in p)
    env["GAFKA_TEST_VENV"] = str(venv)
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "test"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1100,
        check=False,
    )


def test_scripts_test_quick_uses_a_virtualenv_of_its_own(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = _scripts_test(venv, "--quick", "tests/broker/test_partitioner.py", "-q", "-p", "no:cacheprovider")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert " passed" in first.stdout
    assert (venv / "bin" / "python").exists()
    editable = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import gafka, sys; print(gafka.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert editable.stdout.strip().startswith(str(ROOT / "client"))
    created = (venv / "bin" / "python").lstat().st_mtime_ns
    again = _scripts_test(venv, "--quick", "tests/broker/test_partitioner.py", "-q", "-p", "no:cacheprovider")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (venv / "bin" / "python").lstat().st_mtime_ns == created, "the warm environment is reused"
    for tool in ("kafka-tools", "k8s-tools", "mvn", "apt-get"):
        assert tool not in first.stderr + again.stderr
