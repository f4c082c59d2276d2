"""Broker settings: precedence flag > GAFKA_* environment > YAML file > default, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gafka_broker.config import SETTINGS, BrokerConfig, ConfigError, load_config, parse_listen


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gafka.yaml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config({"data_dir": tmp_path}, {}, None)
    assert config == BrokerConfig(data_dir=tmp_path)
    assert config.listen == "0.0.0.0:9092"
    assert config.auto_create_topics is False
    assert config.default_partitions == 1
    assert config.default_replication_factor == 1


def test_data_dir_is_required() -> None:
    with pytest.raises(ConfigError, match=r"--data-dir.*GAFKA_DATA_DIR"):
        load_config({}, {}, None)


def test_flag_beats_env_beats_yaml_beats_default(tmp_path: Path) -> None:
    yaml_file = write_yaml(
        tmp_path,
        "data_dir: /from/yaml\nmax_records_per_request: 30\ndefault_partitions: 3\nmax_wait_ms: 33\n",
    )
    env = {"GAFKA_MAX_RECORDS_PER_REQUEST": "20", "GAFKA_DEFAULT_PARTITIONS": "2"}
    flags = {"max_records_per_request": 10, "default_partitions": None}
    config = load_config(flags, env, yaml_file)
    assert config.max_records_per_request == 10  # flag
    assert config.default_partitions == 2  # env (the flag was not given)
    assert config.max_wait_ms == 33  # yaml
    assert config.data_dir == Path("/from/yaml")
    assert config.max_fetch_bytes == 16 * 1024 * 1024  # default


def test_yaml_file_from_environment(tmp_path: Path) -> None:
    yaml_file = write_yaml(tmp_path, "data-dir: /d\nauto-create-topics: true\n")
    config = load_config({}, {"GAFKA_CONFIG": str(yaml_file)}, None)
    assert config.data_dir == Path("/d")
    assert config.auto_create_topics is True


def test_env_values_are_parsed(tmp_path: Path) -> None:
    env = {
        "GAFKA_DATA_DIR": str(tmp_path),
        "GAFKA_LISTEN": "[::1]:9000",
        "GAFKA_AUTO_CREATE_TOPICS": "yes",
        "GAFKA_BROKER_ID": "7",
        "GAFKA_LOG_LEVEL": "DEBUG",
        "GAFKA_ADVERTISED_URL": "http://broker-7.example:9000/",
        "GAFKA_BOOTSTRAP": "ignored: other gafka tools use the prefix",
    }
    config = load_config({}, env, None)
    assert config.listen == "[::1]:9000"
    assert (config.listen_host, config.listen_port) == ("::1", 9000)
    assert config.auto_create_topics is True
    assert config.broker_id == 7
    assert config.log_level == "debug"
    assert config.url() == "http://broker-7.example:9000"


def test_log_cleaner_and_offsets_retention_settings(tmp_path: Path) -> None:
    defaults = load_config({"data_dir": tmp_path}, {}, None)
    assert defaults.log_cleaner_enable is True
    assert defaults.log_cleaner_io_max_bytes_per_second == 0  # unlimited, as Kafka's default
    assert (defaults.offsets_retention_minutes, defaults.offsets_retention_check_interval_ms) == (10_080, 600_000)
    env = {
        "GAFKA_DATA_DIR": str(tmp_path),
        "GAFKA_LOG_CLEANER_ENABLE": "false",
        "GAFKA_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND": "10_000_000",
        "GAFKA_LOG_CLEANER_BACKOFF_MS": "250",
        "GAFKA_OFFSETS_RETENTION_MINUTES": "60",
    }
    config = load_config({}, env, None)
    assert config.log_cleaner_enable is False
    assert config.log_cleaner_io_max_bytes_per_second == 10_000_000
    assert config.log_cleaner_backoff_ms == 250
    assert config.offsets_retention_minutes == 60


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"max_request_bytes": 10}, {}, "flag --max-request-bytes: must be between"),
        ({}, {"GAFKA_BROKER_ID": "one"}, "GAFKA_BROKER_ID: expected an integer"),
        ({}, {"GAFKA_AUTO_CREATE_TOPICS": "maybe"}, "GAFKA_AUTO_CREATE_TOPICS: expected true or false"),
        ({"listen": "9092"}, {}, "expected HOST:PORT"),
        ({"listen": "h:99999"}, {}, "port must be between"),
        ({"log_level": "loud"}, {}, "expected one of"),
        ({"advertised_url": "broker:9092"}, {}, "http://"),
        ({"nonsense": 1}, {}, "unknown settings: nonsense"),
    ],
)
def test_bad_values_name_their_source(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"data_dir": tmp_path, **flags}, env, None)


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_config({}, {}, write_yaml(tmp_path, "colour: blue\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config({}, {}, write_yaml(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config({}, {}, write_yaml(tmp_path, "a: [\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config({}, {}, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="max_wait_ms in"):
        load_config({"data_dir": tmp_path}, {}, write_yaml(tmp_path, "max_wait_ms: -1\n"))


def test_advertised_url_defaults_to_listen(tmp_path: Path) -> None:
    config = BrokerConfig(data_dir=tmp_path, listen="127.0.0.1:9092")
    assert config.url() == "http://127.0.0.1:9092"
    assert config.url(port=5555) == "http://127.0.0.1:5555"
    assert "0.0.0.0" not in BrokerConfig(data_dir=tmp_path).url()


def test_parse_listen() -> None:
    assert parse_listen("localhost:80") == ("localhost", 80)
    assert parse_listen("[::]:0") == ("::", 0)
    with pytest.raises(ValueError):
        parse_listen(":80")


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for setting in SETTINGS:
        assert setting.flag in doc, setting.flag
        assert setting.env in doc, setting.env
        assert f"`{setting.yaml_key}`" in doc, setting.yaml_key
