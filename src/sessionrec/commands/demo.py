"""`sessionrec demo`: the demo models on the built-in synthetic data, a table and two PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.commands.output import metrics_table, out


def demo(
    epochs: Annotated[
        int, typer.Option(help="Epochs per neural model (FOCOL: at most 2, see demo.py).")
    ] = 3,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo's runs go.")] = Path(
        "runs/demo"
    ),
    models: Annotated[
        str | None, typer.Option(help="Only these demo models, comma-separated (default: all).")
    ] = None,
    sessions: Annotated[
        int, typer.Option(help="Synthetic sessions to generate (fewer: faster, weaker models).")
    ] = 24000,
) -> None:
    """Train and evaluate the models on the built-in synthetic data; print a results table,
    draw HR/MRR per model and FOCOL's learned distance weights to PNG."""
    from sessionrec.demo import demo_models, next_steps, run_demo

    names = demo_models(models)
    result = run_demo(epochs, out_dir, console=out, models=names, sessions=sessions)
    stats = result.stats
    title = (
        f"synthetic data: {stats['fit_examples']:,} training examples, {stats['test_cases']:,} "
        f"test cases, {stats['max_item_id']:,} items; full ranking (%)"
    )
    out.print(metrics_table(title, result.rows, extra=result.extra, measures=("hr", "mrr")))
    for path in result.figures:
        out.print(f"wrote {path}", markup=False, highlight=False)
    for line in next_steps(out_dir, names):
        out.print(line, markup=False, highlight=False)
