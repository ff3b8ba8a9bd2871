"""`sessionrec reproduce EXPERIMENT`: a table or figure of the FOCOL or LINet paper."""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sessionrec.commands.options import (
    DataRoot,
    Progress,
    Rerun,
    RunsDir,
    takes_budget,
)

if TYPE_CHECKING:
    from sessionrec.reproduce.budget import Budget

Experiment = Annotated[
    str | None, typer.Argument(help="e.g. focol-table2; omit (or --list) to list them.")
]
Datasets = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset",
        help="Dataset name or directory; repeatable or comma-separated "
        "(default: the paper's datasets for the experiment).",
    ),
]
Rows = Annotated[
    list[str] | None,
    typer.Option("--models", help="Only these rows (registry or paper names; comma list)."),
]
ResultsOut = Annotated[
    Path | None, typer.Option("--out", help="Output directory (default results/EXPERIMENT).")
]
Test = Annotated[str, typer.Option(help="Paired test: wilcoxon | ttest.")]
SignificanceMetric = Annotated[
    str, typer.Option(help="Per-case values the paired test compares (hr@K or mrr@K).")
]
DryRun = Annotated[
    bool, typer.Option(help="Only print which runs would be trained, resumed or reused.")
]
ListThem = Annotated[bool, typer.Option("--list", help="List the experiments.")]
Protocol = Annotated[
    str,
    typer.Option(
        help="full: test each validation-selected run. paper: then refit on every training "
        "example for the selected epochs (a cached run of its own) and test the refit."
    ),
]


@takes_budget
def reproduce(
    experiment: Experiment = None,
    dataset: Datasets = None,
    data_root: DataRoot = None,
    *,
    budget: "Budget",  # the options of options.budget_options, here in --help
    models: Rows = None,
    out: ResultsOut = None,
    runs_dir: RunsDir = Path("results/runs"),
    test: Test = "wilcoxon",
    significance_metric: SignificanceMetric = "mrr@20",
    rerun: Rerun = False,
    dry_run: DryRun = False,
    list_: ListThem = False,
    progress: Progress = True,
    protocol: Protocol = "full",
) -> None:
    """Reproduce a paper's table or figure: cached runs, table.md, results.json, PNGs."""
    from sessionrec.progress import shown
    from sessionrec.provenance import command_line
    from sessionrec.reproduce.experiments import EXPERIMENTS
    from sessionrec.reproduce.pipeline import Options
    from sessionrec.reproduce.pipeline import reproduce as run_experiment
    from sessionrec.reproduce.report import table_markdown

    if list_ or experiment is None:
        for spec in EXPERIMENTS.values():
            typer.echo(f"{spec.name:14s} {spec.source}: {spec.title}")
        return
    options = Options(
        budget=dataclasses.replace(budget, protocol=protocol),
        datasets=dataset,
        data_root=data_root,
        models=models,
        out=out,
        runs_dir=runs_dir,
        test=test,
        significance_metric=significance_metric,
        rerun=rerun,
        dry_run=dry_run,
        command=command_line(),
    )
    with shown(progress):  # a bar over the rows, with ETA
        results = run_experiment(experiment, options, typer.echo)
    if results is not None:
        typer.echo(table_markdown(results))
