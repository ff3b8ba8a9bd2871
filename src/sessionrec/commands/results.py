"""`sessionrec results add|table`: the results registry and the tables made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Registry = Annotated[Path, typer.Option("--registry", help="The registry directory.")]


def add(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    protocol: Annotated[
        str,
        typer.Option(help="full | paper | reduced | a recipe's name (sessionrec.results)."),
    ],
    note: Annotated[str, typer.Option(help="One line on what the run shows.")] = "",
    registry: Registry = Path("results/registry"),
    replace: Annotated[
        bool, typer.Option(help="Overwrite the run's existing entry, under any protocol.")
    ] = False,
    command: Annotated[
        str, typer.Option(help="The command that made the run, if its config.json has none.")
    ] = "",
) -> None:
    """Record a finished run in the registry (one JSON, to commit)."""
    from sessionrec.results import add as add_entry

    path = add_entry(run_dir, protocol, registry, note, replace, command)
    typer.echo(f"registered {path}")


def table(
    doc: Annotated[Path, typer.Option(help="The document to update.")] = Path("docs/results.md"),
    registry: Registry = Path("results/registry"),
    check: Annotated[bool, typer.Option(help="Only report whether the tables are stale.")] = False,
) -> None:
    """Regenerate the registry tables of docs/results.md (paper number and difference per cell)."""
    from sessionrec.results import update_doc

    changed = update_doc(doc, registry, check)
    if check and changed:
        typer.echo(f"{doc}: registry tables are stale; run `sessionrec results table`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{doc}: {'updated' if changed else 'up to date'}")
