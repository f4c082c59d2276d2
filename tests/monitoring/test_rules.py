"""The alert and recording rules under promtool: the file is clean and every alert has a unit test that fires it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .conftest import REPO, RULES

UNIT_TESTS = Path(__file__).parent / "alerts_test.yaml"


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)


def test_promtool_check_rules_is_clean(prometheus_bin: dict[str, str]) -> None:
    result = _promtool(prometheus_bin["promtool"], "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass(prometheus_bin: dict[str, str]) -> None:
    result = _promtool(prometheus_bin["promtool"], "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired = {
        case["alertname"]
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired
    assert {
        "GafkaBrokerDown",
        "GafkaOfflinePartitions",
        "GafkaUnderReplicatedPartitions",
        "GafkaDiskFillingUp",
        "GafkaConsumerLagGrowing",
        "GafkaProduceLatencyHigh",
        "GafkaCertificateExpiringSoon",
    } <= alerts
