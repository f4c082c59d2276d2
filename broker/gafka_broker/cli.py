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


def _run(flags: dict[str, Any], config_file: Path | None, *, announce: bool = False) -> None:
    try:
        config = load_config(flags, os.environ, config_file)
    except ConfigError as exc:
        typer.echo(f"gafka: {exc}", err=True)
        raise typer.Exit(code=2) from None
    from gafka_broker.server import run  # imported late: keeps `gafka --help` fast

    def say(url: str) -> None:
        typer.echo(f"gafka dev: bootstrap URL {url}  (data in {config.data_dir}; Ctrl-C to stop)")

    code = run(config, announce=say if announce else None)
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add the broker's commands to the ``gafka`` CLI."""

    @app.command("broker")
    def broker(
        data_dir: Annotated[Path | None, _opt("data_dir")] = None,
        listen: Annotated[str | None, _opt("listen")] = None,
        broker_id: Annotated[int | None, _opt("broker_id")] = None,
        cluster_id: Annotated[str | None, _opt("cluster_id")] = None,
        advertised_url: Annotated[str | None, _opt("advertised_url")] = None,
        auto_create_topics: Annotated[
            bool | None,
            typer.Option(
                "--auto-create-topics/--no-auto-create-topics", help=_HELP["auto_create_topics"], show_default=False
            ),
        ] = None,
        default_partitions: Annotated[int | None, _opt("default_partitions")] = None,
        default_replication_factor: Annotated[int | None, _opt("default_replication_factor")] = None,
        max_request_bytes: Annotated[int | None, _opt("max_request_bytes")] = None,
        max_records_per_request: Annotated[int | None, _opt("max_records_per_request")] = None,
        max_concurrent_long_polls: Annotated[int | None, _opt("max_concurrent_long_polls")] = None,
        max_fetch_bytes: Annotated[int | None, _opt("max_fetch_bytes")] = None,
        max_wait_ms: Annotated[int | None, _opt("max_wait_ms")] = None,
        max_connections: Annotated[int | None, _opt("max_connections")] = None,
        retention_check_interval_ms: Annotated[int | None, _opt("retention_check_interval_ms")] = None,
        flush_check_interval_ms: Annotated[int | None, _opt("flush_check_interval_ms")] = None,
        checkpoint_interval_ms: Annotated[int | None, _opt("checkpoint_interval_ms")] = None,
        shutdown_timeout_ms: Annotated[int | None, _opt("shutdown_timeout_ms")] = None,
        log_level: Annotated[str | None, _opt("log_level")] = None,
        config: Annotated[
            Path | None,
            typer.Option("--config", help="YAML file of settings (default: $GAFKA_CONFIG).", show_default=False),
        ] = None,
    ) -> None:
        """Run one broker (a complete one-node cluster): flags > GAFKA_* environment > YAML file > defaults."""
        flags = {
            "data_dir": data_dir,
            "listen": listen,
            "broker_id": broker_id,
            "cluster_id": cluster_id,
            "advertised_url": advertised_url,
            "auto_create_topics": auto_create_topics,
            "default_partitions": default_partitions,
            "default_replication_factor": default_replication_factor,
            "max_request_bytes": max_request_bytes,
            "max_records_per_request": max_records_per_request,
            "max_concurrent_long_polls": max_concurrent_long_polls,
            "max_fetch_bytes": max_fetch_bytes,
            "max_wait_ms": max_wait_ms,
            "max_connections": max_connections,
            "retention_check_interval_ms": retention_check_interval_ms,
            "flush_check_interval_ms": flush_check_interval_ms,
            "checkpoint_interval_ms": checkpoint_interval_ms,
            "shutdown_timeout_ms": shutdown_timeout_ms,
            "log_level": log_level,
        }
        _run(flags, config)

    @app.command("dev")
    def dev(
        brokers: Annotated[int, typer.Option("--brokers", help="Number of brokers (only 1 for now).")] = 1,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the data goes.")] = Path("gafka-data"),
        listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")] = "127.0.0.1:9092",
        auto_create_topics: Annotated[
            bool,
            typer.Option(
                "--auto-create-topics/--no-auto-create-topics",
                help="Create an unknown topic on its first produce (with the defaults).",
            ),
        ] = False,
    ) -> None:
        """Run a local development cluster and print its bootstrap URL; Ctrl-C stops it cleanly."""
        if brokers != 1:
            typer.echo(
                f"gafka dev: --brokers {brokers} is not available yet: multi-broker clusters come with replication; "
                "run with --brokers 1",
                err=True,
            )
            raise typer.Exit(code=2)
        flags = {"data_dir": data_dir, "listen": listen, "auto_create_topics": auto_create_topics}
        _run(flags, None, announce=True)
