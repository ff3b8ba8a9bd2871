"""Where a run directory's training stands: finished, training now, or stopped and resumable.

Long runs outlive a sitting: a budget (`max_minutes`) ends them, or a machine is taken away,
and `--resume` continues them from their checkpoint. `run_status` reads what the run
directory knows (config, epoch records, checkpoint, metrics and the training lock) and says
which phase stands where, and the command that continues it. `sessionrec status` prints it.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionrec.errors import RunError
from sessionrec.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    REFIT_DIR,
    SELECT_DIR,
    load_checkpoint,
    read_config,
    read_epochs,
    read_json_object,
    training_process,
)

FINISHED, TRAINING, STOPPED, NOT_STARTED = "finished", "training", "stopped", "not started"


@dataclass(frozen=True)
class PhaseStatus:
    """One phase of a run (a plain run has one; the paper protocol `select` and `refit`)."""

    name: str  # "run", "select" or "refit"
    path: Path
    state: str  # FINISHED, TRAINING, STOPPED or NOT_STARTED
    detail: str  # where it stands, in words
    epochs: list[dict[str, Any]] = field(default_factory=list)  # last record of each epoch
    minutes: float | None = None  # training minutes so far (the budget's clock)
    budget: float | None = None  # max_minutes
    best_epoch: int | None = None
    out_of_budget: bool = False  # its budget is spent: a resume needs a larger max_minutes
    position: float | None = None  # epochs done, with the checkpoint's part of the next
    ahead: str = ""  # what is left to train and about how long it takes, in words


@dataclass(frozen=True)
class RunStatus:
    """A run directory: what it trains, each phase, and how to continue it."""

    run_dir: Path
    model: str
    dataset: str
    protocol: str
    metric: str  # the validation metric that selects the epoch
    phases: list[PhaseStatus]
    state: str  # the run's: FINISHED, TRAINING, STOPPED or NOT_STARTED
    pid: int | None  # the process training it now
    test: dict[str, float] | None  # the final test metrics, once finished
    resume: str | None  # the command that continues it, when it can go on

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (`sessionrec status --json`)."""
        return {
            "run_dir": str(self.run_dir),
            "model": self.model,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "metric": self.metric,
            "state": self.state,
            "pid": self.pid,
            "test": self.test,
            "resume": self.resume,
            "phases": [
                {
                    "name": p.name,
                    "path": str(p.path),
                    "state": p.state,
                    "detail": p.detail,
                    "minutes": p.minutes,
                    "budget": p.budget,
                    "best_epoch": p.best_epoch,
                    "out_of_budget": p.out_of_budget,
                    "ahead": p.ahead,
                    "epochs": p.epochs,
                }
                for p in self.phases
            ],
        }


def runs_under(directory: str | Path) -> list[Path]:
    """The run directories directly under `directory`, by name; a RunError when there is none
    (and `directory` is no run directory itself)."""
    directory = Path(directory)
    found = []
    if directory.is_dir():
        found = sorted(d for d in directory.iterdir() if (d / CONFIG_FILE).is_file())
    if not found:
        read_config(directory)  # its own error: no such directory, or not a run directory
    return found


def current_phase(run: RunStatus) -> PhaseStatus:
    """The phase training is in or would continue with (the last, once all finished)."""
    return next((p for p in run.phases if p.state != FINISHED), run.phases[-1])


def stop_reason(last: dict[str, Any], config: dict[str, Any]) -> str:
    """Why training ended, from the last epoch record. A run that ended short of its planned
    epochs without early stopping ended by its time budget, also where a resume with a budget
    already spent ended it before any new epoch (the last record then does not say so)."""
    if last.get("stopped_early"):
        return "early stopping"
    planned = config.get("train", {}).get("epochs")
    if last.get("out_of_budget") or (planned and last.get("epoch", 0) < planned):
        return "time budget"
    return "epoch limit"


