"""The `sessionrec` command line (Typer + Rich). Errors: one line on stderr, non-zero exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sessionrec.errors import ConfigError, SessionrecError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Session-based recommendation: data, training, evaluation, recommendation.",
)
datasets_app = typer.Typer(no_args_is_help=True, help="List, inspect and prepare datasets.")
models_app = typer.Typer(no_args_is_help=True, help="The registered models.")
analyze_app = typer.Typer(no_args_is_help=True, help="Analyses of trained runs.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
app.add_typer(analyze_app, name="analyze")
out = Console()

DataRoot = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Directory holding the named "
        "benchmarks (default: $SESSIONREC_DATA or ../shared/datasets).",
    ),
]


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`["dim=64", "dropout=0.1"]` -> {"dim": "64", "dropout": "0.1"}."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        result[key.strip()] = value.strip()
    return result


def metrics_table(
    title: str,
    rows: dict[str, dict[str, float]],
    ks: tuple[int, ...] = (10, 20),
    extra: dict[str, dict[str, Any]] | None = None,
    measures: tuple[str, ...] = ("hr", "mrr", "ndcg"),
) -> Table:
    """A Rich table: one row per model, HR/MRR/NDCG@K in percent."""
    table = Table(title=title)
    table.add_column("model")
    names = [f"{m}@{k}" for m in measures for k in ks]
    for name in names:
        table.add_column(name.upper().replace("@", "@"), justify="right")
    extra_cols = sorted({c for e in (extra or {}).values() for c in e})
    for col in extra_cols:
        table.add_column(col, justify="right")
    for model, metrics in rows.items():
        cells = [f"{100 * metrics[n]:.2f}" if n in metrics else "-" for n in names]
        cells += [str((extra or {}).get(model, {}).get(c, "")) for c in extra_cols]
        table.add_row(model, *cells)
    return table


# --- datasets ----------------------------------------------------------------------------------
@datasets_app.command("list")
def datasets_list(data_root: DataRoot = None) -> None:
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


@datasets_app.command("stats")
def datasets_stats(
    dataset: Annotated[str, typer.Argument(help="A name or a dataset directory.")],
    data_root: DataRoot = None,
) -> None:
    """Counts as in the papers' dataset tables."""
    from sessionrec.data.sources import load_dataset

    stats = load_dataset(dataset, data_root).stats()
    table = Table(title=f"dataset {stats.pop('name')}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)


@datasets_app.command("prepare")
def datasets_prepare(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="diginetica | yoochoose | retailrocket (the raw dumps), events (any CSV, TSV "
            "or Parquet click log) | recbole (a RecBole .inter file)",
        ),
    ],
    input_file: Annotated[Path, typer.Option("--input", help="The raw click log.")],
    output: Annotated[
        Path, typer.Option("--output", help="Directory to write the prepared dataset to.")
    ],
    fraction: Annotated[
        str | None,
        typer.Option(
            help="Keep the most recent fraction of training sessions, e.g. 1/64 (YooChoose)."
        ),
    ] = None,
    test_days: Annotated[
        int | None, typer.Option(help="Days at the end used as test (default 7; YooChoose 1).")
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="Instead: the latest fraction of sessions is the test set, e.g. 0.1."),
    ] = None,
    test_input: Annotated[
        Path | None,
        typer.Option(help="events/recbole: a separate file of test sessions (same columns)."),
    ] = None,
    keep_unseen_test_items: Annotated[
        bool,
        typer.Option(help="Keep test clicks on items absent from training (numbered last)."),
    ] = False,
    min_test_prefix: Annotated[
        int, typer.Option(help="Leave out test examples whose input is shorter than this.")
    ] = 1,
    session_column: Annotated[
        str | None, typer.Option(help="events: session column (SessionId; recbole session_id).")
    ] = None,
    item_column: Annotated[
        str | None, typer.Option(help="events: item column (ItemId; recbole item_id).")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="events: time column (Time; recbole timestamp).")
    ] = None,
    time_format: Annotated[
        str,
        typer.Option(
            help="events: auto | seconds | milliseconds | iso (auto: numbers are epoch "
            "seconds, milliseconds from 1e11; text is ISO-8601)"
        ),
    ] = "auto",
    separator: Annotated[
        str | None,
        typer.Option(help="events: the field separator (default: ',' for .csv, else tab)."),
    ] = None,
    min_item_support: Annotated[int, typer.Option(help="Drop items with fewer clicks.")] = 5,
    single_pass: Annotated[
        bool,
        typer.Option(
            help="Apply the length/support filters once, "
            "as SR-GNN's script does, instead of until stable."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    progress: Annotated[bool, typer.Option(help="Show what is being done.")] = True,
) -> None:
    """Preprocess a click log with the field's standard rules (Polars); rules in stats.json."""
    import dataclasses

    from sessionrec.data.event_log import RECBOLE_COLUMNS, EventColumns
    from sessionrec.data.prepare import GENERIC, parse_fraction, prepare
    from sessionrec.progress import shown

    frac = parse_fraction(fraction) if fraction is not None else None
    named = {
        "session": (session_column, "--session-column"),
        "item": (item_column, "--item-column"),
        "time": (time_column, "--time-column"),
        "separator": (separator, "--separator"),
        "time_format": (None if time_format == "auto" else time_format, "--time-format"),
    }
    given = {k: v for k, (v, _) in named.items() if v is not None}
    if given and fmt not in GENERIC:
        flag = named[next(iter(given))][1]
        raise ConfigError(f"{flag} applies to --format events or recbole, not {fmt}")
    base = RECBOLE_COLUMNS if fmt == "recbole" else EventColumns()
    with shown(progress):
        stats = prepare(
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
            columns=dataclasses.replace(base, **given),
            keep_unseen_test_items=keep_unseen_test_items,
            min_test_prefix=min_test_prefix,
        )
    table = Table(title=f"prepared {output} (rules and counts in {output / 'stats.json'})")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        if not isinstance(value, dict | list):
            table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)


