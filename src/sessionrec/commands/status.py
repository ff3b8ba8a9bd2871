"""`sessionrec status RUN_DIR...`: where each run's training stands and how to continue it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sessionrec.commands.output import out

if TYPE_CHECKING:
    from sessionrec.training.status import PhaseStatus, RunStatus

Measures = ("hr@20", "mrr@20")  # the columns of the epoch table, besides the selection metric


def status(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run directories, or directories of runs (one line per run)."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per run instead.")
    ] = False,
) -> None:
    """Where each run stands (finished, training now, stopped), its epochs, and the command
    that continues it."""
    from sessionrec.training.status import run_status, runs_under

    shown: list[tuple[RunStatus, bool]] = []  # every error before any output
    for path in run_dirs:
        if (path / "config.json").is_file():
            shown.append((run_status(path), False))
        else:
            shown += [(run_status(run_dir), True) for run_dir in runs_under(path)]
    if as_json:
        for run, _ in shown:
            typer.echo(json.dumps(run.as_dict()))
        return
    for run, _ in (item for item in shown if not item[1]):
        _print(run)
    listed = [run for run, brief in shown if brief]
    if listed:
        out.print(_summary(listed))


def _print(run: RunStatus) -> None:
    who = f" (pid {run.pid})" if run.pid else ""
    out.print(
        f"[bold]{run.run_dir}[/bold]: {run.model} on {run.dataset}, {run.protocol} protocol, "
        f"selecting on valid {run.metric}: [bold]{run.state}[/bold]{who}",
        highlight=False,
    )
    for phase in run.phases:
        spent = "" if phase.minutes is None else f"; {phase.minutes:.1f}"
        budget = "" if phase.budget is None or not spent else f" of {phase.budget:g}"
        minutes = f"{spent}{budget} training minutes" if spent else ""
        best = f"; best epoch {phase.best_epoch}" if phase.best_epoch else ""
        out.print(f"  {phase.name}: {phase.detail}{best}{minutes}", highlight=False)
        if phase.ahead:
            out.print(f"    ahead: {phase.ahead}", highlight=False)
        if phase.epochs:
            out.print(_epoch_table(phase, run.metric))
    if run.test:
        cells = ", ".join(f"{m.upper()} {100 * run.test[m]:.2f}" for m in Measures if m in run.test)
        out.print(f"  test: {cells}", highlight=False)
    if run.resume:
        out.print(f"  continue: {run.resume}", highlight=False, soft_wrap=True)


def _epoch_table(phase: PhaseStatus, metric: str) -> Table:
    """One row per epoch: minutes, loss, validation (and test, where logged) in percent."""
    measures = [metric, *(m for m in Measures if m != metric)] if metric else list(Measures)
    splits = [s for s in ("valid", "test") if any(s in r for r in phase.epochs)]
    table = Table(box=None, padding=(0, 1))
    for name in ("epoch", "min", "loss"):
        table.add_column(name, justify="right")
    for split in splits:
        for m in measures:
            table.add_column(f"{split} {m}", justify="right")
    table.add_column("")
    for record in phase.epochs:
        table.add_row(*_epoch_cells(record, splits, measures, phase.best_epoch))
    return table


def _epoch_cells(
    record: dict[str, Any], splits: list[str], measures: list[str], best: int | None
) -> list[str]:
    cells = [
        str(record.get("epoch", "?")),
        f"{record.get('seconds', 0.0) / 60:.1f}",
        f"{record['loss']:.3f}" if isinstance(record.get("loss"), float) else "",
    ]
    for split in splits:
        values = record.get(split, {})
        cells += [f"{100 * values[m]:.2f}" if m in values else "" for m in measures]
    steps, done = record.get("steps"), record.get("steps_done")
    note = f"cut at step {done:,} of {steps:,}" if record.get("partial") and steps else ""
    note = note or ("cut" if record.get("partial") else "")
    cells.append("best" if record.get("epoch") == best else note)
    return cells


def _summary(runs: list[RunStatus]) -> Table:
    """One row per run: where it stands, its best validation figure, test, what is ahead."""
    from sessionrec.training.status import current_phase

    table = Table(box=None, padding=(0, 1))
    for name in ("run", "model", "dataset", "protocol", "state", "phase", "epochs", "minutes"):
        table.add_column(name, justify="right" if name in ("epochs", "minutes") else "left")
    for name in ("best valid", "test HR@20", "test MRR@20", "ahead"):
        table.add_column(name, justify="left" if name == "ahead" else "right")
    for run in runs:
        phase = current_phase(run)
        done = phase.position if phase.position is not None else len(phase.epochs)
        used = "" if phase.minutes is None else f"{phase.minutes:.0f}"
        budget = "" if phase.budget is None or not used else f" / {phase.budget:g}"
        best = _best_valid(run)
        test = run.test or {}
        table.add_row(
            run.run_dir.name, run.model, run.dataset, run.protocol, run.state, phase.name,
            f"{done:.1f}" if done else "", used + budget, best,
            *(f"{100 * test[m]:.2f}" if m in test else "" for m in Measures), phase.ahead,
        )  # fmt: skip
    return table


def _best_valid(run: RunStatus) -> str:
    """The selected epoch's validation figure (the selection metric, %) and the epoch."""
    for phase in run.phases:
        record = next((r for r in phase.epochs if r.get("epoch") == phase.best_epoch), None)
        if record and run.metric in record.get("valid", {}):
            return f"{100 * record['valid'][run.metric]:.2f} ({run.metric}, {phase.best_epoch})"
    return ""
