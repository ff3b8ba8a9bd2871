"""Shared fixtures: a tiny synthetic dataset and the location of the real benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numba sizes its pool once, from the core count; the FOGCN determinism test runs 4 threads.
os.environ.setdefault("NUMBA_NUM_THREADS", str(max(4, os.cpu_count() or 1)))

from sessionrec.data.dataset import SessionDataset  # noqa: E402
from sessionrec.data.synthetic import make_synthetic  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def tiny() -> SessionDataset:
    """A few hundred items and sessions: enough signal to learn, fast to train."""
    return make_synthetic(num_items=300, num_categories=10, num_sessions=3000, seed=1)


def require_benchmark(name: str) -> Path:
    path = SHARED / name
    if not (path / "all_train_seq.txt").exists():
        pytest.skip(
            f"benchmark '{name}' not found at {path} (needs ../shared/datasets beside the repo)"
        )
    return path
