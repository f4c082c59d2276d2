"""The ``gafka`` command against a real broker: round trips, admin commands, JSON output, bench, errors."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conftest import unique_topic

if TYPE_CHECKING:
    from conftest import BrokerProcess


def gafka(
    *args: str, url: str | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GAFKA_")}
    if url is not None:
        env["GAFKA_BOOTSTRAP"] = url
    return subprocess.run(
        [sys.executable, "-m", "gafka.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("gafka: ")
    return lines[0]


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def test_produce_then_consume_round_trip(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("cli")
    ok(gafka("topics", "create", topic, "--partitions", "3", url=url))
    lines = [f"line {i}" for i in range(100)]
    ok(gafka("produce", topic, url=url, stdin="\n".join(lines) + "\n"))
    out = ok(gafka("consume", topic, "--from-beginning", "--max-messages", "100", url=url))
    assert sorted(out.splitlines()) == sorted(lines)


def test_keys_partition_and_json_format(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("cli")
    ok(gafka("topics", "create", topic, "-p", "2", url=url))
    ok(gafka("produce", topic, "--key-separator", ":", "--partition", "1", "--acks", "1", url=url, stdin="a:1\nb:2\n"))
    out = ok(gafka("consume", topic, "--from-beginning", "-n", "2", "--format", "json", url=url))
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["partition"], r["offset"], r["key"], r["value"]) for r in records] == [
        (1, 0, "a", "1"),
        (1, 1, "b", "2"),
    ]
    kv = ok(gafka("consume", topic, "--from-beginning", "-n", "2", "-f", "kv", "--partition", "1", url=url))
    assert kv.splitlines() == ["a\t1", "b\t2"]
    tail = ok(gafka("consume", topic, "-p", "1", "--offset", "1", "-n", "1", url=url))
    assert tail == "2\n"


def test_consume_with_group_commits(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    if httpx.get(f"{url}/v1/groups", timeout=10).status_code == 404:
        pytest.skip("the broker has no /v1/groups endpoints yet")
    topic = unique_topic("cli")
    group = f"cli-{topic}"
    ok(gafka("topics", "create", topic, url=url))
    ok(gafka("produce", topic, url=url, stdin="x\ny\nz\n"))
    assert ok(gafka("consume", topic, "-g", group, "--from-beginning", "-n", "2", url=url)) == "x\ny\n"
    assert ok(gafka("consume", topic, "-g", group, "-n", "1", url=url)) == "z\n"
    described = as_json(gafka("groups", "describe", group, "-o", "json", url=url))
    assert {row["partition"]: row["lag"] for row in described["lag"]} == {0: 0}
    assert "LAG" in ok(gafka("groups", "describe", group, url=url))
    assert group in ok(gafka("groups", "list", url=url))
    reset = as_json(gafka("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "-o", "json", url=url))
    assert reset["offsets"] == [{"topic": topic, "partition": 0, "offset": 0}]
    assert ok(gafka("consume", topic, "-g", group, "-n", "3", url=url)) == "x\ny\nz\n"
    ok(gafka("groups", "delete", group, url=url))


def test_topic_admin_commands(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("cli")
    created = as_json(gafka("topics", "create", topic, "-p", "2", "-c", "retention.ms=60000", "-o", "json", url=url))
    assert len(created["partitions"]) == 2
    one_line_error(gafka("topics", "create", topic, url=url), 1)
    ok(gafka("topics", "create", topic, "--if-not-exists", url=url))
    assert topic in [t["name"] for t in as_json(gafka("topics", "list", "-o", "json", url=url))["topics"]]
    assert topic in ok(gafka("topics", "list", url=url))
    altered = as_json(gafka("topics", "alter", topic, "-p", "3", "-c", "retention.ms=120000", "-o", "json", url=url))
    assert len(altered["partitions"]) == 3
    assert altered["configs"]["retention.ms"] == "120000"
    table = ok(gafka("topics", "describe", topic, url=url))
    assert "HIGH WATERMARK" in table and "retention.ms" in table
    status = as_json(gafka("cluster", "status", "-o", "json", url=url))
    assert status["brokers"] and status["under_replicated_partitions"] == 0
    assert any(p["topic"] == topic for p in status["partitions"])
    assert "under-replicated" in ok(gafka("cluster", "status", url=url))
    ok(gafka("topics", "delete", topic, url=url))
    one_line_error(gafka("topics", "describe", topic, url=url), 1)
    ok(gafka("topics", "delete", topic, "--if-exists", url=url))


def test_user_errors_are_one_line(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    line = one_line_error(gafka("produce", "no-such-topic-cli", url=url, stdin="x\n"), 1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line
    line = one_line_error(gafka("consume", "no-such-topic-cli", "-n", "1", url=url), 1)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line
    line = one_line_error(gafka("topics", "list", "--bootstrap", "http://127.0.0.1:1"), 1)
    assert "cannot reach the broker at http://127.0.0.1:1" in line
    line = one_line_error(gafka("topics", "list", "--no-such-flag", url=url), 2)
    assert "No such option" in line
    one_line_error(gafka("topics", "create", url=url), 2)
    one_line_error(gafka("topics", "alter", unique_topic(), url=url), 2)
    one_line_error(gafka("topics", "create", "bad/name", url=url), 1)
    one_line_error(gafka("topics", "create", unique_topic(), "-c", "nonsense", url=url), 2)


def test_bench_produce_consume_and_e2e_json(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("bench")
    produced = as_json(
        gafka("bench", "produce", topic, "--create", "--count", "3000", "--size", "100", "--json", url=url)
    )
    assert produced["messages"] == 3000
    assert produced["msg_per_s"] > 0 and produced["mb_per_s"] > 0
    assert set(produced["latency_ms"]) >= {"p50", "p95", "p99", "p99_9", "max"}
    consumed = as_json(gafka("bench", "consume", topic, "--count", "3000", "--json", url=url))
    assert consumed["messages"] == 3000
    e2e = as_json(gafka("bench", "e2e", topic, "--count", "500", "--rate", "1000", "--json", url=url))
    assert e2e["messages"] == 500
    assert 0 < e2e["latency_ms"]["p50"] < 1000
    text = ok(gafka("bench", "produce", topic, "--count", "200", "--rate", "2000", "--acks", "all", url=url))
    assert "msg/s" in text and "p99" in text


def test_if_exists_flags_say_what_happened(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("cli")
    assert f"created topic {topic} with 3 partitions" in ok(gafka("topics", "create", topic, "-p", "3", url=url))
    again = ok(gafka("topics", "create", topic, "-p", "7", "--if-not-exists", url=url))
    assert again.strip() == f"topic {topic} already exists with 3 partitions; left as it is"
    assert f"deleted topic {topic}" in ok(gafka("topics", "delete", topic, "--if-exists", url=url))
    gone = ok(gafka("topics", "delete", topic, "--if-exists", url=url))
    assert gone.strip() == f"topic {topic} did not exist; nothing deleted"
    assert as_json(gafka("topics", "delete", topic, "--if-exists", "-o", "json", url=url)) == {"deleted": None}


def test_consume_offset_out_of_range_names_the_valid_range(shared_broker: BrokerProcess) -> None:
    url = shared_broker.url
    topic = unique_topic("cli")
    ok(gafka("topics", "create", topic, "-p", "1", url=url))
    ok(gafka("produce", topic, url=url, stdin="a\nb\nc\n"))
    for offset in ("999999", "-1"):
        line = one_line_error(gafka("consume", topic, "--partition", "0", "--offset", offset, "-n", "1", url=url), 1)
        assert f"offset {offset} of {topic}-0 is out of range (valid offsets are 0..3)" in line, line
    assert ok(gafka("consume", topic, "--partition", "0", "--offset", "2", "-n", "1", url=url)) == "c\n"


def test_bootstrap_addresses_are_checked(tmp_path: Any) -> None:
    import http.server
    import threading

    line = one_line_error(gafka("topics", "list", "-b", "ftp://host:21"), 2)
    assert "http:// or https://" in line
    line = one_line_error(gafka("topics", "list", "-b", "http://host:port"), 2)
    assert "port must be a number" in line
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:  # any HTTP service but a broker
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            line = one_line_error(gafka("topics", "list", "-b", f"127.0.0.1:{server.server_port}"), 1)
        finally:
            server.shutdown()
    assert "is not a gafka broker's HTTP API" in line, line
