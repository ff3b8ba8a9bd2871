"""The main job: train each demo model on the built-in `synthetic` data, rank all items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from sessionrec.data.dataset import load_dataset
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate

# (model, training settings) in table order; neural models use the papers' optimiser settings
# with a larger batch so the demo finishes in a few minutes on two CPU cores.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "pop": {},
    "itemknn": {},
    "vsknn": {},
    "stan": {},
    "narm": {"batch_size": 128, "lr": 1e-3},
    "stamp": {"batch_size": 128, "lr": 1e-3},
    "srgnn": {"batch_size": 128, "lr": 1e-3},
    "linet": {"batch_size": 128, "lr": 1e-3},
}


def run_demo(
    epochs: int, out_dir: Path, console: Console | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]], dict[str, Any]]:
    """Train and evaluate every demo model; returns test metrics, timings and dataset stats."""
    console = console or Console()
    dataset = load_dataset("synthetic")
    rows, extra = {}, {}
    for name, settings in DEMO_MODELS.items():
        console.print(f"[bold]{name}[/bold] ...")
        config = TrainConfig(epochs=epochs, patience=1, **settings)
        model = create(name, dataset.num_items, seed=config.seed)
        metrics = train_and_evaluate(
            model, dataset, config, out_dir / name, progress=console.is_terminal
        )
        rows[name] = metrics["test"]
        extra[name] = {"fit s": metrics["fit_seconds"], "eval s": metrics["eval_seconds"]}
    return rows, extra, dataset.stats()