def run_status(run_dir: str | Path) -> RunStatus:
    """Where the run in `run_dir` stands; a RunError when it is no run directory."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    train = config["train"]
    protocol = str(config.get("protocol", "full"))
    pid = training_process(run_dir)
    if protocol == "paper":
        phases = [_selection(run_dir, config), _phase("refit", run_dir / REFIT_DIR, train)]
    else:
        phases = [_phase("run", run_dir, train)]
    for phase in phases:
        pid = pid or training_process(phase.path)
    metrics = read_json_object(run_dir / METRICS_FILE)
    finished = metrics is not None
    state = FINISHED if finished else TRAINING if pid else _overall(phases)
    if state == TRAINING:
        phases = [_training(p) if p.state == STOPPED else p for p in phases]
    if state != FINISHED:
        phases = _with_ahead(phases, train, float(config.get("select_valid_fraction", 0.1)))
    return RunStatus(
        run_dir=run_dir,
        model=str(config["model"]),
        dataset=str(config["dataset"].get("dataset", "?")),
        protocol=protocol,
        metric=str(train.get("metric", "")),
        phases=phases,
        state=state,
        pid=pid,
        test=metrics.get("test") if metrics else None,
        resume=_resume_command(run_dir, config, phases, state),
    )


def _selection(run_dir: Path, config: dict[str, Any]) -> PhaseStatus:
    """A paper-protocol run's selection: its `select` phase, or the finished run it refit
    from (`--select-from`), which keeps its own settings."""
    if "select_from" not in config:
        return _phase("select", run_dir / SELECT_DIR, config["train"])
    selection = Path(config["select_from"])
    if not selection.is_dir():
        return PhaseStatus("select", selection, NOT_STARTED, "not found (moved?)")
    return _phase("select", selection, read_config(selection)["train"])


def _phase(name: str, path: Path, train: dict[str, Any]) -> PhaseStatus:
    """One phase directory's state, from its metrics, checkpoint and epoch records; `train`:
    the run's settings now (a resume records a larger budget in the top config.json only)."""
    budget = train.get("max_minutes")
    if not path.is_dir():
        return PhaseStatus(name, path, NOT_STARTED, "not started", budget=budget)
    epochs = read_epochs(path)
    last = epochs[-1] if epochs else {}
    best = last.get("best_epoch")  # a phase without validation (a refit) selects nothing
    best = best if isinstance(best, int) and best > 0 and "valid" in last else None
    config = read_json_object(path / CONFIG_FILE) or {"train": train}  # its epochs, if a refit
    if read_json_object(path / METRICS_FILE) is not None:
        reason = stop_reason(last, config) if epochs else "fit"
        detail = f"{reason} after epoch {last['epoch']}" if epochs else "fitted"
        minutes = _checkpoint_minutes(path)
        spent = reason == "time budget"
        if spent:
            detail += f" (its {_minutes(budget)}-minute budget)"
        return PhaseStatus(name, path, FINISHED, detail, epochs, minutes, budget, best, spent)
    if not (path / CHECKPOINT_FILE).is_file():
        return PhaseStatus(name, path, NOT_STARTED, "no checkpoint yet", epochs, budget=budget)
    state = load_checkpoint(path / CHECKPOINT_FILE)
    minutes = float(state.get("elapsed", 0.0)) / 60
    epoch, step, steps = (
        int(state.get("epoch", 0)) + 1,
        state.get("step") or 0,
        state.get("epoch_steps"),
    )
    where = f"epoch {epoch}, step {step:,}" + (f" of {steps:,}" if steps else "")
    age = (time.time() - (path / CHECKPOINT_FILE).stat().st_mtime) / 60
    spent = budget is not None and minutes >= budget
    detail = f"stopped in {where}; checkpoint written {_minutes(age)} min ago"
    if spent:
        detail += f"; its {_minutes(budget)}-minute budget is spent"
    done = epoch - 1 + (step / steps if steps else 0.0)
    return PhaseStatus(name, path, STOPPED, detail, epochs, minutes, budget, best, spent, done)


