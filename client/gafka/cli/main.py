"""Entry point of the ``gafka`` command.

Sub-commands that live in other packages (``gafka broker`` and ``gafka dev`` in ``gafka_broker``) plug
in through the ``gafka.cli`` entry-point group, so the SDK never imports the broker.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="gafka",
    help="gafka: a Kubernetes-native, Kafka-like message queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """gafka: a Kubernetes-native, Kafka-like message queue."""
    if version:
        from gafka import __version__

        typer.echo(__version__)
        raise typer.Exit


def _load_plugins() -> None:
    for entry_point in entry_points(group="gafka.cli"):
        register = entry_point.load()
        register(app)


def main() -> None:
    _load_plugins()
    app()


if __name__ == "__main__":
    main()
