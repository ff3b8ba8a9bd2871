"""Raw click logs to a prepared dataset, with the SR-GNN `preprocess.py` conventions, in Polars.

Formats `diginetica`, `yoochoose`, `retailrocket`, and `events`/`recbole` (read by
`data/event_log.py`); the rules are applied in order, each counted in `stats.json`.

Spec: docs/data.md#preparing-a-raw-click-log
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sessionrec.data.event_log import (
    RECBOLE_COLUMNS,
    EventColumns,
    describe,
    first_line,
    load_events,
)
from sessionrec.data.prepared import check_output_dir, write_prepared
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, DataError
from sessionrec.progress import status

FORMATS = ("diginetica", "yoochoose", "retailrocket", "events", "recbole")
DEFAULT_TEST_DAYS = {"diginetica": 7, "yoochoose": 1, "retailrocket": 7, "events": 7, "recbole": 7}
GENERIC = ("events", "recbole")  # any click log: columns named by options (data.event_log)
MIN_SESSION_LENGTH = 2
RETAILROCKET_SESSION_GAP_MINUTES = 30
DAY_SECONDS = 86_400

_SEPARATOR = {"diginetica": ";", "yoochoose": ",", "retailrocket": ","}
_DESCRIPTION = {
    "diginetica": "Diginetica train-item-views.csv",
    "yoochoose": "YooChoose yoochoose-clicks.dat",
    "retailrocket": "RetailRocket events.csv",
}
# Required columns: normalized name (lower case, no '_' or spaces) -> name shown in messages.
_REQUIRED = {
    "diginetica": {
        "sessionid": "sessionId",
        "itemid": "itemId",
        "timeframe": "timeframe",
        "eventdate": "eventdate",
    },
    "retailrocket": {
        "timestamp": "timestamp",
        "visitorid": "visitorid",
        "event": "event",
        "itemid": "itemid",
    },
}
_YOOCHOOSE_COLUMNS = ("session_id", "timestamp", "item_id", "category")
_YOOCHOOSE_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"


def parse_fraction(value: str | float) -> float:
    """Parse a fraction such as ``"1/64"``, ``"0.25"`` or ``0.25``; it must lie in (0, 1]."""
    try:
        f = Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        f = None
    if f is None or not 0 < f <= 1:
        raise ConfigError(
            f"invalid fraction {value!r}: expected a number in (0, 1] such as 1/64 or 0.25"
        )
    return float(f)


def prepare(
    fmt: str,
    input_path: str | Path,
    output_dir: str | Path,
    fraction: float | str | None = None,
    test_days: int | None = None,
    min_item_support: int = 5,
    overwrite: bool = False,
    *,
    until_stable: bool = True,
    test_fraction: float | None = None,
    test_input: str | Path | None = None,
    columns: EventColumns | None = None,
    keep_unseen_test_items: bool = False,
    min_test_prefix: int = 1,
) -> dict[str, Any]:
    """Preprocess a raw click log into a prepared dataset directory; return its stats.

    Rules: see the module docstring. Bad input raises `DataError`, bad options `ConfigError`.
    """
    test_days = _check_options(
        fmt, test_days, test_fraction, test_input, min_item_support, min_test_prefix
    )
    frac = None if fraction is None else parse_fraction(fraction)
    path = Path(input_path)
    out = Path(output_dir)
    check_output_dir(out, overwrite)  # fail before the (possibly long) processing

    with status(f"reading {path}"):
        if fmt in GENERIC:
            clicks, raw = _load_generic(path, fmt, columns, test_input)
        else:
            clicks, raw = _LOADERS[fmt](path)
    split = Split(test_days, test_fraction, test_input is not None)
    test_rules = TestRules(keep_unseen_test_items, min_test_prefix)
    with status(f"filtering, splitting and numbering {clicks.height:,} clicks"):
        train, test, item_ids, stats = _apply_rules(
            clicks, path, fmt, split, min_item_support, frac, until_stable, test_rules
        )
    stats = {"format": fmt, "input": str(path), **raw, **stats}
    if test_input is not None:
        stats["test_input"] = str(test_input)
    write_prepared(out, train, test, item_ids, stats, overwrite=overwrite)
    return stats


def _check_options(
    fmt: str,
    test_days: int | None,
    test_fraction: float | None,
    test_input: str | Path | None,
    min_item_support: int,
    min_test_prefix: int,
) -> int:
    """Refuse bad `prepare` options with a ConfigError; return `test_days` (the format's default
    when unset)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown raw format {fmt!r}: expected one of {', '.join(FORMATS)}")
    chosen = [o for o, v in (("test_days", test_days), ("test_fraction", test_fraction),
                             ("test_input", test_input)) if v is not None]  # fmt: skip
    if len(chosen) > 1:
        raise ConfigError(f"choose one way to split: {' or '.join(chosen)}")
    if test_input is not None and fmt not in GENERIC:
        raise ConfigError(f"a separate test file needs --format events or recbole, not {fmt}")
    if test_fraction is not None and not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"invalid test_fraction {test_fraction!r}: expected 0 < f < 1")
    if isinstance(min_test_prefix, bool) or not isinstance(min_test_prefix, int):
        raise ConfigError(f"invalid min_test_prefix {min_test_prefix!r}: expected an integer")
    if min_test_prefix < 1:
        raise ConfigError(f"invalid min_test_prefix {min_test_prefix}: expected at least 1")
    if test_days is None:
        test_days = DEFAULT_TEST_DAYS[fmt]
    if isinstance(test_days, bool) or not isinstance(test_days, int) or test_days < 1:
        raise ConfigError(f"invalid test_days {test_days!r}: expected a positive integer")
    if (
        isinstance(min_item_support, bool)
        or not isinstance(min_item_support, int)
        or min_item_support < 1
    ):
        raise ConfigError(
            f"invalid min_item_support {min_item_support!r}: expected a positive integer"
        )
    return test_days


