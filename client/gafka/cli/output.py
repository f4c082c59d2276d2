"""What every CLI command shares: the common options, tables (rich) or JSON (``--output json``), and the
error handling that turns any user error into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import orjson
import typer

from gafka.errors import BrokerUnreachableError, GafkaError

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "Bootstrap",
    "Output",
    "OutputFormat",
    "cli_command",
    "emit_json",
    "fail",
    "parse_configs",
    "print_table",
]

DEFAULT_BOOTSTRAP = "http://127.0.0.1:9092"

P = ParamSpec("P")
R = TypeVar("R")


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


Bootstrap = Annotated[
    str,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar="GAFKA_BOOTSTRAP",
        help="Broker URL(s), comma-separated (or $GAFKA_BOOTSTRAP).",
        show_default=True,
    ),
]
Output = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people, json for scripts.", case_sensitive=False),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``gafka: message`` on stderr and exit with ``code``."""
    typer.echo(f"gafka: {message}", err=True)
    raise typer.Exit(code)


def cli_command(function: Callable[P, R]) -> Callable[P, R]:
    """Run a command body so that no user error ever ends in a traceback.

    Broker errors print their code and message; an unreachable broker says which URL was tried; a bad
    value (ValueError) exits 2 like a bad flag; Ctrl-C exits 130.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokerUnreachableError as exc:
            fail(f"{exc.message} (is a broker running there? set --bootstrap or GAFKA_BOOTSTRAP)")
        except GafkaError as exc:
            fail(str(exc))
        except (ValueError, TypeError) as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            fail(f"{exc.strerror or exc}")

    return wrapper


def _quiet_stdout() -> None:
    """After a closed pipe (``| head``), keep Python from complaining while it flushes stdout at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def emit_json(document: Any) -> None:
    """One JSON document on stdout (indented: people read it too)."""
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """A rich table on stdout; ``None`` shows as ``-``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    Console(soft_wrap=True).print(table)


def parse_configs(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["retention.ms=1000", ...]`` -> ``{"retention.ms": "1000"}``."""
    configs: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {pair!r}")
        configs[name.strip()] = value.strip()
    return configs
