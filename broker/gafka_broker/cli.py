"""``gafka broker`` and ``gafka dev``: registered into the ``gafka`` command through an entry point."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the broker's commands to the ``gafka`` CLI."""

    @app.command("broker")
    def broker() -> None:
        """Run one broker."""
        raise typer.Exit(code=2)
