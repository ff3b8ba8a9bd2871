"""`sessionrec update RUN_DIR --events ...`: completed sessions for a served pop or kNN model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.commands.output import out


def update(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of pop or a kNN model.")],
    events: Annotated[
        Path, typer.Option(help="Completed sessions: a click log (CSV, TSV, Parquet).")
    ],
    session_column: Annotated[str, typer.Option(help="Session column.")] = "SessionId",
    item_column: Annotated[str, typer.Option(help="Item column (the dataset's ids).")] = "ItemId",
    time_column: Annotated[str, typer.Option(help="Time column (orders the clicks).")] = "Time",
    time_format: Annotated[str, typer.Option(help="auto | seconds | milliseconds | iso")] = "auto",
) -> None:
    """Add completed sessions to a served model without retraining (serving/live.py)."""
    import polars as pl

    from sessionrec.data.event_log import EventColumns, load_events
    from sessionrec.models import get
    from sessionrec.models.base import not_online
    from sessionrec.rundir import SESSIONS_LOG_FILE, read_config
    from sessionrec.serving.live import SessionLog, to_sessions
    from sessionrec.serving.vocab import load_vocabulary

    config = read_config(run_dir)
    if not get(config["model"]).learns_online:
        raise not_online(config["model"])
    columns = EventColumns(session_column, item_column, time_column, time_format)
    clicks, _ = load_events(events, columns)
    by_session = (
        clicks.sort("order", "row")
        .group_by("session", maintain_order=True)
        .agg(pl.col("item"), pl.col("order").max().alias("end"), pl.col("row").min())
        .sort("end", "row")
    )
    sessions = by_session["item"].to_list()
    vocab = load_vocabulary(run_dir, config, int(config["num_items"]))
    internal, unknown = to_sessions(sessions, vocab)
    SessionLog(run_dir).append(sessions)
    out.print(
        f"logged {len(sessions):,} sessions ({int(internal.offsets[-1]):,} clicks on known "
        f"items, {len(unknown):,} unknown ids skipped) to {run_dir / SESSIONS_LOG_FILE}: a running "
        "service folds them in before its next answer, `serve` and `recommend` at start",
        highlight=False,
    )
