"""Options that several commands share, defined once as `Annotated` aliases, and the parser of
`--set key=value` (one meaning of a data root, a run directory, a seed count, ... everywhere).

No `from __future__ import annotations` here: `takes_budget` hands Typer the parameters of
`budget_options` as they are, so their annotations must be objects, not strings.
"""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sessionrec.errors import ConfigError

if TYPE_CHECKING:
    from sessionrec.reproduce.budget import Budget

R = TypeVar("R")

DataRoot = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Directory holding the named "
        "benchmarks (default: $SESSIONREC_DATA or ../shared/datasets).",
    ),
]
ModelArg = Annotated[str, typer.Argument(help="A registered model name (see `models list`).")]
DatasetArg = Annotated[str, typer.Argument(help="A name or a dataset directory.")]
RunDirArg = Annotated[Path, typer.Argument(help="A run directory.")]
TrainFraction = Annotated[
    float,
    typer.Option(
        "--train-fraction",
        help="Train on the most recent fraction of training sessions (test stays whole).",
    ),
]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output directory.")]
Progress = Annotated[bool, typer.Option(help="Show progress bars (on a terminal only).")]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="key=value: a model hyper-parameter or training setting; repeatable."
    ),
]
RunsDir = Annotated[
    Path,
    typer.Option("--runs-dir", help="Cache of run directories, shared by experiments and `tune`."),
]
Rerun = Annotated[bool, typer.Option(help="Train every run again, ignoring the cache.")]


def parse_assignments(pairs: list[str] | None) -> dict[str, str]:
    """`["dim=64", "dropout=0.1"]` -> {"dim": "64", "dropout": "0.1"} (the values of --set)."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        result[key.strip()] = value.strip()
    return result


def budget_options(
    epochs: Annotated[
        int, typer.Option(help="Maximum epochs per run (early stopping on validation decides).")
    ] = 30,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Wall-clock training budget per run.")
    ] = None,
    train_fraction: TrainFraction = 1.0,
    seeds: Annotated[int, typer.Option(help="Seeds per run (0..N-1); tables show mean ± std.")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="key=value: a hyper-parameter (of the models that have it) or training "
            "setting; repeatable.",
        ),
    ] = None,
) -> "Budget":
    """The budget every run of `reproduce` or `tune` trains under: their shared options."""
    from sessionrec.reproduce.budget import Budget

    return Budget(epochs, max_minutes, train_fraction, seeds, parse_assignments(set_))


def takes_budget(command: Callable[..., R]) -> Callable[..., R]:
    """`command` with the options of `budget_options` in place of its `budget` parameter.

    Typer reads the returned function's signature, so the options are declared once (here)
    for every command that trains under a budget; the call builds the Budget from them.
    """
    own = inspect.signature(command)
    options = inspect.signature(budget_options).parameters
    params: list[inspect.Parameter] = []
    for param in own.parameters.values():
        params += list(options.values()) if param.name == "budget" else [param]

    @functools.wraps(command)
    def with_options(**values: Any) -> R:
        budget = budget_options(**{name: values.pop(name) for name in options})
        return command(budget=budget, **values)

    with_options.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in params}  # for Typer's hints
    return with_options
