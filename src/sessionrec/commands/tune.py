"""`sessionrec tune MODEL --grid key=v1,v2 ...`: grid search selected on validation only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.commands.reproduce import (
    DataRootOpt,
    EpochsOpt,
    FractionOpt,
    MinutesOpt,
    ProgressOpt,
    RerunOpt,
    RunsDirOpt,
    SeedsOpt,
    SetOpt,
    command_line,
)


def register(app: typer.Typer) -> None:
    """Add `tune` to the CLI."""

    @app.command("tune")
    def tune_cmd(
        model: Annotated[str, typer.Argument(help="A registered model name.")],
        grid: Annotated[
            list[str] | None,
            typer.Option(
                "--grid",
                help="key=v1,v2,...: values of a hyper-parameter or training "
                "setting; repeatable (the grid is their product).",
            ),
        ] = None,
        dataset: Annotated[
            list[str] | None,
            typer.Option(help="Dataset name or directory; repeatable (each tuned on its own)."),
        ] = None,
        data_root: DataRootOpt = None,
        epochs: EpochsOpt = 30,
        max_minutes: MinutesOpt = None,
        train_fraction: FractionOpt = 1.0,
        seeds: SeedsOpt = 1,
        set_: SetOpt = None,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Output directory (default results/tune/MODEL)."),
        ] = None,
        runs_dir: RunsDirOpt = Path("results/runs"),
        rerun: RerunOpt = False,
        progress: ProgressOpt = False,
    ) -> None:
        """Grid search selected on validation only; the chosen point is tested once."""
        from sessionrec.cli import parse_assignments
        from sessionrec.models import get
        from sessionrec.reproduce.budget import Budget
        from sessionrec.reproduce.tune import parse_grid, tune, tune_markdown

        get(model)
        budget = Budget(epochs, max_minutes, train_fraction, seeds, parse_assignments(set_ or []))
        results = tune(
            model,
            dataset or [],
            parse_grid(grid or []),
            budget,
            runs_dir,
            out or Path("results/tune") / model,
            data_root,
            progress,
            rerun,
            command_line(),
            typer.echo,
        )
        typer.echo(tune_markdown(results))
