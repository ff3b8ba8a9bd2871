"""`sessionrec train MODEL`: train, evaluate with full ranking, write a run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessionrec.commands.options import (
    DataRoot,
    ModelArg,
    Progress,
    Sets,
    TrainFraction,
    parse_assignments,
)
from sessionrec.commands.output import metrics_table, out
from sessionrec.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sessionrec.data.dataset import SessionDataset
    from sessionrec.models.base import Recommender
    from sessionrec.training.config import TrainConfig

Dataset = Annotated[str, typer.Option(help="A dataset name or directory.")]
Epochs = Annotated[int | None, typer.Option(help="Maximum epochs.")]
BatchSize = Annotated[int | None, typer.Option(help="Training batch size.")]
Lr = Annotated[float | None, typer.Option(help="Adam learning rate.")]
Seed = Annotated[int, typer.Option(help="Seed for weights, batch order and dropout.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda")]
ValidFraction = Annotated[
    float, typer.Option(help="Last fraction of training examples held out for validation.")
]
RunOut = Annotated[
    Path | None, typer.Option("--out", help="Run directory (default runs/MODEL-DATASET).")
]
Resume = Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")]
InitFrom = Annotated[
    Path | None,
    typer.Option(
        help="Start from this run's weights (same model and hyper-parameters): items it "
        "knew keep their rows, new items start fresh (the daily warm-start retrain)."
    ),
]
SelectFrom = Annotated[
    Path | None,
    typer.Option(
        help="With --protocol paper: a finished validation-selected run of the same model; "
        "its settings and selected epoch count are used and only the refit trains."
    ),
]
Recipe = Annotated[
    str | None,
    typer.Option(
        help="A named recipe of the model's settings (`sessionrec models show MODEL` lists "
        "them), e.g. focol's time-budgeted `cpu`; --set and the flags override it."
    ),
]
Protocol = Annotated[
    str,
    typer.Option(
        help="full: keep the epoch best on validation. paper: then refit on every "
        "training example (validation included) for that many epochs and test once."
    ),
]


@dataclass(frozen=True)
class Start:
    """What a run trains from: the model, its data and settings, and how it selects."""

    recommender: Recommender
    data: SessionDataset
    config: TrainConfig
    protocol: str
    valid_fraction: float
    select_from: Path | None = None  # the paper protocol's finished selection run, if given


def train(
    model: ModelArg,
    dataset: Dataset = "synthetic",
    data_root: DataRoot = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    seed: Seed = 0,
    device: Device = "auto",
    valid_fraction: ValidFraction = 0.1,
    train_fraction: TrainFraction = 1.0,
    out_dir: RunOut = None,
    set_: Sets = None,
    resume: Resume = False,
    init_from: InitFrom = None,
    progress: Progress = True,
    protocol: Protocol = "full",
    recipe: Recipe = None,
    select_from: SelectFrom = None,
) -> None:
    """Train a model, evaluate it with full ranking and write a run directory."""
    from sessionrec.data.sources import load_dataset
    from sessionrec.models import create, get
    from sessionrec.training.distributed import env_world
    from sessionrec.training.run import run_lock

    say = out.print if env_world().is_main else _quiet  # rank 0 only (torchrun)
    get(model)
    name = Path(dataset).name if Path(dataset).is_dir() else dataset
    run_dir = out_dir or Path("runs") / f"{model}-{name}"
    _check_flags(protocol, resume, init_from, recipe)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    if resume:  # the lock first: a resume records its changes before it trains
        with run_lock(run_dir):
            start = _resumed(run_dir, model, set_, given, valid_fraction, say)
            metrics = _fit(model, start, run_dir, progress, resume)
        _report(model, start, metrics, run_dir, say)
        return
    if select_from is not None:
        start = _selected(select_from, model, set_, given, protocol, say)
    else:
        model_hp, config = _settings(model, name, set_, given, seed, device, say, recipe)
        data = load_dataset(dataset, data_root, valid_fraction, train_fraction)
        recommender = create(model, data.num_items, seed=seed, **model_hp)
        if init_from is not None:
            _warm_start(recommender, data, init_from, protocol, say)
        say(
            f"training {model} on {data.name}: {len(data.train):,} examples, "
            f"{data.num_items:,} items -> {run_dir}"
        )
        start = Start(recommender, data, config, protocol, valid_fraction)
    _report(model, start, _fit(model, start, run_dir, progress, resume), run_dir, say)


def _report(
    model: str, start: Start, metrics: dict, run_dir: Path, say: Callable[..., None]
) -> None:
    """The test metrics table, where the run directory is and, when its time budget ended
    it, the command that trains on."""
    from sessionrec.training.status import run_status

    say(
        metrics_table(
            f"{model} on {start.data.name} (test, %)",
            {model: metrics["test"]},
            extra={model: {"fit s": metrics["fit_seconds"]}},
        )
    )
    say(f"run directory: {run_dir}")
    more = run_status(run_dir).resume if (run_dir / "config.json").is_file() else None
    if more:
        say(f"its time budget (max_minutes) ended it; to train on: {more}", highlight=False)


def _quiet(*args: Any, **kwargs: Any) -> None:
    """What a rank other than 0 prints: nothing."""


def _check_flags(protocol: str, resume: bool, init_from: Path | None, recipe: str | None) -> None:
    """Refuse an unknown protocol, and a resume that would start from another run or recipe."""
    from sessionrec.training.run import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    if resume and init_from is not None:
        raise ConfigError("--resume continues its own run: leave out --init-from")
    if resume and recipe is not None:
        raise ConfigError("--resume continues with its run's own settings: leave out --recipe")


def _settings(
    model: str,
    dataset: str,
    sets: list[str] | None,
    given: dict[str, Any],
    seed: int,
    device: str,
    say: Callable[..., None],
    recipe: str | None = None,
) -> tuple[dict[str, Any], TrainConfig]:
    """Hyper-parameters and training settings: the authors' preset for `dataset` < the
    `recipe` < `--set` < the flags `given` (None: not given). A key the model does not use is
    refused."""
    from sessionrec.models import get
    from sessionrec.models.registry import (
        dataset_preset,
        recipe_settings,
        split_settings,
        train_config,
        unused_setting_error,
    )

    preset = dataset_preset(model, dataset)
    if preset:
        say(
            f"{model} on {dataset}: the authors' settings ({get(model).presets_source}): "
            + " ".join(f"{k}={v}" for k, v in preset.items()),
            highlight=False,
        )
    chosen = recipe_settings(model, recipe)
    if chosen:
        say(f"recipe {recipe}: " + " ".join(f"{k}={v}" for k, v in chosen.items()), highlight=False)
    merged = {**preset, **chosen, **parse_assignments(sets)}
    model_hp, train_hp, unused = split_settings(model, merged)
    flags = {k: v for k, v in given.items() if v is not None}
    unused += [k for k in flags if k in get(model).own_train_settings]
    if unused:
        raise unused_setting_error(model, sorted(unused)[0])
    return model_hp, train_config(model, {**train_hp, **flags, "seed": seed, "device": device})


def _resumed(
    run_dir: Path,
    model: str,
    sets: list[str] | None,
    given: dict[str, Any],
    valid_fraction: float,
    say: Callable[..., None],
) -> Start:
    """The interrupted run in `run_dir`, with `--set` and the flags `given` (None: not given)
    extending it; a flag or setting that would change the result so far is refused."""
    from sessionrec.rundir import read_config
    from sessionrec.training.run import prepare_resume

    recommender, data, config = prepare_resume(run_dir, model, _changes(sets, given))
    saved = read_config(run_dir)
    say(f"resuming {run_dir}")
    protocol = saved.get("protocol", "full")
    valid = saved.get("select_valid_fraction", valid_fraction)
    chosen = Path(saved["select_from"]) if "select_from" in saved else None
    return Start(recommender, data, config, protocol, valid, chosen)


def _changes(sets: list[str] | None, given: dict[str, Any]) -> dict[str, str]:
    """`--set` and the flags `given` (None: not given) as changes to a recorded run."""
    changes = parse_assignments(sets)
    changes.update({k: str(v) for k, v in given.items() if v is not None})
    return changes


def _selected(
    select_from: Path,
    model: str,
    sets: list[str] | None,
    given: dict[str, Any],
    protocol: str,
    say: Callable[..., None],
) -> Start:
    """The refit of the paper protocol from the finished validation-selected run
    `select_from`: its model, data and settings (`--set` may change only how it executes)."""
    from sessionrec.data.dataset import DEFAULT_VALID_FRACTION
    from sessionrec.rundir import read_metrics
    from sessionrec.training.run import prepare_resume

    if protocol != "paper":
        raise ConfigError("--select-from starts a paper-protocol refit: add --protocol paper")
    changes = _changes(sets, given)
    recommender, data, config = prepare_resume(select_from, model, changes, record=False)
    fraction = float(data.source.get("valid_fraction", DEFAULT_VALID_FRACTION))
    if not len(data.valid):
        raise ConfigError(f"{select_from}: trained without a validation split; nothing selected")
    epochs = read_metrics(select_from).get("best_epoch")
    say(f"refit for the {epochs} epochs selected on validation by {select_from}")
    return Start(recommender, data, config, "paper", fraction, select_from)


def _warm_start(
    recommender: Recommender,
    data: SessionDataset,
    init_from: Path,
    protocol: str,
    say: Callable[..., None],
) -> None:
    """Start from the weights of the run in `init_from` and say what was carried over."""
    from sessionrec.training.warm_start import warm_start

    if protocol == "paper":
        raise ConfigError("--init-from trains one model: use --protocol full")
    carried = warm_start(recommender, data, init_from)
    say(
        f"from {init_from}: {carried['items_kept']:,} items kept, "
        f"{carried['items_new']:,} new, {carried['items_dropped']:,} no longer in the "
        f"data; fresh: {', '.join(carried['fresh_tensors']) or 'nothing else'}",
        highlight=False,
    )


def _fit(model: str, start: Start, run_dir: Path, progress: bool, resume: bool) -> dict:
    """Train and test by the run's protocol; its metrics."""
    from sessionrec.data.sources import reload_dataset
    from sessionrec.models import create
    from sessionrec.models.params import params_dict
    from sessionrec.training.run import train_and_evaluate, train_paper_protocol

    data, config = start.data, start.config
    if start.protocol != "paper":
        return train_and_evaluate(
            start.recommender, data, config, run_dir, progress=progress, resume=resume
        )
    seed, params = config.seed, params_dict(start.recommender.params)
    return train_paper_protocol(
        lambda: create(model, data.num_items, seed=seed, **params),
        lambda fraction: reload_dataset(dict(data.source, valid_fraction=fraction)),
        start.valid_fraction,
        config,
        run_dir,
        progress,
        resume,
        start.select_from,
    )
