"""Generic click logs: one event per row with a session, an item and a time (CSV, TSV, Parquet).

Also RecBole atomic `.inter` files; scanned lazily, only the three columns collected.

Spec: docs/data.md#generic-click-logs-events-recbole
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sessionrec.errors import ConfigError, DataError

TIME_FORMATS = ("auto", "seconds", "milliseconds", "iso")
MS_THRESHOLD = 100_000_000_000  # epoch numbers this large are milliseconds (seconds: year 5138)
PARQUET_SUFFIXES = (".parquet", ".pq")
_NAIVE_ISO = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_OFFSET_ISO = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")


@dataclass(frozen=True)
class EventColumns:
    """Which columns hold the session, the item and the time, and how time is written."""

    session: str = "SessionId"
    item: str = "ItemId"
    time: str = "Time"
    time_format: str = "auto"
    separator: str | None = None  # None: by the file's suffix (.csv ',', otherwise tab)

    def validate(self) -> None:
        if self.time_format not in TIME_FORMATS:
            raise ConfigError(
                f"time format must be one of {', '.join(TIME_FORMATS)}, got {self.time_format!r}"
            )
        if self.separator is not None and len(self.separator) != 1:
            raise ConfigError(f"separator must be one character, got {self.separator!r}")
        names = (self.session, self.item, self.time)
        if len(set(names)) != 3 or not all(names):
            raise ConfigError(f"session, item and time columns must be three names: {names}")


RECBOLE_COLUMNS = EventColumns("session_id", "item_id", "timestamp", "auto", "\t")


def load_events(
    path: Path, columns: EventColumns, recbole: bool = False
) -> tuple[pl.DataFrame, str]:
    """(`session`, `item`, `order` in ms, `time` in s, `row`), and the time unit read.

    Integer ids stay integers, other ids are text; only these three columns are collected.
    """
    columns.validate()
    lf, names, line_base = _scan(path, columns, recbole)
    missing = [c for c in (columns.session, columns.item, columns.time) if c not in names]
    if missing:
        hint = "--session-column/--item-column/--time-column name yours"
        raise DataError(
            f"{path}: missing column {missing[0]!r} (found: {', '.join(names)}; {hint})"
        )
    raw = {"session": columns.session, "item": columns.item, "time": columns.time}
    schema = lf.collect_schema()
    when = _time_expr(pl.col(raw["time"]), schema[raw["time"]], columns.time_format)
    ids = [_id_expr(pl.col(raw[k]), schema[raw[k]]).alias(k) for k in ("session", "item")]
    df = _collect(path, lf.select("row", *ids, when.alias("t")))
    if df.height == 0:
        raise DataError(f"{path}: has no data rows")
    for key in ("session", "item"):
        if df[key].null_count():
            row = int(df.filter(pl.col(key).is_null())["row"][0])
            raise DataError(
                f"{path}: column {raw[key]!r}, line {row + line_base}: expected a value, "
                "got an empty one"
            )
    bad = _Bad(path, lf, raw["time"], line_base)
    order, unit = _time_ms(df, schema[raw["time"]], columns.time_format, bad)
    df = df.with_columns(order=order).with_columns(time=pl.col("order") // 1000)
    return df.select("session", "item", "order", "time", "row"), unit


def _id_expr(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Integer ids as Int64, anything else as stripped text (empty text is missing)."""
    if dtype.is_integer():
        return expr.cast(pl.Int64)
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _time_expr(expr: pl.Expr, dtype: pl.DataType, time_format: str) -> pl.Expr:
    """Timestamps as epoch ms (Int64); numbers and numeric text as Float64; ISO text as ms."""
    if isinstance(dtype, pl.Datetime):
        return expr.dt.epoch("ms")
    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("ms")).dt.epoch("ms")
    if dtype.is_numeric():
        return expr.cast(pl.Float64)
    if time_format == "iso":
        return iso_to_ms(expr.cast(pl.String))
    return expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)


@dataclass(frozen=True)
class _Bad:
    """Reports the first bad time: re-reads just that row's raw value for the message."""

    path: Path
    lf: pl.LazyFrame
    column: str
    line_base: int

    def raise_at(self, df: pl.DataFrame, values: pl.Series, expected: str) -> None:
        row = int(df.filter(values.is_null())["row"][0])
        query = self.lf.filter(pl.col("row") == row).select(pl.col(self.column).cast(pl.String))
        value = _collect(self.path, query).item()
        got = "an empty one" if value is None or not value.strip() else repr(value)
        where = f"column {self.column!r}, line {row + self.line_base}"
        if got == "an empty one":
            raise DataError(f"{self.path}: {where}: expected a value, got an empty one")
        raise DataError(f"{self.path}: {where}: expected {expected}, got {got}")

    def iso(self) -> pl.Series:
        """The column read again as ISO-8601 text (epoch ms)."""
        query = self.lf.select(iso_to_ms(pl.col(self.column).cast(pl.String)).alias("t"))
        return _collect(self.path, query)["t"]


