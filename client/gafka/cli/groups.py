"""``gafka groups list|describe|reset-offsets|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gafka.admin import Admin
from gafka.cli.output import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, cli_command, emit_json, print_table

app = typer.Typer(help="List, describe (with lag), reset and delete consumer groups.", no_args_is_help=True)


@app.command("list")
@cli_command
def list_(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.TABLE) -> None:
    """List consumer groups."""
    with Admin(bootstrap) as admin:
        groups = admin.list_groups()
    if output is OutputFormat.JSON:
        emit_json({"groups": groups})
        return
    print_table(
        ["GROUP", "STATE", "MEMBERS"],
        [
            [g.get("group") or g.get("group_id") or g.get("name"), g.get("state"), _count(g.get("members"))]
            for g in groups
        ],
    )


def _count(members: Any) -> Any:
    return len(members) if isinstance(members, list) else members


def _lag_rows(description: dict[str, Any], admin: Admin, group: str) -> list[dict[str, Any]]:
    """Per partition offsets and lag: the broker's own numbers when it gives them, else computed."""
    for key in ("partitions", "offsets", "lag"):
        rows = description.get(key)
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "lag" in rows[0]:
            return rows
    return admin.group_lag(group)


@app.command("describe")
@cli_command
def describe(
    group: Annotated[str, typer.Argument(help="Group id.")],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """State, members with their partitions, and per-partition committed offset, end offset and lag."""
    with Admin(bootstrap) as admin:
        description = admin.describe_group(group)
        lag = _lag_rows(description, admin, group)
    if output is OutputFormat.JSON:
        emit_json({**description, "lag": lag})
        return
    epoch = description.get("epoch", description.get("group_epoch", "?"))
    typer.echo(f"group {group}: state {description.get('state', '?')}, epoch {epoch}")
    members = description.get("members") or []
    print_table(
        ["MEMBER", "INSTANCE", "EPOCH", "PARTITIONS"],
        [
            [
                m.get("member_id"),
                m.get("instance_id"),
                m.get("member_epoch", m.get("epoch")),
                " ".join(
                    f"{a['topic']}-{p}"
                    for a in m.get("assignment", [])
                    if isinstance(a, dict)
                    for p in a.get("partitions", [])
                ),
            ]
            for m in members
        ],
        title="members",
    )
    print_table(
        ["TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG"],
        [
            [
                row.get("topic"),
                row.get("partition"),
                row.get("committed_offset", row.get("offset")),
                row.get("log_end_offset"),
                row.get("lag"),
            ]
            for row in lag
        ],
        title="offsets",
    )


@app.command("reset-offsets")
@cli_command
def reset_offsets(
    group: Annotated[str, typer.Argument(help="Group id (it must have no active members).")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic whose offsets to reset.")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="To the log start.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="To the end.")] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset", help="To this offset.")] = None,
    to_timestamp: Annotated[
        int | None, typer.Option("--to-timestamp", help="To the first record at/after this time (ms).")
    ] = None,
    partition: Annotated[list[int] | None, typer.Option("--partition", "-p", help="Only these partitions.")] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Set the group's committed offsets of a topic (only while the group is empty)."""
    targets: list[str | int] = []
    if to_earliest:
        targets.append("earliest")
    if to_latest:
        targets.append("latest")
    if to_offset is not None:
        targets.append(to_offset)
    if to_timestamp is not None:
        targets.append(f"timestamp:{to_timestamp}")
    if len(targets) != 1:
        raise ValueError("give exactly one of --to-earliest, --to-latest, --to-offset, --to-timestamp")
    with Admin(bootstrap) as admin:
        done = admin.reset_group_offsets(group, topic, targets[0], partition)
    rows = [{"topic": tp.topic, "partition": tp.partition, "offset": offset} for tp, offset in sorted(done.items())]
    if output is OutputFormat.JSON:
        emit_json({"group": group, "offsets": rows})
        return
    print_table(["TOPIC", "PARTITION", "NEW OFFSET"], [[r["topic"], r["partition"], r["offset"]] for r in rows])


@app.command("delete")
@cli_command
def delete(
    group: Annotated[str, typer.Argument(help="Group id (it must have no active members).")],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Delete a group and its committed offsets."""
    with Admin(bootstrap) as admin:
        admin.delete_group(group)
    if output is OutputFormat.JSON:
        emit_json({"deleted": group})
    else:
        typer.echo(f"deleted group {group}")
