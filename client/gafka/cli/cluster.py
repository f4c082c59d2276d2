"""``gafka cluster status``: brokers, partition leaders, ISR and under-replicated partitions."""

from __future__ import annotations

from typing import Any

import typer

from gafka.admin import Admin
from gafka.cli.output import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, cli_command, emit_json, print_table

app = typer.Typer(help="Cluster health.", no_args_is_help=True)


def cluster_status(admin: Admin) -> dict[str, Any]:
    """The cluster document plus every partition's leader/replicas/ISR and the under-replicated ones."""
    cluster = admin.cluster()
    partitions: list[dict[str, Any]] = []
    for summary in admin.list_topics():
        topic = admin.describe_topic(summary["name"])
        for p in topic["partitions"]:
            replicas = list(p.get("replicas", []))
            isr = list(p.get("isr", []))
            partitions.append(
                {
                    "topic": topic["name"],
                    "partition": p["partition"],
                    "leader": p.get("leader"),
                    "replicas": replicas,
                    "isr": isr,
                    "under_replicated": len(isr) < len(replicas),
                    "offline": p.get("leader", -1) in (None, -1),
                }
            )
    return {
        **cluster,
        "partitions": partitions,
        "under_replicated_partitions": sum(1 for p in partitions if p["under_replicated"]),
        "offline_partitions": sum(1 for p in partitions if p["offline"]),
    }


def controller_name(cluster: dict[str, Any]) -> str:
    """``broker 0`` when a broker is its own controller, else the controller process's URL."""
    controller = cluster.get("controller")
    if isinstance(controller, int) and controller >= 0:
        return f"broker {controller}"
    return str(cluster.get("controller_url") or "unknown")


def member_rows(cluster: dict[str, Any]) -> list[list[Any]]:
    """One row a broker with its role (fenced ones say so), and one for a controller that runs on its own."""
    controller = cluster.get("controller")
    rows: list[list[Any]] = []
    for broker in cluster.get("brokers", []):
        role = "broker+controller" if broker["id"] == controller else "broker"
        rows.append([broker["id"], broker.get("url"), f"{role} (fenced)" if broker.get("fenced") else role])
    if not (isinstance(controller, int) and controller >= 0) and cluster.get("controller_url"):
        rows.append([None, cluster["controller_url"], "controller"])
    return rows


@app.command("status")
@cli_command
def status(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.TABLE) -> None:
    """Brokers, leaders, ISR and under-replicated partitions."""
    with Admin(bootstrap) as admin:
        document = cluster_status(admin)
    if output is OutputFormat.JSON:
        emit_json(document)
        return
    typer.echo(f"cluster {document.get('cluster_id')}: controller {controller_name(document)}")
    print_table(["BROKER", "URL", "ROLE"], member_rows(document), title="brokers")
    print_table(
        ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "STATUS"],
        [
            [
                p["topic"],
                p["partition"],
                p["leader"],
                ",".join(map(str, p["replicas"])),
                ",".join(map(str, p["isr"])),
                "offline" if p["offline"] else "under-replicated" if p["under_replicated"] else "ok",
            ]
            for p in document["partitions"]
        ],
        title="partitions",
    )
    typer.echo(
        f"{len(document['partitions'])} partitions, {document['under_replicated_partitions']} under-replicated, "
        f"{document['offline_partitions']} offline"
    )
