"""Entry point of the ``gafka`` command.

Sub-commands that live in other packages (``gafka broker`` and ``gafka dev`` in ``gafka_broker``) plug
in through the ``gafka.cli`` entry-point group, so the SDK never imports the broker. A usage error (bad
flag, missing argument) is one line on stderr and exit code 2, never a usage box or a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

try:  # typer >= 0.2x vendors click under typer._click; older ones use click itself
    from typer._click import exceptions as cli_errors
except ImportError:  # pragma: no cover
    from click import exceptions as cli_errors  # type: ignore[no-redef]

from gafka.cli import bench, cluster, consume, groups, produce, topics

app = typer.Typer(
    name="gafka",
    help="gafka: a Kubernetes-native, Kafka-like message queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(topics.app, name="topics")
app.add_typer(groups.app, name="groups")
app.add_typer(cluster.app, name="cluster")
app.add_typer(bench.app, name="bench")
app.command("produce")(produce.produce)
app.command("consume")(consume.consume)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """gafka: a Kubernetes-native, Kafka-like message queue."""
    if version:
        from gafka import __version__

        typer.echo(__version__)
        raise typer.Exit
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit


def _load_plugins() -> None:
    for entry_point in entry_points(group="gafka.cli"):
        register = entry_point.load()
        register(app)


def main() -> None:
    _load_plugins()
    try:
        code = app(standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
        sys.exit(0)
    except cli_errors.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        typer.echo(f"gafka: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except cli_errors.ClickException as exc:
        typer.echo(f"gafka: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("gafka: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