@datasets_app.command("export")
def datasets_export(
    dataset: Annotated[str, typer.Argument(help="A name or a dataset directory.")],
    to: Annotated[str, typer.Option(help="recbole | session-rec | parquet")],
    output: Annotated[Path, typer.Option(help="Directory to write the files to.")],
    data_root: DataRoot = None,
    valid_fraction: Annotated[
        float, typer.Option(help="Most recent share of training examples used for validation.")
    ] = 0.1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Write a dataset's exact split for another library (layouts: sessionrec.data.export)."""
    from sessionrec.data.export import export
    from sessionrec.data.sources import load_dataset

    data = load_dataset(dataset, data_root, valid_fraction)
    counts = export(data, to, output, overwrite)
    again = counts.pop("prepare", None)
    rows = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    out.print(f"wrote {data.name} for {to} to {output}: {rows}", highlight=False)
    if again:
        out.print(f"the same examples again: sessionrec {again}", highlight=False, soft_wrap=True)


# --- models ------------------------------------------------------------------------------------
@models_app.command("list")
def models_list() -> None:
    """Every registered model with a one-line description."""
    from sessionrec.models import available

    table = Table(title="models")
    table.add_column("name")
    table.add_column("description")
    for name, description in available().items():
        table.add_row(name, description)
    out.print(table)


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="A registered model name (see `models list`).")],
) -> None:
    """A model's hyper-parameters and the training settings `train` gives it, with sources."""
    import dataclasses

    from sessionrec.models import get
    from sessionrec.models.registry import train_config
    from sessionrec.training.config import TrainConfig

    cls = get(model)
    out.print(f"[bold]{model}[/bold]: {cls.description}", highlight=False)
    params = Table(title="hyper-parameters (--set key=value)")
    params.add_column("name")
    params.add_column("default", justify="right")
    for f in dataclasses.fields(cls.Params):
        params.add_row(f.name, repr(getattr(cls.Params(), f.name)))
    out.print(params if dataclasses.fields(cls.Params) else "no hyper-parameters")
    if cls.own_train_settings:
        out.print(
            f"trains with its own steps and optimiser: {', '.join(cls.own_train_settings)} "
            "are set through its hyper-parameters"
        )
    config = train_config(model)
    settings = Table(title="training settings (--set key=value, or --epochs/--batch-size/--lr)")
    settings.add_column("name")
    settings.add_column("value", justify="right")
    settings.add_column("from")
    for f in dataclasses.fields(TrainConfig):
        if f.name in cls.own_train_settings:
            continue
        value = getattr(config, f.name)
        origin = model if f.name in cls.train_defaults else "TrainConfig default"
        settings.add_row(f.name, repr(value), origin)
    out.print(settings)
    out.print(
        f"source of {model}'s training settings: {cls.train_source or 'none declared'}",
        highlight=False,
    )
    for dataset, preset in cls.dataset_presets.items():
        values = " ".join(f"{k}={v}" for k, v in preset.items())
        out.print(f"on {dataset}: {values}", highlight=False)
    if cls.dataset_presets:
        out.print(f"source of the per-dataset settings: {cls.presets_source}", highlight=False)