# ----------------------------------------------------------------------------- reading


def _normalize(name: str) -> str:
    return name.lstrip("\ufeff").strip().strip('"').lower().replace("_", "").replace(" ", "")


def _first_line(path: Path, fmt: str) -> str:
    return first_line(path, f"the {_DESCRIPTION[fmt]}")


def _scan(path: Path, fmt: str, **kwargs: Any) -> pl.LazyFrame:
    """Scan as all-string columns with a `row` index (0-based data row)."""
    return pl.scan_csv(
        path,
        separator=_SEPARATOR[fmt],
        infer_schema=False,
        row_index_name="row",
        encoding="utf8",
        **kwargs,
    )


def _collect(path: Path, fmt: str, lf: pl.LazyFrame) -> pl.DataFrame:
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot be parsed as the {_DESCRIPTION[fmt]} ({msg})") from e


def _header_columns(path: Path, fmt: str, first: str, lf: pl.LazyFrame) -> dict[str, str]:
    """Map required normalized column names to the file's names; raise on missing columns."""
    sep = _SEPARATOR[fmt]
    try:
        names = [c for c in lf.collect_schema().names() if c != "row"]
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read the header of the {_DESCRIPTION[fmt]} ({msg})") from e
    found = {_normalize(c): c for c in names}
    missing = [shown for c, shown in _REQUIRED[fmt].items() if c not in found]
    if not missing:
        return {c: found[c] for c in _REQUIRED[fmt]}
    other = ";" if sep == "," else ","
    if len(names) == 1 and other in first:
        raise DataError(
            f"{path}: header has no {sep!r} separator but contains {other!r}: the "
            f"{_DESCRIPTION[fmt]} is {sep!r}-separated (wrong separator or wrong file?)"
        )
    raise DataError(
        f"{path}: missing column(s) {', '.join(missing)} for the {_DESCRIPTION[fmt]}; "
        f"found: {', '.join(names)}"
    )


def _parse(
    path: Path,
    fmt: str,
    lf: pl.LazyFrame,
    fields: dict[str, tuple[str, pl.Expr, str]],
    line_base: int,
) -> pl.DataFrame:
    """Collect `row` plus typed columns; on an unparsable value name its column, line and value.

    `fields` maps output name -> (raw column, expression on it, what was expected).
    """
    df = _collect(path, fmt, lf.select("row", *(e.alias(k) for k, (_, e, _) in fields.items())))
    if df.height == 0:
        raise DataError(f"{path}: has no data rows")
    for name, (raw_col, _, expected) in fields.items():
        if df[name].null_count():
            row = df.filter(pl.col(name).is_null())["row"][0]
            value = _collect(path, fmt, lf.filter(pl.col("row") == row).select(raw_col)).item()
            got = "an empty value" if value is None or not value.strip() else repr(value)
            where = f"column {raw_col!r}, line {row + line_base}"
            raise DataError(f"{path}: {where}: expected {expected}, got {got}")
    return df


