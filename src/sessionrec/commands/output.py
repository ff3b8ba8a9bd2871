"""What commands print with: one Rich console and the tables several commands show."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()


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
        table.add_column(name.upper(), justify="right")
    extra_cols = sorted({c for e in (extra or {}).values() for c in e})
    for col in extra_cols:
        table.add_column(col, justify="right")
    for model, metrics in rows.items():
        cells = [f"{100 * metrics[n]:.2f}" if n in metrics else "-" for n in names]
        cells += [str((extra or {}).get(model, {}).get(c, "")) for c in extra_cols]
        table.add_row(model, *cells)
    return table


def counts_table(title: str, key: str, values: dict[str, Any]) -> Table:
    """Two columns, name and value; whole numbers with thousands separators."""
    table = Table(title=title)
    table.add_column(key)
    table.add_column("value", justify="right")
    for name, value in values.items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    return table
