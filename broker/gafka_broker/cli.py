"""``gafka broker`` and ``gafka dev``: registered into the ``gafka`` command through an entry point.

Flags mirror :data:`gafka_broker.config.SETTINGS` one for one; a flag left out falls back to its
``GAFKA_*`` variable, then to the YAML file (``--config`` / ``GAFKA_CONFIG``), then to the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from gafka_broker.config import SETTINGS, ConfigError, load_config

_HELP = {setting.name: f"{setting.help} [env: {setting.env}]" for setting in SETTINGS}


def _opt(name: str, *extra: str) -> Any:
    return typer.Option("--" + name.replace("_", "-"), *extra, help=_HELP[name], show_default=False)


def _run(flags: dict[str, Any], config_file: Path | None) -> None:
    try:
        config = load_config(flags, os.environ, config_file)
    except ConfigError as exc:
        typer.echo(f"gafka: {exc}", err=True)
        raise typer.Exit(code=2) from None
    from gafka_broker.server import run  # imported late: keeps `gafka --help` fast

    code = run(config)
    raise typer.Exit(code=code)


_BROKER_MODULES = ("starlette", "uvicorn", "prometheus_client", "yaml", "httpx")


def _require_broker_extra(command: str) -> None:
    """``gafka broker|controller|dev`` need the broker's packages, which ``pip install gafka`` (the SDK and CLI)
    leaves out: say how to get them instead of an ImportError."""
    from importlib.util import find_spec

    missing = [name for name in _BROKER_MODULES if find_spec(name) is None]
    if missing:
        typer.echo(
            f"gafka: `gafka {command}` needs the broker's packages (missing: {', '.join(missing)}); "
            "install them with: pip install 'gafka[broker]'",
            err=True,
        )
        raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Add the broker's commands to the ``gafka`` CLI."""

    @app.command("broker")
    def broker(
        data_dir: Annotated[Path | None, _opt("data_dir")] = None,
        listen: Annotated[str | None, _opt("listen")] = None,
        broker_id: Annotated[int | None, _opt("broker_id")] = None,
        cluster_id: Annotated[str | None, _opt("cluster_id")] = None,
        advertised_url: Annotated[str | None, _opt("advertised_url")] = None,
        controller_url: Annotated[str | None, _opt("controller_url")] = None,
        kafka_listen: Annotated[str | None, _opt("kafka_listen")] = None,
        kafka_advertised: Annotated[str | None, _opt("kafka_advertised")] = None,
        rack: Annotated[str | None, _opt("rack")] = None,
        broker_heartbeat_interval_ms: Annotated[int | None, _opt("broker_heartbeat_interval_ms")] = None,
        broker_session_timeout_ms: Annotated[int | None, _opt("broker_session_timeout_ms")] = None,
        leader_imbalance_check_interval_ms: Annotated[int | None, _opt("leader_imbalance_check_interval_ms")] = None,
        replica_lag_time_max_ms: Annotated[int | None, _opt("replica_lag_time_max_ms")] = None,
        replica_fetch_wait_max_ms: Annotated[int | None, _opt("replica_fetch_wait_max_ms")] = None,
        replica_fetch_max_bytes: Annotated[int | None, _opt("replica_fetch_max_bytes")] = None,
        request_timeout_ms: Annotated[int | None, _opt("request_timeout_ms")] = None,
        auto_create_topics: Annotated[
            bool | None,
            typer.Option(
                "--auto-create-topics/--no-auto-create-topics", help=_HELP["auto_create_topics"], show_default=False
            ),
        ] = None,
        default_partitions: Annotated[int | None, _opt("default_partitions")] = None,
        default_replication_factor: Annotated[int | None, _opt("default_replication_factor")] = None,
        default_min_insync_replicas: Annotated[int | None, _opt("default_min_insync_replicas")] = None,
        max_request_bytes: Annotated[int | None, _opt("max_request_bytes")] = None,
        max_records_per_request: Annotated[int | None, _opt("max_records_per_request")] = None,
        max_concurrent_long_polls: Annotated[int | None, _opt("max_concurrent_long_polls")] = None,
        max_fetch_bytes: Annotated[int | None, _opt("max_fetch_bytes")] = None,
        max_wait_ms: Annotated[int | None, _opt("max_wait_ms")] = None,
        max_connections: Annotated[int | None, _opt("max_connections")] = None,
        retention_check_interval_ms: Annotated[int | None, _opt("retention_check_interval_ms")] = None,
        flush_check_interval_ms: Annotated[int | None, _opt("flush_check_interval_ms")] = None,
        checkpoint_interval_ms: Annotated[int | None, _opt("checkpoint_interval_ms")] = None,
        log_cleaner_enable: Annotated[
            bool | None,
            typer.Option(
                "--log-cleaner-enable/--no-log-cleaner-enable", help=_HELP["log_cleaner_enable"], show_default=False
            ),
        ] = None,
        log_cleaner_io_max_bytes_per_second: Annotated[int | None, _opt("log_cleaner_io_max_bytes_per_second")] = None,
        log_cleaner_backoff_ms: Annotated[int | None, _opt("log_cleaner_backoff_ms")] = None,
        shutdown_timeout_ms: Annotated[int | None, _opt("shutdown_timeout_ms")] = None,
        offsets_topic_num_partitions: Annotated[int | None, _opt("offsets_topic_num_partitions")] = None,
        group_session_timeout_ms: Annotated[int | None, _opt("group_session_timeout_ms")] = None,
        group_heartbeat_interval_ms: Annotated[int | None, _opt("group_heartbeat_interval_ms")] = None,
        offsets_retention_minutes: Annotated[int | None, _opt("offsets_retention_minutes")] = None,
        offsets_retention_check_interval_ms: Annotated[int | None, _opt("offsets_retention_check_interval_ms")] = None,
        log_level: Annotated[str | None, _opt("log_level")] = None,
        config: Annotated[
            Path | None,
            typer.Option("--config", help="YAML file of settings (default: $GAFKA_CONFIG).", show_default=False),
        ] = None,
    ) -> None:
        """Run one broker (a complete one-node cluster): flags > GAFKA_* environment > YAML file > defaults."""
        _require_broker_extra("broker")
        flags = {
            "data_dir": data_dir,
            "listen": listen,
            "broker_id": broker_id,
            "cluster_id": cluster_id,
            "advertised_url": advertised_url,
            "controller_url": controller_url,
            "kafka_listen": kafka_listen,
            "kafka_advertised": kafka_advertised,
            "rack": rack,
            "broker_heartbeat_interval_ms": broker_heartbeat_interval_ms,
            "broker_session_timeout_ms": broker_session_timeout_ms,
            "leader_imbalance_check_interval_ms": leader_imbalance_check_interval_ms,
            "replica_lag_time_max_ms": replica_lag_time_max_ms,
            "replica_fetch_wait_max_ms": replica_fetch_wait_max_ms,
            "replica_fetch_max_bytes": replica_fetch_max_bytes,
            "request_timeout_ms": request_timeout_ms,
            "auto_create_topics": auto_create_topics,
            "default_partitions": default_partitions,
            "default_replication_factor": default_replication_factor,
            "default_min_insync_replicas": default_min_insync_replicas,
            "max_request_bytes": max_request_bytes,
            "max_records_per_request": max_records_per_request,
            "max_concurrent_long_polls": max_concurrent_long_polls,
            "max_fetch_bytes": max_fetch_bytes,
            "max_wait_ms": max_wait_ms,
            "max_connections": max_connections,
            "retention_check_interval_ms": retention_check_interval_ms,
            "flush_check_interval_ms": flush_check_interval_ms,
            "checkpoint_interval_ms": checkpoint_interval_ms,
            "log_cleaner_enable": log_cleaner_enable,
            "log_cleaner_io_max_bytes_per_second": log_cleaner_io_max_bytes_per_second,
            "log_cleaner_backoff_ms": log_cleaner_backoff_ms,
            "shutdown_timeout_ms": shutdown_timeout_ms,
            "offsets_topic_num_partitions": offsets_topic_num_partitions,
            "group_session_timeout_ms": group_session_timeout_ms,
            "group_heartbeat_interval_ms": group_heartbeat_interval_ms,
            "offsets_retention_minutes": offsets_retention_minutes,
            "offsets_retention_check_interval_ms": offsets_retention_check_interval_ms,
            "log_level": log_level,
        }
        _run(flags, config)

    @app.command("controller")
    def controller(
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the cluster metadata is kept.")],
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on (port 0: any free port).")] = (
            "127.0.0.1:9093"
        ),
        broker_session_timeout_ms: Annotated[
            int,
            typer.Option("--broker-session-timeout-ms", help="Fence a broker silent for this long (Kafka: 9000)."),
        ] = 9000,
        tick_ms: Annotated[
            int, typer.Option("--tick-ms", help="How often brokers are checked and leaders elected.")
        ] = 200,
        leader_imbalance_check_interval_ms: Annotated[
            int,
            typer.Option(
                "--leader-imbalance-check-interval-ms",
                help="How often caught-up preferred replicas get leadership back (Kafka: 300000).",
            ),
        ] = 300_000,
        cluster_id: Annotated[
            str | None, typer.Option("--cluster-id", help="Cluster id for a new cluster (default: generated).")
        ] = None,
        log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    ) -> None:
        """Run the cluster controller on its own (brokers join it with --controller-url)."""
        _require_broker_extra("controller")
        from gafka_broker.config import parse_listen
        from gafka_broker.controller.server import StandaloneSettings, run

        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            typer.echo(f"gafka: --listen: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if broker_session_timeout_ms < 10 or tick_ms < 10 or leader_imbalance_check_interval_ms < 10:
            typer.echo(
                "gafka: --broker-session-timeout-ms, --tick-ms and --leader-imbalance-check-interval-ms "
                "must be at least 10",
                err=True,
            )
            raise typer.Exit(code=2)
        settings = StandaloneSettings(
            data_dir=data_dir,
            host=host,
            port=port,
            broker_session_timeout_ms=broker_session_timeout_ms,
            tick_ms=tick_ms,
            leader_imbalance_check_interval_ms=leader_imbalance_check_interval_ms,
            cluster_id=cluster_id,
            log_level=log_level,
        )
        raise typer.Exit(code=run(settings))

    @app.command("console")
    def console(
        bootstrap: Annotated[
            str,
            typer.Option(
                "--bootstrap", "-b", envvar="GAFKA_BOOTSTRAP", help="Broker URL(s) of the cluster, comma-separated."
            ),
        ] = "http://127.0.0.1:9092",
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on (port 0: any free port).")] = (
            "127.0.0.1:8080"
        ),
        log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    ) -> None:
        """Serve the web console for a cluster: open the printed address in a browser."""
        from gafka_broker.config import parse_listen
        from gafka_broker.console.server import run

        urls = [url.strip() for url in bootstrap.split(",") if url.strip()]
        bad = [url for url in urls if not url.startswith(("http://", "https://"))]
        if not urls or bad:
            typer.echo(f"gafka: --bootstrap needs http(s):// URLs (got {bootstrap!r})", err=True)
            raise typer.Exit(code=2)
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            typer.echo(f"gafka: --listen: {exc}", err=True)
            raise typer.Exit(code=2) from None
        raise typer.Exit(code=run(urls, host, port, log_level))

    @app.command("dev")
    def dev(
        brokers: Annotated[
            int, typer.Option("--brokers", help="Number of brokers (3 gives a replicated cluster).")
        ] = 1,
        data_dir: Annotated[
            Path, typer.Option("--data-dir", help="Where the data goes; resumed on the next start.")
        ] = Path("gafka-data"),
        port: Annotated[int, typer.Option("--port", help="Port of the first broker; the others follow.")] = 9092,
        host: Annotated[str, typer.Option("--host", help="Loopback address to serve on.")] = "127.0.0.1",
        kafka_port: Annotated[
            int, typer.Option("--kafka-port", help="Kafka listener of the first broker (the others follow); 0: any.")
        ] = 19092,
        auto_create_topics: Annotated[
            bool,
            typer.Option(
                "--auto-create-topics/--no-auto-create-topics",
                help="Create an unknown topic on its first produce (with the defaults).",
            ),
        ] = False,
        console: Annotated[
            bool, typer.Option("--console/--no-console", help="Serve the web console too (gafka console).")
        ] = True,
        console_port: Annotated[
            int | None, typer.Option("--console-port", help="Port of the web console (default: 8080 or above).")
        ] = None,
    ) -> None:
        """Run a local cluster (a controller and N brokers on loopback) and print its bootstrap URL;
        Ctrl-C or SIGTERM stops it cleanly."""
        _require_broker_extra("dev")
        from gafka_broker.dev import DevError, DevSettings, run

        extra = ("--auto-create-topics",) if auto_create_topics else ()
        settings = DevSettings(
            brokers=brokers,
            data_dir=data_dir,
            host=host,
            port=port,
            kafka_port=kafka_port,
            extra_broker_args=extra,
            console=console,
            console_port=console_port,
        )
        try:
            code = run(settings)
        except DevError as exc:
            typer.echo(f"gafka dev: {exc}", err=True)
            raise typer.Exit(code=2) from None
        raise typer.Exit(code=code)
