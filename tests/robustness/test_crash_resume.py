"""SIGKILL a training run at a random point, resume it, and get the uninterrupted run's result.

Two ways to die, each at a seeded random point of a 2-epoch NARM run (dropout, so the RNG
state matters): before a random training step, or in the middle of a random atomic write
(checkpoint, weights, metrics), with the temporary file torn to a random length. The resumed
run must end with bit-identical weights and metrics. `SESSIONREC_CRASH_SEED` picks other
points (the seed is in every assertion message).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import ENV, run_main
from sessionrec.rundir import load_checkpoint
from sessionrec.training import trainer

SEED = int(os.environ.get("SESSIONREC_CRASH_SEED", "2024"))

# Runs the CLI after arranging to SIGKILL itself at call `k` of a training step ("step") or
# of an atomic rename ("write", tearing the temporary file first to a fraction `cut`).
CHILD = r"""
import os, signal, sys
mode, k, cut = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
calls = 0
if mode == "step":
    from sessionrec.training import trainer
    real_loss = trainer.batch_loss
    def batch_loss(net, batch):
        global calls
        calls += 1
        if calls == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_loss(net, batch)
    trainer.batch_loss = batch_loss
else:
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        global calls
        if str(src).endswith(".tmp"):
            calls += 1
            if calls == k:
                with open(src, "r+b") as f:
                    f.truncate(int(os.path.getsize(src) * cut))
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
from sessionrec.cli import main
sys.argv = ["sessionrec", *sys.argv[4:]]
main()
"""


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_main(args, monkeypatch) == 0


@pytest.fixture(scope="module")
def reference(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run, with the number of training steps and the atomic writes it made."""
    args = [
        "train",
        "narm",
        "--dataset",
        str(tiny_dir),
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--set",
        "checkpoint_seconds=0",
        "--set",
        "num_threads=1",
        "--no-progress",
    ]
    out = tmp_path_factory.mktemp("reference") / "run"
    steps, writes = [0], []
    real_loss, real_replace = trainer.batch_loss, os.replace

    def counting_loss(net, batch):  # noqa: ANN001, ANN202
        steps[0] += 1
        return real_loss(net, batch)

    def recording_replace(src, dst, *a, **kw):  # noqa: ANN001, ANN202
        if str(src).endswith(".tmp"):
            writes.append(Path(dst).name)
        return real_replace(src, dst, *a, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(trainer, "batch_loss", counting_loss)
        m.setattr(os, "replace", recording_replace)
        cli([*args, "--out", str(out)], m)
    return {"args": args, "run": out, "steps": steps[0], "writes": writes}


def kill_point(mode: str, reference: dict) -> tuple[int, float]:
    """A seeded random call number at which to die, after the first checkpoint is in place."""
    rng = random.Random(f"{SEED}-{mode}")
    if mode == "step":
        return rng.randint(2, reference["steps"]), 0.0
    first_checkpoint = reference["writes"].index("checkpoint.pt") + 1
    return rng.randint(first_checkpoint + 1, len(reference["writes"])), rng.random()


@pytest.mark.parametrize("mode", ["step", "write"])
def test_killed_run_resumes_to_identical_weights_and_metrics(
    mode: str, reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k, cut = kill_point(mode, reference)
    where = f"SESSIONREC_CRASH_SEED={SEED}: killed at {mode} {k} (torn to {cut:.2f})"
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(k), str(cut), *reference["args"], "--out", run],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, f"{where}: {proc.stderr}"
    assert not (run / "metrics.json").exists(), where
    load_checkpoint(run / "checkpoint.pt")  # the checkpoint in place is whole

    cli(["train", "narm", "--out", str(run), "--resume", "--no-progress"], monkeypatch)

    ref, got = (load_file(r / "model.safetensors") for r in (reference["run"], run))
    assert ref.keys() == got.keys(), where
    for name in ref:
        assert torch.equal(ref[name], got[name]), f"{where}: {name} differs"
    ref_metrics, metrics = (
        json.loads((r / "metrics.json").read_text()) for r in (reference["run"], run)
    )
    for key in ("valid", "test", "best_epoch"):
        assert metrics[key] == ref_metrics[key], f"{where}: {key} differs"
