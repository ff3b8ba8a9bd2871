"""What several test files share: the command line run in a child process, as a user runs it,
data written in the benchmark pickle format, and small hyper-parameters for costly models."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset

ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", COLUMNS="200")


def run_cli(
    *args: object, cwd: Path | None = None, check: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """`sessionrec ARGS...` in a child process: its exit code and output. Never raises unless
    `check` (then a non-zero exit fails the test, showing stderr) or past `timeout` seconds."""
    command = [sys.executable, "-m", "sessionrec", *map(str, args)]
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_main(args: Sequence[object], monkeypatch: pytest.MonkeyPatch) -> int | str | None:
    """`sessionrec ARGS...` in this process (through `sys.argv`): the code it exits with."""
    from sessionrec.cli import main

    monkeypatch.setattr(sys, "argv", ["sessionrec", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


def write_pickles(path: Path, train: object, test: object) -> Path:
    """The benchmark format's two pickles in `path` (made if missing): `train` as
    `all_train_seq.txt`, `test` as `test.txt`, whatever they hold (for bad-input tests too)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "all_train_seq.txt").write_bytes(pickle.dumps(train))
    (path / "test.txt").write_bytes(pickle.dumps(test))
    return path


def write_pickle_dataset(path: Path, data: SessionDataset) -> Path:
    """`data` in the benchmark format: its training sessions and a 2-tuple `test.txt`."""
    seqs = [data.test.sequence(i).tolist() for i in range(len(data.test))]
    return write_pickles(path, data.train_sessions.to_lists(), (seqs, data.test.target.tolist()))


# Smaller hyper-parameters that keep tests of a costly model fast (FOCOL and its ablations).
SMALL_FOCOL = {
    "embedding_dim": 32,
    "feedforward_dim": 64,
    "transformer_layers": 1,
    "fogcn_layers": 2,
    "negatives": 8,
}


def small_hparams(name: str) -> dict:
    """Hyper-parameters for fast tests of model `name` (its defaults unless it is costly)."""
    return dict(SMALL_FOCOL) if name == "focol" or name.startswith("focol-") else {}
