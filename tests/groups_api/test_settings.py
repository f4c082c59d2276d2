"""The group settings: Kafka's KIP-848 defaults, their floors, and the heartbeat below the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gafka_broker.config import ConfigError, load_config


def test_defaults_are_kafkas(tmp_path: Path) -> None:
    config = load_config({"data_dir": tmp_path}, {}, None)
    assert (
        config.offsets_topic_num_partitions,
        config.group_session_timeout_ms,
        config.group_heartbeat_interval_ms,
    ) == (
        50,
        45_000,
        5_000,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GAFKA_GROUP_SESSION_TIMEOUT_MS": "999"}, "GAFKA_GROUP_SESSION_TIMEOUT_MS"),
        ({"GAFKA_GROUP_HEARTBEAT_INTERVAL_MS": "99"}, "GAFKA_GROUP_HEARTBEAT_INTERVAL_MS"),
        ({"GAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "0"}, "GAFKA_OFFSETS_TOPIC_NUM_PARTITIONS"),
        ({"GAFKA_GROUP_SESSION_TIMEOUT_MS": "5000"}, "must be below group_session_timeout_ms"),
    ],
)
def test_out_of_range_settings_are_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"data_dir": tmp_path}, env, None)


def test_short_timeouts_for_tests_are_allowed(tmp_path: Path) -> None:
    env = {"GAFKA_GROUP_SESSION_TIMEOUT_MS": "1000", "GAFKA_GROUP_HEARTBEAT_INTERVAL_MS": "100"}
    config = load_config({"data_dir": tmp_path}, env, None)
    assert (config.group_session_timeout_ms, config.group_heartbeat_interval_ms) == (1000, 100)