def _training(phase: PhaseStatus) -> PhaseStatus:
    """The phase the running process is in: its checkpoint is where it was, not where it is."""
    detail = phase.detail.replace("stopped in", "training; last checkpoint in", 1)
    return dataclasses.replace(phase, state=TRAINING, detail=detail)


def _with_ahead(
    phases: list[PhaseStatus], train: dict[str, Any], valid_fraction: float
) -> list[PhaseStatus]:
    """Each unfinished phase with what is left of it: epochs to go (to the earliest epoch
    early stopping can end it, or its epoch count) and minutes at its own recent pace (a
    refit not started: the selection's, per example), against what is left of max_minutes."""
    out, selection = [], None
    for phase in phases:
        if phase.name == "select":
            selection = phase
        if phase.state == FINISHED or phase.detail.startswith("not found"):
            out.append(phase)
            continue
        pace = _pace(phase)
        if phase.name == "refit":
            if selection is None or selection.state != FINISHED or not selection.best_epoch:
                out.append(phase)  # its epoch count is not chosen yet
                continue
            target, earliest = selection.best_epoch, False
            if pace is None and _pace(selection) is not None:
                pace = _pace(selection) / (1.0 - valid_fraction)  # more examples an epoch
        else:
            target, earliest = int(train.get("epochs") or 0), False
            if phase.best_epoch and any("valid" in r for r in phase.epochs):
                stop = phase.best_epoch + int(train.get("patience", 0)) + 1  # Trainer's rule
                if not target or stop < target:
                    target, earliest = stop, True
        left = target - (phase.position or 0.0)
        text = f"{left:.1f} epochs to epoch {target}" + (" at the earliest" if earliest else "")
        if pace is not None:
            need = left * pace
            text += f", ≈ {need:.0f} min at {pace:.1f} min an epoch"
            budget_left = None if phase.budget is None else phase.budget - (phase.minutes or 0.0)
            if budget_left is not None and need > budget_left:
                text += f"; max_minutes ends it first, in ≈ {max(budget_left, 0.0):.0f} min"
        out.append(dataclasses.replace(phase, ahead=text))
    return out


def _pace(phase: PhaseStatus) -> float | None:
    """Training minutes an epoch: the median of the phase's last three whole epochs."""
    whole = [r["seconds"] / 60 for r in phase.epochs if not r.get("partial") and "seconds" in r]
    return statistics.median(whole[-3:]) if whole else None


def _overall(phases: list[PhaseStatus]) -> str:
    """A run nobody trains now: stopped where any phase stopped or one is still to come."""
    if all(p.state == NOT_STARTED for p in phases):
        return NOT_STARTED
    return STOPPED


def _checkpoint_minutes(path: Path) -> float | None:
    """Training minutes from a finished phase's checkpoint clock (None without one)."""
    if not (path / CHECKPOINT_FILE).is_file():
        return None
    try:
        return float(load_checkpoint(path / CHECKPOINT_FILE).get("elapsed", 0.0)) / 60
    except RunError:
        return None


def _resume_command(
    run_dir: Path, config: dict[str, Any], phases: list[PhaseStatus], state: str
) -> str | None:
    """`sessionrec train MODEL --out RUN --resume`, with a larger `max_minutes` where the
    budget of the phase it would continue is spent; None when there is nothing to continue."""
    if state in (TRAINING, NOT_STARTED):
        return None
    pending = [p for p in phases if p.state != FINISHED]
    current = pending[0] if pending else phases[-1]
    if state == FINISHED and not current.out_of_budget:
        return None  # early stopping or its epochs ended it: nothing more to train
    words = ["sessionrec", "train", str(config["model"]), "--out", str(run_dir), "--resume"]
    if current.out_of_budget and current.budget is not None:
        more = math.ceil(max(current.minutes or 0.0, current.budget) + current.budget)
        words += ["--set", f"max_minutes={more}"]
    return shlex.join(words)


def _minutes(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"
