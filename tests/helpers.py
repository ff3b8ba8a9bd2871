"""What several test files share: the command line run in a child process, as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", COLUMNS="200")


def run_cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`sessionrec ARGS...` in a child process; its exit code and output, never raising."""
    command = [sys.executable, "-m", "sessionrec", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=ENV)


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
