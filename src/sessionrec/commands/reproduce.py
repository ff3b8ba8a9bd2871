"""`sessionrec reproduce EXPERIMENT`: a table or figure of the FOCOL or LINet paper."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.progress import shown
from sessionrec.provenance import command_line  # noqa: F401  (used by tune too)

DatasetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset",
        help="Dataset name or directory; repeatable or comma-separated "
        "(default: the paper's datasets for the experiment).",
    ),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-root", help="Directory of the named benchmarks (default: $SESSIONREC_DATA)."
    ),
]
EpochsOpt = Annotated[
    int, typer.Option(help="Maximum epochs per run (early stopping on validation decides).")
]
MinutesOpt = Annotated[
    float | None, typer.Option("--max-minutes", help="Wall-clock training budget per run.")
]
FractionOpt = Annotated[
    float,
    typer.Option(
        "--train-fraction", help="Train on the most recent fraction of training sessions."
    ),
]
SeedsOpt = Annotated[int, typer.Option(help="Seeds per run (0..N-1); tables show mean ± std.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="key=value: a hyper-parameter (of the models that have it) or training "
        "setting; repeatable.",
    ),
]
RunsDirOpt = Annotated[
    Path,
    typer.Option("--runs-dir", help="Cache of run directories, shared by experiments and `tune`."),
]
RerunOpt = Annotated[bool, typer.Option(help="Train every run again, ignoring the cache.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars (on a terminal only).")]


def register(app: typer.Typer) -> None:
    """Add `reproduce` to the CLI."""

    @app.command("reproduce")
    def reproduce_cmd(
        experiment: Annotated[
            str | None, typer.Argument(help="e.g. focol-table2; omit (or --list) to list them.")
        ] = None,
        dataset: DatasetOpt = None,
        data_root: DataRootOpt = None,
        epochs: EpochsOpt = 30,
        max_minutes: MinutesOpt = None,
        train_fraction: FractionOpt = 1.0,
        seeds: SeedsOpt = 1,
        set_: SetOpt = None,
        models: Annotated[
            list[str] | None,
            typer.Option("--models", help="Only these rows (registry or paper names; comma list)."),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Output directory (default results/EXPERIMENT)."),
        ] = None,
        runs_dir: RunsDirOpt = Path("results/runs"),
        test: Annotated[str, typer.Option(help="Paired test: wilcoxon | ttest.")] = "wilcoxon",
        significance_metric: Annotated[
            str, typer.Option(help="Per-case values the paired test compares (hr@K or mrr@K).")
        ] = "mrr@20",
        rerun: RerunOpt = False,
        dry_run: Annotated[
            bool, typer.Option(help="Only print which runs would be trained, resumed or reused.")
        ] = False,
        list_: Annotated[bool, typer.Option("--list", help="List the experiments.")] = False,
        progress: ProgressOpt = True,
    ) -> None:
        """Reproduce a paper's table or figure: cached runs, table.md, results.json, PNGs."""
        from sessionrec.cli import parse_assignments
        from sessionrec.reproduce.budget import Budget
        from sessionrec.reproduce.experiments import EXPERIMENTS
        from sessionrec.reproduce.pipeline import Options, reproduce
        from sessionrec.reproduce.report import table_markdown

        if list_ or experiment is None:
            for spec in EXPERIMENTS.values():
                typer.echo(f"{spec.name:14s} {spec.source}: {spec.title}")
            return
        budget = Budget(epochs, max_minutes, train_fraction, seeds, parse_assignments(set_ or []))
        options = Options(
            budget=budget,
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
            results = reproduce(experiment, options, typer.echo)
        if results is not None:
            typer.echo(table_markdown(results))
