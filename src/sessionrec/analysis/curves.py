"""Validation metrics against training wall time, read from run directories' logs.

The question a time-budgeted recipe answers is "how good after how many minutes": each run's
epoch records (`log.jsonl`) give the validation metrics after every epoch and the seconds of
training the epoch took (validation excluded). A resumed run continues its minutes: an epoch
cut by a budget and finished by `--resume` is one point at the sum of both sittings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionrec.errors import ConfigError
from sessionrec.rundir import LOG_FILE, read_config, read_epoch_records


def validation_curve(run_dir: str | Path, metric: str = "hr@20") -> dict[str, Any]:
    """{"run", "model", "metric", "points": [{"epoch", "minutes", "value", "partial"}]}."""
    run_dir = Path(run_dir)
    model = str(read_config(run_dir)["model"])  # one clear error for what is no run directory
    log = run_dir / LOG_FILE
    if not log.is_file():
        raise ConfigError(f"{run_dir}: no {LOG_FILE} (not a run directory of a neural model?)")
    epochs = [r for r in read_epoch_records(run_dir) if "valid" in r]
    if not epochs:
        raise ConfigError(f"{log}: no validated epoch yet")
    if metric not in epochs[0]["valid"]:
        known = ", ".join(sorted(epochs[0]["valid"]))
        raise ConfigError(f"unknown metric '{metric}' (the log has: {known})")
    minutes, points = 0.0, {}
    for record in epochs:  # a finished epoch's record replaces its cut one
        minutes += record.get("seconds", 0.0) / 60
        points[record["epoch"]] = {
            "epoch": record["epoch"],
            "minutes": round(minutes, 2),
            "value": record["valid"][metric],
            "partial": bool(record.get("partial")),
        }
    return {"run": run_dir.name, "model": model, "metric": metric, "points": list(points.values())}


def plot_curves(curves: list[dict[str, Any]], path: Path, paper: float | None = None) -> Path:
    """One line per run: validation metric (%) against training minutes; cut epochs hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for curve in curves:
        pts = curve["points"]
        x, y = [p["minutes"] for p in pts], [100 * p["value"] for p in pts]
        (line,) = ax.plot(x, y, marker="o", label=f"{curve['run']} ({curve['model']})")
        cut = [(p["minutes"], 100 * p["value"]) for p in pts if p["partial"]]
        if cut:
            cx, cy = zip(*cut, strict=True)
            ax.scatter(cx, cy, s=60, facecolors="white", edgecolors=line.get_color(), zorder=3)
    metric = curves[0]["metric"].upper()
    if paper is not None:
        ax.axhline(paper, color="grey", linestyle="--", label=f"paper {paper:g}")
    ax.set_xlabel("training minutes (validation excluded)")
    ax.set_ylabel(f"validation {metric} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
