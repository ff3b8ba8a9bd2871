"""`sessionrec tune MODEL --grid key=v1,v2 ...`: grid search selected on validation only."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sessionrec.commands.options import (
    DataRoot,
    ModelArg,
    Progress,
    Rerun,
    RunsDir,
    takes_budget,
)

if TYPE_CHECKING:
    from sessionrec.reproduce.budget import Budget

Grid = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        help="key=v1,v2,...: values of a hyper-parameter or training "
        "setting; repeatable (the grid is their product).",
    ),
]
Datasets = Annotated[
    list[str] | None,
    typer.Option(help="Dataset name or directory; repeatable (each tuned on its own)."),
]
TuneOut = Annotated[
    Path | None, typer.Option("--out", help="Output directory (default results/tune/MODEL).")
]


@takes_budget
def tune(
    model: ModelArg,
    grid: Grid = None,
    dataset: Datasets = None,
    data_root: DataRoot = None,
    *,
    budget: "Budget",  # the options of options.budget_options, here in --help
    out: TuneOut = None,
    runs_dir: RunsDir = Path("results/runs"),
    rerun: Rerun = False,
    progress: Progress = False,
) -> None:
    """Grid search selected on validation only; the chosen point is tested once."""
    from sessionrec.models import get
    from sessionrec.provenance import command_line
    from sessionrec.reproduce.tune import parse_grid, tune_markdown
    from sessionrec.reproduce.tune import tune as run_grid

    get(model)
    results = run_grid(
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
