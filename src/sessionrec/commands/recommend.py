"""`sessionrec recommend RUN_DIR --session ...`: the top-k next items for one session."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from sessionrec.commands.options import RunDirArg
from sessionrec.commands.output import out
from sessionrec.errors import ConfigError


def recommend(
    run_dir: RunDirArg,
    session: Annotated[str, typer.Option(help="Item ids in click order, comma-separated.")],
    k: Annotated[int, typer.Option(help="How many items.")] = 20,
    ann: Annotated[
        str | None,
        typer.Option(
            help="Top-k through an index: int8 (exact), hnsw, ivf or flat (`serve --help`)."
        ),
    ] = None,
) -> None:
    """Top-k next items for one session."""
    from sessionrec.serving import SessionRecommender

    rec = SessionRecommender.load(run_dir, ann=ann)
    items: list[Any] = [x.strip() for x in session.split(",") if x.strip()]
    if rec.vocab.kind == "integer":  # the run's dataset uses integer ids
        try:
            items = [int(x) for x in items]
        except ValueError:
            raise ConfigError(
                f"--session must be comma-separated integer item ids, got '{session}'"
            ) from None
    result = rec.recommend(items, k)
    table = Table(title=f"{rec.model.name}: next items after {items}")
    table.add_column("rank", justify="right")
    table.add_column("item", justify="right")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(result.pairs(), 1):
        table.add_row(str(rank), str(item), f"{score:.4f}")
    out.print(table)
    if result.unknown_items:
        out.print(f"unknown items (dropped): {', '.join(map(str, result.unknown_items))}")