def _int(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().cast(pl.Int64, strict=False)


def _date_seconds(col: str) -> pl.Expr:
    """A YYYY-MM-DD date as seconds since 1970 (its midnight, UTC)."""
    date = pl.col(col).str.strip_chars().str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return date.cast(pl.Int64) * DAY_SECONDS


def _text(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars()


# What to read from a file with a header: output column -> (required column, normalized as in
# `_REQUIRED`; how to parse it; what a value must look like, for the error message).
FieldSpecs = dict[str, tuple[str, Callable[[str], pl.Expr], str]]
_DIGINETICA_FIELDS: FieldSpecs = {
    "session": ("sessionid", _int, "an integer session id"),
    "item": ("itemid", _int, "an integer item id"),
    "order": ("timeframe", _int, "an integer timeframe"),
    "time": ("eventdate", _date_seconds, "a YYYY-MM-DD date"),
}
_RETAILROCKET_FIELDS: FieldSpecs = {
    "order": ("timestamp", _int, "an integer timestamp in ms"),
    "visitor": ("visitorid", _int, "an integer visitor id"),
    "event": ("event", _text, "an event name"),
    "item": ("itemid", _int, "an integer item id"),
}


def _read_with_header(
    path: Path, fmt: str, fields: FieldSpecs
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Parse `fields` from a file whose header names the columns; also return the file's names
    of the required columns."""
    first = _first_line(path, fmt)
    lf = _scan(path, fmt)
    cols = _header_columns(path, fmt, first, lf)
    typed = {name: (cols[c], parse(cols[c]), what) for name, (c, parse, what) in fields.items()}
    return _parse(path, fmt, lf, typed, line_base=2), cols


def _load_diginetica(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    df, _ = _read_with_header(path, "diginetica", _DIGINETICA_FIELDS)
    return df, {"raw_clicks": df.height}


def _load_yoochoose(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    first = _first_line(path, "yoochoose")
    fields = first.split(",")
    if len(fields) < 3:
        raise DataError(
            f"{path}: first line has {len(fields)} comma-separated field(s), expected "
            f"{','.join(_YOOCHOOSE_COLUMNS)} (wrong separator or wrong file?)"
        )
    has_header = not fields[0].strip().strip('"').lstrip("-").isdigit()
    if has_header and _normalize(fields[0]) != "sessionid":
        raise DataError(
            f"{path}: column 'session_id', line 1: expected an integer session id, "
            f"got {fields[0]!r}"
        )
    names = [*_YOOCHOOSE_COLUMNS[:3], *(f"extra_{i}" for i in range(3, len(fields)))]
    if len(fields) >= 4:
        names[3] = "category"
    lf = _scan(path, "yoochoose", has_header=has_header, new_columns=names)
    ts = (
        pl.col("timestamp")
        .str.strip_chars()
        .str.strptime(pl.Datetime("ms"), _YOOCHOOSE_TS_FORMAT, strict=False)
    )
    df = _parse(
        path,
        "yoochoose",
        lf,
        {
            "session": ("session_id", _int("session_id"), "an integer session id"),
            "order": ("timestamp", ts.cast(pl.Int64), "a timestamp like 2014-04-07T10:51:09.277Z"),
            "item": ("item_id", _int("item_id"), "an integer item id"),
        },
        line_base=2 if has_header else 1,
    )
    df = df.with_columns(time=pl.col("order") // 1000)  # SR-GNN truncates to whole seconds
    return df, {"raw_clicks": df.height}


def _load_retailrocket(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    df, cols = _read_with_header(path, "retailrocket", _RETAILROCKET_FIELDS)
    raw_events = df.height
    df = df.filter(pl.col("event") == "view").drop("event")
    if df.height == 0:
        raise DataError(f"{path}: column {cols['event']!r} has no 'view' events")
    gap_ms = RETAILROCKET_SESSION_GAP_MINUTES * 60 * 1000
    df = df.sort("visitor", "order", "row").with_columns(
        session=(
            (pl.col("visitor") != pl.col("visitor").shift(1))
            | (pl.col("order") - pl.col("order").shift(1) > gap_ms)
        )
        .fill_null(True)
        .cum_sum()
        .cast(pl.Int64),
        time=pl.col("order") // 1000,
    )
    return df.drop("visitor"), {"raw_events": raw_events, "raw_clicks": df.height}


def _load_generic(
    path: Path, fmt: str, columns: EventColumns | None, test_input: str | Path | None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """An event log (and its separate test log): the `part` column says which file (0, 1)."""
    columns = columns or (RECBOLE_COLUMNS if fmt == "recbole" else EventColumns())
    df, unit = load_events(path, columns, recbole=fmt == "recbole")
    raw: dict[str, Any] = {"raw_clicks": df.height, "reading": describe(columns, unit)}
    df = df.with_columns(part=pl.lit(0, pl.Int8))
    if test_input is not None:
        test, test_unit = load_events(Path(test_input), columns, recbole=fmt == "recbole")
        if test_unit != unit:
            raise DataError(f"{test_input}: times are {test_unit}, but {unit} in {path}")
        raw["raw_test_clicks"] = test.height
        for key in ("session", "item"):  # one dtype per column: text unless both are integers
            if df[key].dtype != test[key].dtype:
                df, test = (f.with_columns(pl.col(key).cast(pl.String)) for f in (df, test))
        if df["session"].dtype == pl.String:  # keep the two files' sessions apart
            apart = pl.lit("test:") + pl.col("session")
        else:
            apart = pl.col("session") - test["session"].min() + df["session"].max() + 1
        test = test.with_columns(
            session=apart, row=pl.col("row") + df.height, part=pl.lit(1, pl.Int8)
        )
        df = pl.concat([df, test])
    return df, raw


_LOADERS = {
    "diginetica": _load_diginetica,
    "yoochoose": _load_yoochoose,
    "retailrocket": _load_retailrocket,
}


# ----------------------------------------------------------------------------- rules


def _counts(step: str, df: pl.DataFrame) -> dict[str, Any]:
    return {
        "step": step,
        "clicks": df.height,
        "sessions": df["session"].n_unique(),
        "items": df["item"].n_unique(),
    }


def _drop_short(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.len().over("session") >= MIN_SESSION_LENGTH)


def _iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # before year 1 or after 9999 (bad input)
        return f"{seconds} s since 1970"


def _to_sessions(df: pl.DataFrame, n_sessions: int) -> Sessions:
    """`df` sorted so that sessions are contiguous, with a 0-based contiguous `sid` column."""
    lengths = np.bincount(df["sid"].to_numpy(), minlength=n_sessions)
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sessions(df["iid"].to_numpy().astype(np.int64), offsets)


def _ordered(df: pl.DataFrame) -> pl.DataFrame:
    """Sessions by (time, first row in the file), clicks by (order, row); adds contiguous `sid`."""
    df = df.sort("end", "first", "order", "row")
    return df.with_columns(sid=pl.col("first").rle_id())


@dataclass(frozen=True)
class Split:
    """Which sessions are test: those after the last `days`, the latest `fraction` of
    sessions, or (`given`) the separate test file's."""

    days: int
    fraction: float | None = None
    given: bool = False

    def describe(self) -> str:
        if self.given:
            return "the sessions of the separate test file"
        if self.fraction is not None:
            return f"the latest {self.fraction:g} of sessions by session time"
        return f"the last {self.days} day(s)"


@dataclass(frozen=True)
class TestRules:
    """Rule 6's variants: keep test clicks on items unseen in training; shortest test input."""

    keep_unseen_items: bool = False
    min_prefix: int = 1


def _split(df: pl.DataFrame, split: Split) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    """(train, test, split time, sessions dropped at the split time)."""
    if split.given:
        test = df.filter(pl.col("part") == 1)
        first = int(test["end"].min()) if test.height else int(df["end"].max())
        return df.filter(pl.col("part") == 0), test, first, 0
    if split.fraction is not None:
        sessions = (
            df.group_by("session").agg(pl.col("end").first(), pl.col("first").first())
        ).sort("end", "first")
        n_test = max(1, round(sessions.height * split.fraction))
        is_test = pl.col("session").is_in(sessions.tail(n_test)["session"].implode())
        split_time = int(sessions["end"][max(sessions.height - n_test, 0)])
        return df.filter(~is_test), df.filter(is_test), split_time, 0
    split_time = int(df["end"].max()) - split.days * DAY_SECONDS
    boundary = df.filter(pl.col("end") == split_time)["session"].n_unique()
    train, test = df.filter(pl.col("end") < split_time), df.filter(pl.col("end") > split_time)
    return train, test, split_time, boundary


def _apply_rules(
    clicks: pl.DataFrame,
    path: Path,
    fmt: str,
    split: Split,
    min_support: int,
    fraction: float | None,
    until_stable: bool,
    test_rules: TestRules = TestRules(),
) -> tuple[Sessions, Sessions, list[str], dict[str, Any]]:
    """The common filtering, splitting and renumbering rules (see the module docstring)."""
    df = _with_session_keys(clicks, fmt)
    t_min, t_max = int(clicks["time"].min()), int(clicks["time"].max())
    span_days = (t_max - t_min) / DAY_SECONDS
    span = f"the log spans {span_days:.2f} days ({_iso(t_min)} to {_iso(t_max)})"
    steps = [_counts("raw", df)]
    df, passes = _filter(df, min_support, until_stable, steps)
    if df.height == 0:
        raise DataError(
            f"{path}: no sessions remain after dropping sessions shorter than "
            f"{MIN_SESSION_LENGTH} and items with fewer than {min_support} clicks "
            f"({clicks.height} raw clicks)"
        )
    train, test, split_time, boundary = _split(df, split)
    steps.append(_counts("split_train", train))
    steps.append(_counts("split_test", test))
    if train.height == 0:
        raise DataError(
            f"{path}: no training sessions remain after filtering and holding out "
            f"{split.describe()} for test; {span} (choose another --test-days or "
            "--test-fraction)"
        )
    train, n_train = _keep_recent(_ordered(train), fraction, path, steps)
    originals, train, test = _number_items(train, test, test_rules.keep_unseen_items, steps)
    if test.height == 0:
        raise DataError(
            f"{path}: no test sessions remain after filtering (test = {split.describe()}, "
            f"restricted to training items, length >= {MIN_SESSION_LENGTH}); {span}"
        )
    test = _ordered(test)
    train_s, test_s = _to_sessions(train, n_train), _to_sessions(test, int(test["sid"][-1]) + 1)
    stats: dict[str, Any] = {
        "rules": _rules(fmt, split, min_support, until_stable, fraction, test_rules),
        "steps": steps,
        "filter_passes": passes,
        "first_time": _iso(t_min),
        "last_time": _iso(t_max),
        "span_days": round(span_days, 4),
        "split_time": _iso(split_time),
        "sessions_at_split_dropped": boundary,
        "train_sessions": len(train_s),
        "train_clicks": int(train_s.offsets[-1]),
        "train_examples": int(train_s.offsets[-1]) - len(train_s),
        "test_sessions": len(test_s),
        "test_clicks": int(test_s.offsets[-1]),
        "test_examples": int(np.maximum(test_s.lengths - test_rules.min_prefix, 0).sum()),
        "items": originals.len(),
    }
    return train_s, test_s, [str(x) for x in originals.to_list()], stats


def _with_session_keys(clicks: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """The columns the rules use, plus each session's time (`end`) and first row (`first`).

    Both come from the raw session, before any filtering (SR-GNN)."""
    return clicks.select(
        "session",
        "item",
        "order",
        "row",
        *(["part"] if "part" in clicks.columns else []),
        end=(
            pl.col("time").sort_by("row").last() if fmt == "diginetica" else pl.col("time").max()
        ).over("session"),
        first=pl.col("row").min().over("session"),
    )


def _filter(
    df: pl.DataFrame, min_support: int, until_stable: bool, steps: list[dict[str, Any]]
) -> tuple[pl.DataFrame, int]:
    """Rules 1-2: drop short sessions, then rare items and short sessions (until stable, or
    once); each step's counts go to `steps`. Returns the clicks left and the passes made."""
    df = _drop_short(df)
    steps.append(_counts(f"drop_sessions_shorter_than_{MIN_SESSION_LENGTH}", df))
    passes = 0
    while True:
        before = df.height
        df = _drop_short(df.filter(pl.len().over("item") >= min_support))
        passes += 1
        steps.append(_counts(f"drop_items_support_below_{min_support}_pass_{passes}", df))
        if df.height == before or not until_stable or df.height == 0:
            return df, passes


def _keep_recent(
    train: pl.DataFrame, fraction: float | None, path: Path, steps: list[dict[str, Any]]
) -> tuple[pl.DataFrame, int]:
    """Rule 4: the most recent `fraction` of the (ordered) training sessions, renumbered from 0;
    returns them and their count."""
    n_train = int(train["sid"][-1]) + 1
    if fraction is None:
        return train, n_train
    keep = int(n_train * fraction)
    if keep < 1:
        raise DataError(f"{path}: fraction {fraction:g} of {n_train} training sessions keeps none")
    train = train.filter(pl.col("sid") >= n_train - keep).with_columns(
        sid=pl.col("sid") - (n_train - keep)
    )
    steps.append(_counts("keep_most_recent_fraction", train))
    return train, keep


def _number_items(
    train: pl.DataFrame, test: pl.DataFrame, keep_unseen: bool, steps: list[dict[str, Any]]
) -> tuple[pl.Series, pl.DataFrame, pl.DataFrame]:
    """Rules 5-6: items numbered 1..N (`iid`) by first appearance in training (then, with
    `keep_unseen`, in test); test clicks on other items and short test sessions dropped.
    Returns the original ids in numbering order, train and test."""
    originals = train["item"].unique(maintain_order=True)
    if keep_unseen:  # then the test-only items, by first appearance in test
        unseen = _ordered(test)["item"].unique(maintain_order=True)
        originals = pl.concat([originals, unseen.filter(~unseen.is_in(originals.implode()))])
    new_ids = pl.int_range(1, originals.len() + 1, eager=True, dtype=pl.Int64)
    train = train.with_columns(iid=pl.col("item").replace_strict(originals, new_ids))

    iid = pl.col("item").replace_strict(originals, new_ids, default=None)
    test = test.with_columns(iid=iid).filter(pl.col("iid").is_not_null())
    if not keep_unseen:
        steps.append(_counts("test_drop_items_not_in_train", test))
    test = _drop_short(test)
    steps.append(_counts(f"test_drop_sessions_shorter_than_{MIN_SESSION_LENGTH}", test))
    return originals, train, test


def _rules(
    fmt: str,
    split: Split,
    min_support: int,
    until_stable: bool,
    fraction: float | None,
    test_rules: TestRules,
) -> dict[str, Any]:
    """The rules applied, as recorded in the dataset's stats."""
    by_split = not split.given and split.fraction is None
    rules: dict[str, Any] = {
        "click_order": {
            "diginetica": "timeframe",
            "yoochoose": "timestamp",
            "retailrocket": "timestamp",
        }.get(fmt, "time, ties by position in the file"),
        "session_time": {
            "diginetica": "eventdate on the session's last line in the file (SR-GNN), seconds",
            "yoochoose": "last click timestamp, truncated to seconds",
            "retailrocket": "last view timestamp, seconds",
        }.get(fmt, "latest click, seconds"),
        "min_session_length": MIN_SESSION_LENGTH,
        "min_item_support": min_support,
        "repeat_filters_until_stable": until_stable,
        "test": split.describe(),
        "test_days": split.days if by_split else None,
        "test_fraction": split.fraction,
        "split": "train: session time < max - test_days; test: > (equal: dropped)"
        if by_split
        else "by session, as `test` says",
        "fraction": fraction,
        "test_items_restricted_to_train": not test_rules.keep_unseen_items,
        "min_test_session_length": MIN_SESSION_LENGTH,
        "min_test_prefix": test_rules.min_prefix,
        "item_numbering": "1..N by first appearance in time-ordered training sessions",
    }
    if fmt == "retailrocket":
        rules["event"] = "view"
        rules["session_gap_minutes"] = RETAILROCKET_SESSION_GAP_MINUTES
    return rules
