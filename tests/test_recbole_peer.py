"""The RecBole peer benchmark: the atomic files hold exactly our examples; failures are one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sessionrec.data.dataset import SessionDataset, build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.data.synthetic import make_synthetic

DRIVER = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "recbole.py"


@pytest.fixture(scope="module")
def peer() -> ModuleType:
    """The driver, loaded from its file (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("recbole_peer_driver", DRIVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def our_rows(data: SessionDataset, split: str) -> list[tuple[list[int], int]]:
    ex = getattr(data, split)
    return [(ex.sequence(i).tolist(), int(ex.target[i])) for i in range(len(ex))]


def test_hand_made_dataset_is_written_example_for_example(peer: ModuleType, tmp_path: Path):
    train = Sessions.from_lists([[1, 2, 3], [4, 5], [2, 6, 7, 8], [9, 3]])
    test = Sessions.from_lists([[1, 2], [7]]).as_examples([3, 9])
    data = build_dataset("hand", train, test, valid_fraction=0.25)
    counts = peer.write_recbole_benchmark(data, tmp_path, "hand")
    folder = tmp_path / "hand"
    rows = {s: peer.read_recbole_split(folder / f"hand.{s}.inter") for s in peer.SPLITS}
    # prefixes, longest first within a session; the last 2 of 7 (25%) are validation
    assert [(seq, t) for _, seq, t in rows["train"]] == [
        ([1, 2], 3),
        ([1], 2),
        ([4], 5),
        ([2, 6, 7], 8),
        ([2, 6], 7),
    ]
    assert [(seq, t) for _, seq, t in rows["valid"]] == [([2], 6), ([9], 3)]
    assert [(seq, t) for _, seq, t in rows["test"]] == [([1, 2], 3), ([7], 9)]
    assert counts == {"train": 5, "valid": 2, "test": 2, "items": 9}
    assert (folder / "hand.item").read_text().split() == ["item_id:token"] + [
        str(i) for i in range(1, 10)
    ]


@pytest.mark.parametrize("train_fraction", [1.0, 0.3])
def test_synthetic_dataset_round_trips(peer: ModuleType, tmp_path: Path, train_fraction: float):
    data = make_synthetic(
        num_items=60, num_categories=4, num_sessions=200, seed=3, train_fraction=train_fraction
    )
    counts = peer.write_recbole_benchmark(data, tmp_path, "syn")
    ids = set()
    for split in peer.SPLITS:
        rows = peer.read_recbole_split(tmp_path / "syn" / f"syn.{split}.inter")
        assert [(seq, t) for _, seq, t in rows] == our_rows(data, split)
        assert counts[split] == len(getattr(data, split)) > 0
        ids.update(sid for sid, _, _ in rows)
    assert ids == {peer.SESSION_ID}  # no user term: RecBole's FPMC must not get one per row
    assert counts["items"] == data.num_items
    assert peer.max_input_length(data) == max(
        len(seq) for s in peer.SPLITS for seq, _ in our_rows(data, s)
    )


def test_a_failing_peer_run_is_one_error_line(tmp_path: Path) -> None:
    """A RecBole child that dies (here /bin/false) stops the driver with one line naming its log."""
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "--recbole-python", "/bin/false", "--dataset", "synthetic",
         "--train-fraction", "0.02", "--models", "stamp", "--dim", "16",
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recbole_child.py exited with 1;")
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "results" / "stamp-ours-0.json").exists()  # ours ran first


def test_a_bad_dataset_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "--recbole-python", sys.executable,
         "--dataset", str(tmp_path / "missing"), "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and proc.stderr.startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
