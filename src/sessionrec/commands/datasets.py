"""`sessionrec datasets list|stats|prepare|export`: the named datasets and preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sessionrec.commands.options import DataRoot, DatasetArg, Overwrite
from sessionrec.commands.output import counts_table, out
from sessionrec.errors import ConfigError

if TYPE_CHECKING:
    from sessionrec.data.event_log import EventColumns

Format = Annotated[
    str,
    typer.Option(
        "--format",
        help="diginetica | yoochoose | retailrocket (the raw dumps), events (any CSV, TSV "
        "or Parquet click log) | recbole (a RecBole .inter file)",
    ),
]
InputFile = Annotated[Path, typer.Option("--input", help="The raw click log.")]
PreparedDir = Annotated[
    Path, typer.Option("--output", help="Directory to write the prepared dataset to.")
]
Fraction = Annotated[
    str | None,
    typer.Option(help="Keep the most recent fraction of training sessions, e.g. 1/64 (YooChoose)."),
]
TestDays = Annotated[
    int | None, typer.Option(help="Days at the end used as test (default 7; YooChoose 1).")
]
TestFraction = Annotated[
    float | None,
    typer.Option(help="Instead: the latest fraction of sessions is the test set, e.g. 0.1."),
]
TestInput = Annotated[
    Path | None,
    typer.Option(help="events/recbole: a separate file of test sessions (same columns)."),
]
KeepUnseen = Annotated[
    bool, typer.Option(help="Keep test clicks on items absent from training (numbered last).")
]
MinTestPrefix = Annotated[
    int, typer.Option(help="Leave out test examples whose input is shorter than this.")
]
SessionColumn = Annotated[
    str | None, typer.Option(help="events: session column (SessionId; recbole session_id).")
]
ItemColumn = Annotated[
    str | None, typer.Option(help="events: item column (ItemId; recbole item_id).")
]
TimeColumn = Annotated[
    str | None, typer.Option(help="events: time column (Time; recbole timestamp).")
]
TimeFormat = Annotated[
    str,
    typer.Option(
        help="events: auto | seconds | milliseconds | iso (auto: numbers are epoch "
        "seconds, milliseconds from 1e11; text is ISO-8601)"
    ),
]
Separator = Annotated[
    str | None,
    typer.Option(help="events: the field separator (default: ',' for .csv, else tab)."),
]
MinItemSupport = Annotated[int, typer.Option(help="Drop items with fewer clicks.")]
SinglePass = Annotated[
    bool,
    typer.Option(
        help="Apply the length/support filters once, "
        "as SR-GNN's script does, instead of until stable."
    ),
]
Steps = Annotated[bool, typer.Option(help="Show what is being done.")]


def list_datasets(data_root: DataRoot = None) -> None:
    """The named datasets and whether their files are present."""
    from sessionrec.data.sources import BENCHMARKS, default_data_root

    root = data_root or default_data_root()
    table = Table(title=f"datasets (data root: {root or 'not found'})")
    table.add_column("name")
    table.add_column("status")
    table.add_row("synthetic", "built in (seeded, generated on load)")
    for name in BENCHMARKS:
        present = root is not None and (root / name / "all_train_seq.txt").exists()
        table.add_row(name, f"present: {root / name}" if present else "missing")
    out.print(table)


def stats(dataset: DatasetArg, data_root: DataRoot = None) -> None:
    """Counts as in the papers' dataset tables."""
    from sessionrec.data.sources import load_dataset

    counts = load_dataset(dataset, data_root).stats()
    name = counts.pop("name")
    rows = {key.replace("_", " "): value for key, value in counts.items()}
    out.print(counts_table(f"dataset {name}", "statistic", rows))


def event_columns(fmt: str, given: dict[str, tuple[str | None, str]]) -> EventColumns:
    """The click log's columns: the format's defaults, changed by the flags given (each
    `name: (value or None, flag)`); the flags apply to the generic formats only."""
    import dataclasses

    from sessionrec.data.event_log import RECBOLE_COLUMNS, EventColumns
    from sessionrec.data.prepare import GENERIC

    changed = {name: value for name, (value, _) in given.items() if value is not None}
    if changed and fmt not in GENERIC:
        flag = given[next(iter(changed))][1]
        raise ConfigError(f"{flag} applies to --format events or recbole, not {fmt}")
    base = RECBOLE_COLUMNS if fmt == "recbole" else EventColumns()
    return dataclasses.replace(base, **changed)


def prepare(
    fmt: Format,
    input_file: InputFile,
    output: PreparedDir,
    fraction: Fraction = None,
    test_days: TestDays = None,
    test_fraction: TestFraction = None,
    test_input: TestInput = None,
    keep_unseen_test_items: KeepUnseen = False,
    min_test_prefix: MinTestPrefix = 1,
    session_column: SessionColumn = None,
    item_column: ItemColumn = None,
    time_column: TimeColumn = None,
    time_format: TimeFormat = "auto",
    separator: Separator = None,
    min_item_support: MinItemSupport = 5,
    single_pass: SinglePass = False,
    overwrite: Overwrite = False,
    progress: Steps = True,
) -> None:
    """Preprocess a click log with the field's standard rules (Polars); rules in stats.json."""
    from sessionrec.data.prepare import parse_fraction
    from sessionrec.data.prepare import prepare as prepare_log
    from sessionrec.progress import shown

    columns = event_columns(
        fmt,
        {
            "session": (session_column, "--session-column"),
            "item": (item_column, "--item-column"),
            "time": (time_column, "--time-column"),
            "separator": (separator, "--separator"),
            "time_format": (None if time_format == "auto" else time_format, "--time-format"),
        },
    )
    frac = parse_fraction(fraction) if fraction is not None else None
    with shown(progress):
        result = prepare_log(
            fmt,
            input_file,
            output,
            fraction=frac,
            test_days=test_days,
            min_item_support=min_item_support,
            overwrite=overwrite,
            until_stable=not single_pass,
            test_fraction=test_fraction,
            test_input=test_input,
            columns=columns,
            keep_unseen_test_items=keep_unseen_test_items,
            min_test_prefix=min_test_prefix,
        )
    title = f"prepared {output} (rules and counts in {output / 'stats.json'})"
    rows = {str(k): v for k, v in result.items() if not isinstance(v, dict | list)}
    out.print(counts_table(title, "key", rows))


def export(
    dataset: DatasetArg,
    to: Annotated[str, typer.Option(help="recbole | session-rec | parquet")],
    output: Annotated[Path, typer.Option(help="Directory to write the files to.")],
    data_root: DataRoot = None,
    valid_fraction: Annotated[
        float, typer.Option(help="Most recent share of training examples used for validation.")
    ] = 0.1,
    overwrite: Overwrite = False,
) -> None:
    """Write a dataset's exact split for another library (layouts: sessionrec.data.export)."""
    from sessionrec.data.export import export as export_split
    from sessionrec.data.sources import load_dataset

    data = load_dataset(dataset, data_root, valid_fraction)
    counts = export_split(data, to, output, overwrite)
    again = counts.pop("prepare", None)
    rows = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    out.print(f"wrote {data.name} for {to} to {output}: {rows}", highlight=False)
    if again:
        out.print(f"the same examples again: sessionrec {again}", highlight=False, soft_wrap=True)
