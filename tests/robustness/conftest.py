"""Fixtures of the robustness suite: a tiny dataset on disk and trained run directories."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from helpers import write_pickle_dataset  # noqa: E402
from sessionrec.data.prepared import write_prepared  # noqa: E402
from sessionrec.data.sessions import Sessions  # noqa: E402
from sessionrec.data.synthetic import make_synthetic  # noqa: E402

# Small enough that a 1-epoch run takes a fraction of a second; large enough to learn a little.
TINY = dict(num_items=120, num_categories=6, num_sessions=600, seed=1)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset as a benchmark directory."""
    return write_pickle_dataset(tmp_path_factory.mktemp("tiny") / "tiny", make_synthetic(**TINY))


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Path:
    """`stamp/`, `narm/` (1-epoch runs on `tiny_dir`) and `prepared/` (a prepared dataset)."""
    from sessionrec.data.sources import load_dataset
    from sessionrec.models import create
    from sessionrec.training.config import TrainConfig
    from sessionrec.training.run import train_and_evaluate

    root = tmp_path_factory.mktemp("templates")
    data = load_dataset(tiny_dir)
    config = dict(epochs=1, batch_size=100, num_threads=1, checkpoint_seconds=0.0)
    for name in ("stamp", "narm"):
        model = create(name, data.num_items, seed=0)
        train_and_evaluate(model, data, TrainConfig(**config), root / name)
    train = Sessions.from_lists([[1, 2, 3], [2, 3], [3, 1, 2]])
    test = Sessions(np.array([1, 2, 2, 3]), np.array([0, 2, 4]))
    write_prepared(root / "prepared", train, test, ["a", "b", "c"], {"format": "handmade"})
    return root
