"""PNG figures of a reproduction (matplotlib, Agg; no display needed).

Tables get `table.png` (ours as bars with the paper's values as markers), FOCOL Fig. 3 gets
`fig3.png` (one panel per swept parameter), Fig. 4 one `fig4-<dataset>.png` per dataset
(the importance plot of `sessionrec analyze importance`) and LINet Fig. 1 one
`fig1-<dataset>.png` per dataset (the plot of `sessionrec analyze local-invariance`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.reproduce.experiments import IMPORTANCE, INVARIANCE, SWEEP, TABLE

AXIS_LABELS = {
    "beta": r"$\beta$ (weight of the CSRL loss)",
    "fogcn_layers": r"$L_G$ (FOGCN layers)",
    "transformer_layers": r"$L_T$ (Transformer layers)",
}


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _datasets(results: dict[str, Any]) -> list[str]:
    return [d["name"] for d in results["datasets"]]


def table_figure(results: dict[str, Any], path: Path) -> Path:
    """One panel per dataset: bars of our HR@20 and MRR@20 per row, paper values as markers."""
    datasets = _datasets(results)
    metrics = [m for m in ("hr@20", "mrr@20") if m in results["metrics"]]
    fig = _figure(max(5.0, 4.0 * len(datasets)), 4.2)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = [r for r in results["rows"] if r["dataset"] == dataset]
        x = np.arange(len(rows))
        width = 0.8 / len(metrics)
        for i, m in enumerate(metrics):
            pos = x + (i - (len(metrics) - 1) / 2) * width
            ours = [r["ours_pct"][m] for r in rows]
            err = [r["std_pct"][m] for r in rows]
            ax.bar(pos, ours, width, yerr=err, label=f"ours {m.upper()}", color=f"C{i}")
            paper = [r["paper_pct"].get(m, np.nan) for r in rows]
            if not np.all(np.isnan(paper)):
                ax.plot(pos, paper, "k_", markersize=14, mew=2, label=f"paper {m.upper()}")
        ax.set_xticks(x, [r["label"] for r in rows], rotation=45, ha="right")
        ax.set_title(dataset)
        ax.set_ylabel("%")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    budget = "full protocol" if results["budget"]["full_protocol"] else "REDUCED budget"
    fig.suptitle(f"{results['experiment']} ({budget})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def sweep_figure(results: dict[str, Any], path: Path) -> Path:
    """FOCOL Fig. 3: per swept parameter, HR@20 (solid) and MRR@20 (dashed) per dataset."""
    params: list[str] = []
    for row in results["rows"]:
        name = row["label"].partition("=")[0]
        if name not in params:
            params.append(name)
    fig = _figure(4.2 * len(params), 3.8)
    axes = fig.subplots(1, len(params), squeeze=False)[0]
    for ax, name in zip(axes, params, strict=True):
        for j, dataset in enumerate(_datasets(results)):
            rows = [
                r
                for r in results["rows"]
                if r["dataset"] == dataset and r["label"].partition("=")[0] == name
            ]
            x = [float(r["label"].partition("=")[2]) for r in rows]
            for m, style in (("hr@20", "-o"), ("mrr@20", "--s")):
                y = [r["ours_pct"][m] for r in rows]
                ax.plot(x, y, style, color=f"C{j}", label=f"{dataset} {m.upper()}")
        if name == "beta":
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS.get(name, name))
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def draw(results: dict[str, Any], out: Path) -> list[Path]:
    """Every figure of the experiment, written under `out`."""
    kind = results["kind"]
    if kind == SWEEP:
        return [sweep_figure(results, out / "fig3.png")]
    if kind == IMPORTANCE:
        from sessionrec.analysis.importance import plot_importance

        paths = []
        for dataset, analysis in results["analysis"].items():
            path = out / f"fig4-{dataset}.png"
            plot_importance(analysis, f"FOCOL, one FOGCN layer ({dataset})", path)
            paths.append(path)
        return paths
    paths = [table_figure(results, out / "table.png")] if kind in (TABLE, INVARIANCE) else []
    if kind == INVARIANCE:
        from sessionrec.analysis.local_invariance import plot

        for dataset, analysis in results["analysis"].items():
            paths.append(plot(analysis, out / f"fig1-{dataset}.png"))
    return paths
