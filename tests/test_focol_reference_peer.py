"""The FOCOL reference driver: their files hold exactly our examples, and, where the authors'
repository and a venv with DGL are here, their code trains on them without NaN."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from sessionrec.data.synthetic import make_synthetic

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))
import focol_reference  # noqa: E402

REPO = Path(os.environ.get("FOCOL_REPO", "/work/.mirror/twchen+FOCOL/repo"))
PYTHON = Path(os.environ.get("FOCOL_PYTHON", "/work/bg/focol-venv/bin/python"))


def _load(path: Path):
    with open(path, "rb") as f:
        return pickle.load(f)


def test_their_files_hold_our_fitting_sessions_and_examples(tmp_path: Path) -> None:
    data = make_synthetic(num_items=60, num_categories=4, num_sessions=200, seed=3)
    folder = tmp_path / "syn"
    focol_reference.write_their_files(folder, data)
    assert _load(folder / "all_train_seq.txt") == data.fit_sessions().to_lists()
    for name, split in (("train.txt", data.train), ("test.txt", data.valid)):
        seqs, targets = _load(folder / name)
        assert seqs == [split.sequence(i).tolist() for i in range(len(split))]
        assert targets == split.target.tolist() and len(targets) > 0


@pytest.mark.skipif(
    not (PYTHON.exists() and REPO.exists()), reason="no FOCOL mirror or venv with DGL here"
)
def test_their_code_trains_on_our_examples(tmp_path: Path) -> None:
    out = tmp_path / "curve.json"
    command = [sys.executable, str(PEERS / "focol_reference.py"), "--repo", str(REPO)]
    command += ["--focol-python", str(PYTHON), "--dataset", "synthetic"]
    command += ["--train-fraction", "0.02", "--epochs", "1", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["complete"] and result["reference"] == "twchen/FOCOL"
    (point,) = result["curve"]
    assert math.isfinite(point["loss"]) and 0 <= point["mrr@20"] <= point["hr@20"] <= 100