def _scan(path: Path, columns: EventColumns, recbole: bool) -> tuple[pl.LazyFrame, list[str], int]:
    """A lazy scan with a `row` index, the column names, and the line number of row 0."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file (expected a click log)")
    if path.suffix.lower() in PARQUET_SUFFIXES and not recbole:
        try:
            lf = pl.scan_parquet(path).with_row_index("row")
            names = [c for c in lf.collect_schema().names() if c != "row"]
        except (pl.exceptions.PolarsError, OSError) as e:
            raise DataError(f"{path}: cannot be read as Parquet ({_first(e)})") from None
        return lf, names, 0
    separator = columns.separator or ("," if path.suffix.lower() == ".csv" else "\t")
    header = _header(path, separator)
    names = [h.split(":", 1)[0] if recbole else h for h in header]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: line 1: column {name!r} appears twice in the header")
        seen.add(name)
    lf = pl.scan_csv(
        path,
        separator=separator,
        infer_schema=False,
        row_index_name="row",
        encoding="utf8",
        new_columns=names,
        quote_char=None if recbole else '"',
    )
    return lf, names, 2


def first_line(path: Path, expected: str) -> str:
    """Existence, size and encoding checks; the first line of a text file (`expected` says
    what the file should be, for the messages)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file (expected {expected})")
    try:
        with open(path, "rb") as f:
            head = f.readline(1 << 16)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not head.strip():
        raise DataError(f"{path}: file is empty (expected {expected})")
    try:
        return head.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (expected {expected})") from None


def _header(path: Path, separator: str) -> list[str]:
    line = first_line(path, "a click log with a header line")
    return [h.strip().strip('"') for h in line.split(separator)]


def _collect(path: Path, lf: pl.LazyFrame) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as e:
        raise DataError(f"{path}: cannot be parsed as a click log ({_first(e)})") from None


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def iso_to_ms(text: pl.Expr) -> pl.Expr:
    """ISO-8601 text to epoch milliseconds (UTC); null where no accepted form matches."""
    s = text.str.strip_chars()
    naive = [
        s.str.strip_suffix("Z").str.strptime(pl.Datetime("ms"), f, strict=False, exact=True)
        for f in _NAIVE_ISO
    ]
    aware = [
        s.str.strptime(pl.Datetime("ms", "UTC"), f, strict=False, exact=True).dt.replace_time_zone(
            None
        )
        for f in _OFFSET_ISO
    ]
    return pl.coalesce([*naive, *aware]).cast(pl.Int64)


def _time_ms(
    df: pl.DataFrame, dtype: pl.DataType, time_format: str, bad: _Bad
) -> tuple[pl.Series, str]:
    """Epoch milliseconds of every row and the unit read; one clear error for a bad value."""
    t = df["t"]
    if isinstance(dtype, pl.Datetime | pl.Date):
        if t.null_count():
            bad.raise_at(df, t, "a time")
        return t.cast(pl.Int64), "timestamp column"
    fmt = time_format
    if fmt == "auto":
        if t.null_count() == 0:
            fmt = "milliseconds" if float(t.abs().max()) >= MS_THRESHOLD else "seconds"
        elif t.null_count() == len(t) and not dtype.is_numeric():
            fmt, t = "iso", bad.iso()
        else:
            bad.raise_at(df, t, "a number like the other times")
    if fmt == "iso":
        if t.null_count():
            bad.raise_at(df, t, "an ISO-8601 time such as 2024-05-01T12:30:00Z")
        return t, fmt
    if t.null_count():
        bad.raise_at(df, t, f"epoch {fmt} (a number)")
    scale = 1000.0 if fmt == "seconds" else 1.0
    return (t * scale).round(0).cast(pl.Int64), fmt


def describe(columns: EventColumns, unit: str) -> dict[str, Any]:
    """The reading rules, for stats.json."""
    return {
        "session_column": columns.session,
        "item_column": columns.item,
        "time_column": columns.time,
        "time_format": unit,
        "click_order": "time, ties by position in the file",
        "session_time": "latest click, seconds",
    }
