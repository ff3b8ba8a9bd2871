"""`sessionrec analyze long-tail`: accuracy by the next item's training count."""

import json

import numpy as np
import pytest
import torch

from helpers import run_cli
from sessionrec.analysis.long_tail import (
    by_group,
    group_labels,
    item_groups,
    long_tail,
    median_norms,
    parse_edges,
)
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate


def test_groups_by_hand():
    # item:   0  1  2  3  4   5    6
    counts = np.array([0, 0, 1, 2, 3, 9, 100])
    groups = item_groups(counts, [1, 3, 10])
    assert groups.tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert group_labels([1, 3, 10]) == ["0", "1-2", "3-9", ">=10"]
    assert group_labels([1, 2]) == ["0", "1", ">=2"]
    # cases in groups 1, 1, 3 hit 1, 0, 0.5: group 1 averages 0.5, group 3 0.5, others None
    hits = by_group(np.array([1.0, 0.0, 0.5]), np.array([1, 1, 3]), 4)
    assert hits == [None, 0.5, None, 0.5]
    vectors = np.array([[9.0, 9.0], [3.0, 4.0], [0.0, 1.0], [0.0, 3.0]])  # row 0: padding
    assert median_norms(vectors, np.array([0, 0, 1, 1]), 3) == [5.0, 2.0, None]


def test_parse_edges():
    assert parse_edges("1,3, 10") == [1, 3, 10]
    for bad in ("x", "", "0,3", "3,3", "5,2"):
        with pytest.raises(ConfigError):
            parse_edges(bad)


@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    """NARM (a dot-product model) and popularity on the tiny synthetic data."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(epochs=1, batch_size=128, lr=3e-3, eval_batch_size=1000)
    for name in ("narm", "pop"):
        train_and_evaluate(create(name, tiny.num_items, seed=0), tiny, config, root / name)
    return root


def test_cli_groups_add_up_to_the_runs_test_metrics(two_runs, tiny, tmp_path):
    out = tmp_path / "lt"
    runs = [two_runs / "narm", two_runs / "pop"]
    proc = run_cli("analyze", "long-tail", *runs, "--edges", "2,5,20", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "long_tail.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "long_tail.json").read_text())
    counts = np.bincount(tiny.train.target, minlength=tiny.num_items + 1)
    expected = np.bincount(np.searchsorted([2, 5, 20], counts[tiny.test.target], "right"), None, 4)
    assert result["cases"] == expected.tolist() and sum(result["cases"]) == len(tiny.test)
    assert result["groups"] == ["0-1", "2-4", "5-19", ">=20"]
    for name in ("narm", "pop"):
        entry = result["runs"][name]
        test = json.loads((two_runs / name / "metrics.json").read_text())["test"]
        for metric in ("hr@20", "mrr@20"):  # the share-weighted groups give the whole test set
            whole = sum(s * (v or 0.0) for s, v in zip(result["share"], entry[metric], strict=True))
            assert whole == pytest.approx(test[metric], abs=1e-9)
    assert len(result["runs"]["narm"]["median_norm"]) == 4
    assert result["runs"]["pop"]["median_norm"] is None  # no item table
    assert "narm" in proc.stdout and ">=20" in proc.stdout


def test_valid_split_groups_add_up_to_the_runs_validation_metrics(two_runs, tiny):
    result = long_tail([two_runs / "narm"], [2, 5, 20], split="valid")
    assert result["split"] == "valid" and sum(result["cases"]) == len(tiny.valid.target) > 0
    valid = json.loads((two_runs / "narm" / "metrics.json").read_text())["valid"]
    entry = result["runs"]["narm"]
    for metric in ("hr@20", "mrr@20"):
        whole = sum(s * (v or 0.0) for s, v in zip(result["share"], entry[metric], strict=True))
        assert whole == pytest.approx(valid[metric], abs=1e-9)


def test_cli_rejects_bad_input(two_runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((two_runs / "narm" / "config.json").read_text())
    config["dataset"] = dict(config["dataset"], seed=2)
    (other / "config.json").write_text(json.dumps(config))
    for extra, message in (
        ([two_runs / "narm", other], "trained on"),
        ([two_runs / "narm", "--edges", "3,1"], "increasing"),
        ([two_runs / "narm", "--k", "0"], "--k must be"),
        ([two_runs / "narm", "--split", "train"], "split must be"),
    ):
        proc = run_cli("analyze", "long-tail", *extra, timeout=300)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert long_tail([two_runs / "pop"], [1])["runs"]["pop"]["hr@20"]  # in-process too
