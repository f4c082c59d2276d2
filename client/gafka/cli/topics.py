"""``gafka topics create|list|describe|alter|delete``."""

from __future__ import annotations

from typing import Annotated

import typer

from gafka.admin import Admin
from gafka.cli.output import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    Output,
    OutputFormat,
    cli_command,
    emit_json,
    parse_configs,
    print_table,
)

app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)

Configs = Annotated[
    list[str] | None, typer.Option("--config", "-c", help="Topic config NAME=VALUE (repeatable).", show_default=False)
]


@app.command("create")
@cli_command
def create(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[int | None, typer.Option("--partitions", "-p", help="Partition count.")] = None,
    replication_factor: Annotated[
        int | None, typer.Option("--replication-factor", "-r", help="Replicas per partition.")
    ] = None,
    config: Configs = None,
    if_not_exists: Annotated[bool, typer.Option("--if-not-exists", help="Succeed if it already exists.")] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Create a topic."""
    with Admin(bootstrap) as admin:
        if if_not_exists:
            topic, created = admin.ensure_topic(name, partitions, replication_factor, parse_configs(config))
        else:
            topic, created = admin.create_topic(name, partitions, replication_factor, parse_configs(config)), True
    if output is OutputFormat.JSON:
        emit_json(topic)
    elif created:
        typer.echo(f"created topic {topic['name']} with {len(topic['partitions'])} partitions")
    else:
        typer.echo(f"topic {topic['name']} already exists with {len(topic['partitions'])} partitions; left as it is")


@app.command("list")
@cli_command
def list_(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.TABLE) -> None:
    """List topics."""
    with Admin(bootstrap) as admin:
        topics = admin.list_topics()
    if output is OutputFormat.JSON:
        emit_json({"topics": topics})
        return
    print_table(
        ["TOPIC", "PARTITIONS", "REPLICATION"],
        [[t["name"], t.get("partitions"), t.get("replication_factor")] for t in topics],
    )


@app.command("describe")
@cli_command
def describe(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Partitions (leader, replicas, ISR, offsets) and configs of a topic."""
    with Admin(bootstrap) as admin:
        topic = admin.describe_topic(name)
    if output is OutputFormat.JSON:
        emit_json(topic)
        return
    print_table(
        ["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG START", "HIGH WATERMARK"],
        [
            [
                p["partition"],
                p.get("leader"),
                ",".join(map(str, p.get("replicas", []))),
                ",".join(map(str, p.get("isr", []))),
                p.get("log_start_offset"),
                p.get("high_watermark"),
            ]
            for p in topic["partitions"]
        ],
        title=f"topic {topic['name']}",
    )
    overrides = topic.get("config_overrides", {})
    print_table(
        ["CONFIG", "VALUE", "SOURCE"],
        [
            [key, value, "topic" if key in overrides else "default"]
            for key, value in sorted(topic.get("configs", {}).items())
        ],
    )


@app.command("alter")
@cli_command
def alter(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    partitions: Annotated[int | None, typer.Option("--partitions", "-p", help="New (larger) partition count.")] = None,
    config: Configs = None,
    delete_config: Annotated[
        list[str] | None, typer.Option("--delete-config", help="Remove a config override (repeatable).")
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Add partitions or change config overrides."""
    configs: dict[str, str | None] = dict(parse_configs(config))
    for key in delete_config or ():
        configs[key] = None
    if partitions is None and not configs:
        raise ValueError("nothing to change: give --partitions, --config or --delete-config")
    with Admin(bootstrap) as admin:
        topic = admin.alter_topic(name, partitions=partitions, configs=configs or None)
    if output is OutputFormat.JSON:
        emit_json(topic)
    else:
        typer.echo(f"altered topic {name}: {len(topic['partitions'])} partitions")


@app.command("delete")
@cli_command
def delete(
    name: Annotated[str, typer.Argument(help="Topic name.")],
    if_exists: Annotated[bool, typer.Option("--if-exists", help="Succeed if it does not exist.")] = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Delete a topic and its data."""
    with Admin(bootstrap) as admin:
        deleted = admin.delete_topic(name, if_exists=if_exists)
    if output is OutputFormat.JSON:
        emit_json({"deleted": name if deleted else None})
    elif deleted:
        typer.echo(f"deleted topic {name}")
    else:
        typer.echo(f"topic {name} did not exist; nothing deleted")
