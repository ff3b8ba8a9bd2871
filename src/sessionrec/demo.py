"""The main job: train each demo model on the built-in `synthetic` data, rank all items, and
draw two PNGs: HR@20 / MRR@20 per model and FOCOL's learned weight per relative distance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from sessionrec.data.dataset import SessionDataset
from sessionrec.data.synthetic import make_synthetic
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate

DEMO_SESSIONS = 24000  # synthetic sessions (the built-in `synthetic` dataset's size)
MIN_SESSIONS = 1000  # fewer leave too few test and validation cases to rank models by
METRICS_PNG, WEIGHTS_PNG = "demo-metrics.png", "focol-distance-weights.png"


@dataclass(frozen=True)
class DemoModel:
    """How the demo trains one model: training settings, hyper-parameters, an epoch cap."""

    train: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    max_epochs: int | None = None  # at most this many of the demo's --epochs


_NEURAL = DemoModel({"batch_size": 128, "lr": 1e-3})
# Table order. Neural models use the papers' optimiser settings with a larger batch so the demo
# finishes in a few minutes on two CPU cores. FOCOL at the paper's size (d = 100, 3 Transformer
# layers) costs ~140 s per epoch here even at batch 500 on one core (a Transformer pass over
# every session and over as many augmented ones for its contrastive loss): 3 epochs would take
# 2.5x as long as the other eight models together. d = 64, one Transformer layer and batch 500
# cut that to ~33 s, lr 3e-3 makes up for the fewer steps, and 2 epochs reach 75% HR@20
# (3 epochs at lr 1e-3: 71%), so FOCOL adds ~70 s to a demo measured at 258 s on one thread of
# a loaded 2-core machine (README, Quick start).
DEMO_MODELS: dict[str, DemoModel] = {
    "pop": DemoModel(),
    "itemknn": DemoModel(),
    "vsknn": DemoModel(),
    "stan": DemoModel(),
    "narm": _NEURAL,
    "stamp": _NEURAL,
    "srgnn": _NEURAL,
    "linet": _NEURAL,
    "focol": DemoModel(
        {"batch_size": 500, "lr": 3e-3},
        {"embedding_dim": 64, "feedforward_dim": 128, "transformer_layers": 1},
        max_epochs=2,
    ),
}


@dataclass
class DemoResult:
    """What the demo measured and wrote: test metrics and timings per model, data, PNGs."""

    rows: dict[str, dict[str, float]]
    extra: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    figures: list[Path]


def demo_models(spec: str | None) -> list[str]:
    """The demo models named in a comma list (all of them for None), in table order."""
    if spec is None:
        return list(DEMO_MODELS)
    names = [x.strip() for x in spec.split(",") if x.strip()]
    unknown = ", ".join(repr(x) for x in names if x not in DEMO_MODELS)
    if unknown or not names:
        problem = f"unknown demo model(s) {unknown}" if unknown else "no model named"
        raise ConfigError(f"--models: {problem}; choose from {', '.join(DEMO_MODELS)}")
    return [x for x in DEMO_MODELS if x in names]


def run_demo(
    epochs: int,
    out_dir: Path,
    console: Console | None = None,
    models: list[str] | None = None,
    sessions: int = DEMO_SESSIONS,
) -> DemoResult:
    """Train and evaluate the demo models (all by default), then draw the demo's figures."""
    console = console or Console()
    models = models or list(DEMO_MODELS)
    _check_arguments(epochs, out_dir, sessions)
    dataset = make_synthetic(num_sessions=sessions)
    rows, extra = {}, {}
    for name in models:
        console.print(f"[bold]{name}[/bold] ...")
        metrics = _train(name, dataset, epochs, out_dir / name, console.is_terminal)
        rows[name] = metrics["test"]
        extra[name] = {"fit s": metrics["fit_seconds"], "eval s": metrics["eval_seconds"]}
    figures = [plot_metrics(rows, out_dir / METRICS_PNG)]
    if "focol" in rows:
        figures.append(plot_distance_weights(out_dir / "focol", out_dir / WEIGHTS_PNG))
    return DemoResult(rows, extra, dataset.stats(), figures)


def _check_arguments(epochs: int, out_dir: Path, sessions: int) -> None:
    """Refuse bad options with one clear error before any data is generated or trained on."""
    TrainConfig(epochs=epochs).validate()
    if sessions < MIN_SESSIONS:
        raise ConfigError(f"--sessions must be at least {MIN_SESSIONS:,}, got {sessions:,}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")


def _train(
    name: str, dataset: SessionDataset, epochs: int, run_dir: Path, progress: bool
) -> dict[str, Any]:
    """Train demo model `name` with its demo settings into `run_dir`; its metrics."""
    spec = DEMO_MODELS[name]
    epochs = min(epochs, spec.max_epochs or epochs)
    config = TrainConfig(epochs=epochs, patience=1, **spec.train)
    model = create(name, dataset.num_items, seed=config.seed, **spec.hparams)
    return train_and_evaluate(model, dataset, config, run_dir, progress=progress)


def plot_metrics(rows: dict[str, dict[str, float]], path: Path) -> Path:
    """Bar chart of test HR@20 and MRR@20 (%) per model, in table order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 0.8 * len(rows) + 1.5), 3.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x, top = np.arange(len(rows)), 0.0
    for i, metric in enumerate(("hr@20", "mrr@20")):
        values = [100 * row[metric] for row in rows.values()]
        ax.bar(x + (i - 0.5) * 0.4, values, 0.4, label=metric.upper(), color=f"C{i}")
        top = max(top, *values)
    ax.set_ylim(0, 1.2 * top + 1)  # headroom for the legend
    ax.set_xticks(x, list(rows), rotation=30, ha="right")
    ax.set_ylabel("% of test cases (full ranking)")
    ax.set_title("sessionrec demo: synthetic data, test set")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncols=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_distance_weights(run_dir: Path, path: Path) -> Path:
    """FOCOL's learned importance per relative distance (first FOGCN layer), as
    `sessionrec analyze importance RUN_DIR` plots it."""
    from sessionrec.analysis.importance import importance_of_run, plot_importance

    result = importance_of_run(run_dir, layer=0)
    plot_importance(result, "FOCOL on the demo's synthetic data, FOGCN layer 1", path)
    return path


def next_steps(out_dir: Path, models: list[str]) -> list[str]:
    """Three commands to try after the demo: a benchmark, serving, a paper's table."""
    served = out_dir / ("focol" if "focol" in models else models[-1])
    return [
        "Next, a real benchmark: sessionrec train narm --dataset diginetica "
        "(where the data goes: README, Data)",
        f"Serve a demo model over HTTP: sessionrec serve {served} (POST /recommend)",
        "Reproduce a paper's table: sessionrec reproduce focol-table2 --dataset diginetica "
        "(--dry-run lists its runs first)",
    ]
