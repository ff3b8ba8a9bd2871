"""`sessionrec analyze importance|local-invariance|curve|long-tail`: analyses of trained runs
(the computations live in sessionrec.analysis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sessionrec.analysis.local_invariance import DEFAULT_THETAS
from sessionrec.commands.output import out
from sessionrec.errors import ConfigError

RunDirs = Annotated[list[Path], typer.Argument(help="Run directories (same dataset).")]
Thetas = Annotated[str, typer.Option(help="Similarity thresholds θ, comma-separated.")]
Beta = Annotated[
    int, typer.Option(help="Matched items must differ in index by less than β; 0: any.")
]
TopK = Annotated[int, typer.Option(help="Top-k cut-off.")]
ExcludeIdentical = Annotated[bool, typer.Option(help="Leave out pairs whose inputs are identical.")]
InvarianceOut = Annotated[
    Path | None, typer.Option("--out", help="Output directory (default: beside the first run).")
]


def importance(
    run_dir: Annotated[Path, typer.Argument(help="A FOCOL run directory.")],
    layer: Annotated[int, typer.Option(help="FOGCN layer (0 = first).")] = 0,
    max_distance: Annotated[int, typer.Option(help="Show distances −N..N.")] = 10,
    out_prefix: Annotated[
        Path | None, typer.Option("--out", help="Output prefix (default RUN_DIR/importance).")
    ] = None,
) -> None:
    """Plot the learned importance of each relative distance (FOCOL Fig. 4) to PNG and JSON."""
    from sessionrec.analysis.importance import importance_of_run, plot_importance
    from sessionrec.io import atomic_write_json

    result = importance_of_run(run_dir, layer, max_distance)
    prefix = out_prefix or run_dir / f"importance-layer{layer}"
    atomic_write_json(prefix.with_suffix(".json"), result)
    plot_importance(
        result,
        f"{result['model']} layer {layer + 1} ({run_dir.name})",
        prefix.with_suffix(".png"),
    )
    typer.echo(json.dumps({k: result[k] for k in ("model", "layer", "alpha")}))
    for k, m, s in zip(result["distances"], result["mean"], result["std"], strict=True):
        typer.echo(f"distance {k:+3d}: {m:.4f} ± {s:.4f}")
    typer.echo(f"wrote {prefix.with_suffix('.png')} and {prefix.with_suffix('.json')}")


def local_invariance(
    run_dirs: RunDirs,
    theta: Thetas = DEFAULT_THETAS,
    beta: Beta = 3,
    k: TopK = 20,
    exclude_identical: ExcludeIdentical = False,
    out_dir: InvarianceOut = None,
) -> None:
    """Accuracy on pairs of test cases that differ only by local reordering (LINet Fig. 1)."""
    from sessionrec.analysis import local_invariance as li
    from sessionrec.io import atomic_write_json

    if beta < 0 or k < 1:
        raise ConfigError("--beta must be >= 0 and --k >= 1")
    result = li.local_invariance(
        run_dirs, li.parse_thetas(theta), beta or None, k, exclude_identical
    )
    where = out_dir or run_dirs[0].parent / "local-invariance"
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_json(where / "local_invariance.json", result)
    png = li.plot(result, where / "local_invariance.png")
    table = Table(title=f"local invariance: pairs with both next items in top {k} (%)")
    for col in ("θ", "pairs", *result["models"]):
        table.add_column(col, justify="right")
    for i, t in enumerate(result["theta"]):
        cells = [entry["share"][i] for entry in result["models"].values()]
        shown = ["-" if c is None else f"{100 * c:.2f}" for c in cells]
        table.add_row(f"{t:g}", str(result["pairs"][i]), *shown)
    out.print(table)
    out.print(f"wrote {where / 'local_invariance.json'} and {png}")


def curve(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories of neural models.")],
    metric: Annotated[str, typer.Option(help="Validation metric, e.g. hr@20, mrr@20.")] = "hr@20",
    paper: Annotated[
        float | None, typer.Option(help="Draw the paper's figure (in %) as a dashed line.")
    ] = None,
    out_png: Annotated[
        Path | None, typer.Option("--out", help="PNG path (default: beside the first run).")
    ] = None,
) -> None:
    """Validation metric against training minutes, one line per run, to PNG and JSON."""
    from sessionrec.analysis.curves import plot_curves, validation_curve
    from sessionrec.io import atomic_write_json

    curves = [validation_curve(run, metric) for run in run_dirs]
    png = out_png or run_dirs[0].parent / f"curve-{metric.replace('@', '')}.png"
    if png.suffix != ".png":
        raise ConfigError(f"--out must end in .png, got {png}")
    plot_curves(curves, png, paper)
    atomic_write_json(png.with_suffix(".json"), {"metric": metric, "runs": curves})
    table = Table(title=f"validation {metric} (%) against training minutes")
    for col in ("run", "epoch", "minutes", metric):
        table.add_column(col, justify="right")
    for c in curves:
        for p in c["points"]:
            cut = " (cut)" if p["partial"] else ""
            table.add_row(
                c["run"], f"{p['epoch']}{cut}", f"{p['minutes']:.1f}", f"{100 * p['value']:.2f}"
            )
    out.print(table)
    out.print(f"wrote {png} and {png.with_suffix('.json')}")


def long_tail(
    run_dirs: RunDirs,
    edges: Annotated[
        str, typer.Option(help="Target counts where a new group starts, comma-separated.")
    ] = "1,3,10,30,100",
    k: TopK = 20,
    split: Annotated[
        str, typer.Option(help="Cases to group: test, or valid (the runs' validation split).")
    ] = "test",
    out_dir: InvarianceOut = None,
) -> None:
    """Accuracy by how often the next item was a training target, to PNG and JSON."""
    from sessionrec.analysis import long_tail as lt
    from sessionrec.io import atomic_write_json

    if k < 1:
        raise ConfigError("--k must be >= 1")
    result = lt.long_tail(run_dirs, lt.parse_edges(edges), k, split)
    where = out_dir or run_dirs[0].parent / "long-tail"
    where.mkdir(parents=True, exist_ok=True)
    atomic_write_json(where / "long_tail.json", result)
    png = lt.plot(result, where / "long_tail.png")
    out.print(_long_tail_table(result, k))
    normed = {name: r["median_norm"] for name, r in result["runs"].items() if r["median_norm"]}
    if normed:
        norms = Table(title="median norm of the groups' item vectors")
        for col in ("count", *normed):
            norms.add_column(col, justify="right")
        for i, label in enumerate(result["groups"]):
            norms.add_row(label, *("-" if v[i] is None else f"{v[i]:.3f}" for v in normed.values()))
        out.print(norms)
    out.print(f"wrote {where / 'long_tail.json'} and {png}")


def _long_tail_table(result: dict, k: int) -> Table:
    title = f"{result['split']} HR@{k} / MRR@{k} (%) by the next item's count as a training target"
    table = Table(title=title)
    for col in ("count", "items", "cases (%)", *result["runs"]):
        table.add_column(col, justify="right")
    for i, label in enumerate(result["groups"]):
        cells = []
        for r in result["runs"].values():
            hr, mrr = r[f"hr@{k}"][i], r[f"mrr@{k}"][i]
            cells.append("-" if hr is None else f"{100 * hr:.2f} / {100 * mrr:.2f}")
        share = f"{result['cases'][i]:,} ({100 * result['share'][i]:.1f})"
        table.add_row(label, f"{result['items'][i]:,}", share, *cells)
    return table