# --- train / evaluate / recommend --------------------------------------------------------------
@app.command()
def train(
    model: Annotated[str, typer.Argument(help="A registered model name (see `models list`).")],
    dataset: Annotated[str, typer.Option(help="A dataset name or directory.")] = "synthetic",
    data_root: DataRoot = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, batch order and dropout.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    valid_fraction: Annotated[
        float, typer.Option(help="Last fraction of training examples held out for validation.")
    ] = 0.1,
    train_fraction: Annotated[
        float,
        typer.Option(
            help="Train on the most recent fraction of training sessions (test stays whole)."
        ),
    ] = 1.0,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/MODEL-DATASET).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="key=value: a model hyper-parameter or training setting; repeatable."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="Start from this run's weights (same model and hyper-parameters): items it "
            "knew keep their rows, new items start fresh (the daily warm-start retrain)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    protocol: Annotated[
        str,
        typer.Option(
            help="full: keep the epoch best on validation. paper: then refit on every "
            "training example (validation included) for that many epochs and test once."
        ),
    ] = "full",
) -> None:
    """Train a model, evaluate it with full ranking and write a run directory."""
    from sessionrec.data.sources import load_dataset, reload_dataset
    from sessionrec.models import create, get
    from sessionrec.models.params import params_dict
    from sessionrec.models.registry import (
        dataset_preset,
        split_settings,
        train_config,
        unused_setting_error,
    )
    from sessionrec.rundir import read_config
    from sessionrec.training.distributed import env_world
    from sessionrec.training.run import (
        PROTOCOLS,
        prepare_resume,
        train_and_evaluate,
        train_paper_protocol,
    )

    say = out.print if env_world().is_main else (lambda *a, **k: None)  # rank 0 only (torchrun)
    model_cls = get(model)
    name = Path(dataset).name if Path(dataset).is_dir() else dataset
    run_dir = out_dir or Path("runs") / f"{model}-{name}"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    if resume and init_from is not None:
        raise ConfigError("--resume continues its own run: leave out --init-from")
    if resume:
        extend = parse_assignments(set_ or [])
        if epochs is not None:
            extend["epochs"] = str(epochs)
        recommender, data, config = prepare_resume(run_dir, model, extend)
        saved = read_config(run_dir)
        protocol = saved.get("protocol", "full")
        valid_fraction = saved.get("select_valid_fraction", valid_fraction)
        say(f"resuming {run_dir}")
    else:
        preset = dataset_preset(model, name)
        if preset:
            say(
                f"{model} on {name}: the authors' settings ({model_cls.presets_source}): "
                + " ".join(f"{k}={v}" for k, v in preset.items()),
                highlight=False,
            )
        model_hp, train_hp, unused = split_settings(
            model, {**preset, **parse_assignments(set_ or [])}
        )
        options = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
        options = {k: v for k, v in options.items() if v is not None}
        unused += [k for k in options if k in model_cls.own_train_settings]
        if unused:
            raise unused_setting_error(model, sorted(unused)[0])
        train_hp.update(options)
        train_hp.update(seed=seed, device=device)
        config = train_config(model, train_hp)
        data = load_dataset(dataset, data_root, valid_fraction, train_fraction)
        recommender = create(model, data.num_items, seed=seed, **model_hp)
        if init_from is not None:
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
        say(
            f"training {model} on {data.name}: {len(data.train):,} examples, "
            f"{data.num_items:,} items -> {run_dir}"
        )
    if protocol == "paper":
        seed_, params = config.seed, params_dict(recommender.params)
        metrics = train_paper_protocol(
            lambda: create(model, data.num_items, seed=seed_, **params),
            lambda fraction: reload_dataset(dict(data.source, valid_fraction=fraction)),
            valid_fraction,
            config,
            run_dir,
            progress,
            resume,
        )
    else:
        metrics = train_and_evaluate(
            recommender, data, config, run_dir, progress=progress, resume=resume
        )
    say(
        metrics_table(
            f"{model} on {data.name} (test, %)",
            {model: metrics["test"]},
            extra={model: {"fit s": metrics["fit_seconds"]}},
        )
    )
    say(f"run directory: {run_dir}")


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Evaluate a saved run again on its test set and compare with its recorded metrics."""
    from sessionrec.progress import shown
    from sessionrec.rundir import METRICS_FILE, read_metrics
    from sessionrec.training.run import evaluate_run

    with shown(progress):
        test = evaluate_run(run_dir)["test"]
    rows = {"now": test}
    if (run_dir / METRICS_FILE).exists():
        # no test metrics when tuning skipped the test split
        recorded_test = read_metrics(run_dir, required=()).get("test")
        if recorded_test is not None:
            rows = {"recorded": recorded_test, "now": test}
    out.print(metrics_table(f"{run_dir} (test, %)", rows))


@app.command()
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    session: Annotated[str, typer.Option(help="Item ids in click order, comma-separated.")],
    k: Annotated[int, typer.Option(help="How many items.")] = 20,
    ann: Annotated[
        str | None,
        typer.Option(help="Approximate top-k: hnsw, ivf or flat (see `serve --help`)."),
    ] = None,
) -> None:
    """Top-k next items for one session."""
    from sessionrec.serving import SessionRecommender

    rec = SessionRecommender.load(run_dir, ann=ann)
    items: list[Any] = [x.strip() for x in session.split(",") if x.strip()]
    if rec.vocab.kind == "integer":  # the run's dataset uses integer ids
        try:
            items = [int(x) for x in items]
        except ValueError:
            raise ConfigError(
                f"--session must be comma-separated integer item ids, got '{session}'"
            ) from None
    result = rec.recommend(items, k)
    table = Table(title=f"{rec.model.name}: next items after {items}")
    table.add_column("rank", justify="right")
    table.add_column("item", justify="right")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(result.pairs(), 1):
        table.add_row(str(rank), str(item), f"{score:.4f}")
    out.print(table)
    if result.unknown_items:
        out.print(f"unknown items (dropped): {', '.join(map(str, result.unknown_items))}")


@app.command()
def update(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of pop or a kNN model.")],
    events: Annotated[
        Path, typer.Option(help="Completed sessions: a click log (CSV, TSV, Parquet).")
    ],
    session_column: Annotated[str, typer.Option(help="Session column.")] = "SessionId",
    item_column: Annotated[str, typer.Option(help="Item column (the dataset's ids).")] = "ItemId",
    time_column: Annotated[str, typer.Option(help="Time column (orders the clicks).")] = "Time",
    time_format: Annotated[str, typer.Option(help="auto | seconds | milliseconds | iso")] = "auto",
) -> None:
    """Add completed sessions to a served model without retraining (serving/live.py)."""
    import polars as pl

    from sessionrec.data.event_log import EventColumns, load_events
    from sessionrec.models import get
    from sessionrec.models.base import not_online
    from sessionrec.rundir import SESSIONS_LOG_FILE, read_config
    from sessionrec.serving.live import SessionLog, to_sessions
    from sessionrec.serving.vocab import load_vocabulary

    config = read_config(run_dir)
    if not get(config["model"]).learns_online:
        raise not_online(config["model"])
    columns = EventColumns(session_column, item_column, time_column, time_format)
    clicks, _ = load_events(events, columns)
    by_session = (
        clicks.sort("order", "row")
        .group_by("session", maintain_order=True)
        .agg(pl.col("item"), pl.col("order").max().alias("end"), pl.col("row").min())
        .sort("end", "row")
    )
    sessions = by_session["item"].to_list()
    vocab = load_vocabulary(run_dir, config, int(config["num_items"]))
    internal, unknown = to_sessions(sessions, vocab)
    SessionLog(run_dir).append(sessions)
    out.print(
        f"logged {len(sessions):,} sessions ({int(internal.offsets[-1]):,} clicks on known "
        f"items, {len(unknown):,} unknown ids skipped) to {run_dir / SESSIONS_LOG_FILE}: a running "
        "service folds them in before its next answer, `serve` and `recommend` at start",
        highlight=False,
    )


@app.command()
def demo(
    epochs: Annotated[
        int, typer.Option(help="Epochs per neural model (FOCOL: at most 2, see demo.py).")
    ] = 3,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo's runs go.")] = Path(
        "runs/demo"
    ),
    models: Annotated[
        str | None, typer.Option(help="Only these demo models, comma-separated (default: all).")
    ] = None,
    sessions: Annotated[
        int, typer.Option(help="Synthetic sessions to generate (fewer: faster, weaker models).")
    ] = 24000,
) -> None:
    """Train and evaluate the models on the built-in synthetic data; print a results table,
    draw HR/MRR per model and FOCOL's learned distance weights to PNG."""
    from sessionrec.demo import demo_models, next_steps, run_demo

    names = demo_models(models)
    result = run_demo(epochs, out_dir, console=out, models=names, sessions=sessions)
    stats = result.stats
    title = (
        f"synthetic data: {stats['fit_examples']:,} training examples, {stats['test_cases']:,} "
        f"test cases, {stats['max_item_id']:,} items; full ranking (%)"
    )
    out.print(metrics_table(title, result.rows, extra=result.extra, measures=("hr", "mrr")))
    for path in result.figures:
        out.print(f"wrote {path}", markup=False, highlight=False)
    for line in next_steps(out_dir, names):
        out.print(line, markup=False, highlight=False)


