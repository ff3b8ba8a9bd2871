"""`sessionrec analyze curve`: validation metrics against training minutes from run logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli
from sessionrec.analysis.curves import validation_curve
from sessionrec.errors import ConfigError


def _run(path: Path, epochs: list[dict]) -> Path:
    path.mkdir(parents=True)
    config = {"model": "narm", "num_items": 10, "params": {}, "dataset": {}, "train": {}}
    (path / "config.json").write_text(json.dumps(config))
    lines = [json.dumps({"event": "train", "epoch": 1, "step": 100, "loss": 5.0})]
    lines += [json.dumps({"event": "epoch", **e}) for e in epochs]
    (path / "log.jsonl").write_text("\n".join(lines) + "\n{torn")
    return path


def _epoch(epoch: int, seconds: float, hr: float, partial: bool = False) -> dict:
    record = {"epoch": epoch, "seconds": seconds, "valid": {"hr@20": hr, "mrr@20": hr / 3}}
    return {**record, "partial": True} if partial else record


def test_minutes_add_up_over_epochs_and_a_resumed_cut_epoch(tmp_path: Path) -> None:
    # epoch 2 cut by the budget after 30 s, then finished by --resume in 90 s more
    run = _run(
        tmp_path / "r",
        [_epoch(1, 120, 0.30), _epoch(2, 30, 0.33, partial=True), _epoch(2, 90, 0.40)],
    )
    curve = validation_curve(run, "hr@20")
    assert curve["model"] == "narm" and curve["run"] == "r"
    assert [(p["epoch"], p["minutes"], p["value"], p["partial"]) for p in curve["points"]] == [
        (1, 2.0, 0.30, False),
        (2, 4.0, 0.40, False),
    ]


def test_unknown_metric_and_missing_log_are_clear_errors(tmp_path: Path) -> None:
    run = _run(tmp_path / "r", [_epoch(1, 60, 0.3)])
    with pytest.raises(ConfigError, match="unknown metric 'hr@50'.*hr@20, mrr@20"):
        validation_curve(run, "hr@50")
    (run / "log.jsonl").unlink()
    with pytest.raises(ConfigError, match="no log.jsonl"):
        validation_curve(run)


def test_command_writes_png_and_json(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", [_epoch(1, 60, 0.30), _epoch(2, 60, 0.35, partial=True)])
    b = _run(tmp_path / "b", [_epoch(1, 30, 0.20)])
    png = tmp_path / "out" / "c.png"
    proc = run_cli("analyze", "curve", a, b, "--metric", "hr@20", "--paper", "54.08", "--out", png)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(png.with_suffix(".json").read_text())
    assert [r["run"] for r in saved["runs"]] == ["a", "b"]
    assert "2 (cut)" in proc.stdout
    bad = run_cli("analyze", "curve", tmp_path / "nope")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "not a run directory" in bad.stderr
