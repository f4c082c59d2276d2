"""The ``gafka broker`` / ``gafka dev`` commands as processes: flags, environment, YAML, and start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from support import free_ports

from .helpers import wait_for

GAFKA = [sys.executable, "-m", "gafka.cli.main"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GAFKA_")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GAFKA, *args], capture_output=True, text=True, env=env or clean_env(), timeout=60, check=False
    )


def test_dev_refuses_nonsense_in_one_line() -> None:
    result = run("dev", "--brokers", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--brokers" in lines[0]


def test_broker_needs_a_data_dir() -> None:
    result = run("broker", "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "data_dir is required" in result.stderr
    assert "GAFKA_DATA_DIR" in result.stderr


def test_bad_flag_values_are_reported(tmp_path: Path) -> None:
    result = run("broker", "--data-dir", str(tmp_path), "--listen", "nowhere")
    assert result.returncode == 2
    assert "--listen" in result.stderr
    result = run("broker", "--listen", "127.0.0.1:0", env=clean_env(GAFKA_DATA_DIR=str(tmp_path), GAFKA_BROKER_ID="x"))
    assert result.returncode == 2
    assert "GAFKA_BROKER_ID" in result.stderr


def test_dev_prints_the_bootstrap_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "dev.out"
    with out.open("w") as handle:
        process = subprocess.Popen(
            [*GAFKA, "dev", "--port", str(free_ports(1)), "--data-dir", str(tmp_path / "data")],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
    try:
        wait_for(lambda: "bootstrap URL http://127.0.0.1:" in out.read_text(), timeout=60)
        url = out.read_text().split("bootstrap URL ")[1].split()[0]
        wait_for(lambda: _ready(url), timeout=60)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "data" / "broker-0" / ".gafka_cleanshutdown").exists()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def limits(broker: Any) -> dict[str, int]:
    with broker.client() as http:
        return dict(http.get("/v1/cluster").json()["limits"])


def test_precedence_flag_env_yaml_on_a_real_broker(broker_factory: Any, tmp_path: Path) -> None:
    yaml_file = tmp_path / "broker.yaml"
    yaml_file.write_text("max_records_per_request: 30\nmax_fetch_bytes: 300000\nmax_wait_ms: 3000\n")
    env = {"GAFKA_CONFIG": str(yaml_file), "GAFKA_MAX_RECORDS_PER_REQUEST": "20", "GAFKA_MAX_FETCH_BYTES": "200000"}
    broker = broker_factory("--max-records-per-request", "10", env=env)
    got = limits(broker)
    assert (got["max_records_per_request"], got["max_fetch_bytes"], got["max_wait_ms"]) == (10, 200000, 3000)
    broker.stop()
    broker.args = []
    broker.start()
    got = limits(broker)
    assert (got["max_records_per_request"], got["max_fetch_bytes"], got["max_wait_ms"]) == (20, 200000, 3000)
    broker.stop()
    broker.env = {"GAFKA_CONFIG": str(yaml_file)}
    broker.start()
    got = limits(broker)
    assert (got["max_records_per_request"], got["max_fetch_bytes"], got["max_wait_ms"]) == (30, 300000, 3000)


def test_one_data_dir_one_broker(broker_factory: Any) -> None:
    first = broker_factory()
    result = run("broker", "--data-dir", str(first.data_dir), "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "in use by another broker" in result.stderr


def test_data_dir_identity_is_checked(broker_factory: Any) -> None:
    broker = broker_factory("--broker-id", "1")
    assert broker.stop() == 0
    result = run("broker", "--data-dir", str(broker.data_dir), "--listen", "127.0.0.1:0", "--broker-id", "2")
    assert result.returncode == 1
    assert "belongs to broker 1" in result.stderr
    broker.start()  # its own id still works