def _register_plugins() -> None:
    """Add the commands of `sessionrec.commands` and `sessionrec.analysis` modules."""
    import importlib
    import pkgutil

    import sessionrec.analysis as analysis
    import sessionrec.commands as commands

    for package, target in ((commands, app), (analysis, analyze_app)):
        for module in pkgutil.iter_modules(package.__path__):
            loaded = importlib.import_module(f"{package.__name__}.{module.name}")
            register = getattr(loaded, "register", None)
            if register is not None:
                register(target)


_register_plugins()


def main() -> None:
    """Entry point: run the app; turn known errors into one line on stderr."""
    debug = bool(os.environ.get("SESSIONREC_DEBUG"))
    # under torchrun every rank reports its own failure; name the rank unless it is rank 0
    where = f" (rank {os.environ['RANK']})" if os.environ.get("RANK", "0") != "0" else ""
    try:
        rv = app(standalone_mode=False)
    except KeyboardInterrupt:
        print("sessionrec: interrupted (a training run continues with --resume)", file=sys.stderr)
        sys.exit(130)
    except (SessionrecError, FloatingPointError) as e:
        if debug:
            raise
        print(f"sessionrec: error{where}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        if hasattr(e, "format_message") and hasattr(
            e, "exit_code"
        ):  # a usage error (Typer's click)
            if e.format_message():  # empty when the help text was shown instead
                print(f"sessionrec: error: {e.format_message()} (see --help)", file=sys.stderr)
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":  # click's Ctrl-C
            print("sessionrec: interrupted", file=sys.stderr)
            sys.exit(130)
        if debug:
            raise
        print(
            f"sessionrec: internal error{where}: {type(e).__name__}: {e} "
            "(set SESSIONREC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
