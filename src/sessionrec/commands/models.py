"""`sessionrec models list|show`: the registered models, their hyper-parameters and settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from sessionrec.commands.options import ModelArg
from sessionrec.commands.output import out

if TYPE_CHECKING:
    from sessionrec.models.base import Recommender


def list_models() -> None:
    """Every registered model with a one-line description."""
    from sessionrec.models import available

    table = Table(title="models")
    table.add_column("name")
    table.add_column("description")
    for name, description in available().items():
        table.add_row(name, description)
    out.print(table)


def show(model: ModelArg) -> None:
    """A model's hyper-parameters and the training settings `train` gives it, with sources."""
    from sessionrec.models import get
    from sessionrec.models.registry import not_applied

    cls = get(model)
    out.print(f"[bold]{model}[/bold]: {cls.description}", highlight=False)
    _print_params(cls)
    if cls.own_train_settings:
        out.print(
            f"trains with its own steps and optimiser: {', '.join(cls.own_train_settings)} "
            "are set through its hyper-parameters"
        )
    if not_applied(model):
        out.print(f"not applied to its own steps: {', '.join(not_applied(model))}")
    out.print(_settings_table(model, cls))
    out.print(
        f"source of {model}'s training settings: {cls.train_source or 'none declared'}",
        highlight=False,
        markup=False,  # sources quote config sections such as [stamp_cikm]
    )
    for dataset, preset in cls.dataset_presets.items():
        values = " ".join(f"{k}={v}" for k, v in preset.items())
        out.print(f"on {dataset}: {values}", highlight=False)
    if cls.dataset_presets:
        out.print(
            f"source of the per-dataset settings: {cls.presets_source}",
            highlight=False,
            markup=False,
        )
    for recipe, settings in cls.recipes.items():
        values = " ".join(f"{k}={v}" for k, v in settings.items())
        out.print(f"recipe {recipe} (--recipe {recipe}): {values}", highlight=False)


def _print_params(cls: type[Recommender]) -> None:
    """The model's hyper-parameters with their defaults."""
    import dataclasses

    params = Table(title="hyper-parameters (--set key=value)")
    params.add_column("name")
    params.add_column("default", justify="right")
    for f in dataclasses.fields(cls.Params):
        params.add_row(f.name, repr(getattr(cls.Params(), f.name)))
    out.print(params if dataclasses.fields(cls.Params) else "no hyper-parameters")


def _settings_table(model: str, cls: type[Recommender]) -> Table:
    """The training settings `train` gives the model and where each value comes from."""
    import dataclasses

    from sessionrec.models.registry import not_applied, train_config
    from sessionrec.training.config import TrainConfig

    config = train_config(model)
    unused = set(cls.own_train_settings) | set(not_applied(model))
    settings = Table(title="training settings (--set key=value, or --epochs/--batch-size/--lr)")
    settings.add_column("name")
    settings.add_column("value", justify="right")
    settings.add_column("from")
    for f in dataclasses.fields(TrainConfig):
        if f.name in unused:
            continue
        origin = model if f.name in cls.train_defaults else "TrainConfig default"
        settings.add_row(f.name, repr(getattr(config, f.name)), origin)
    return settings
