"""The local-invariance analysis (LINet Sec. III-E): Eq. 14, pair finding, scoring, the CLI."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from helpers import run_cli
from sessionrec.analysis.local_invariance import (
    ItemSimilarity,
    candidate_pairs,
    case_hits,
    find_pairs,
    has_perfect_matching,
    identical_inputs,
    item_similarity,
    local_invariance,
    pair_share,
    parse_thetas,
)
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate


def test_item_similarity_eq14_by_hand():
    train = Sessions.from_lists([[1, 3], [1, 2, 3], [3, 6, 7, 1], [1, 4, 2, 1]])
    sim = item_similarity(train, 7)
    # (1, 3): distances 1, 2, 3 in three sessions -> (1 + 1/log2 3 + 1/log2 4) / 3
    expected = (1 + 1 / math.log2(3) + 0.5) / 3
    assert sim(np.array([1, 3]), np.array([3, 1])).tolist() == pytest.approx([expected] * 2)
    # (1, 2): [1, 2, 3] d = 1; [1, 4, 2, 1] counts once with its smallest distance, d = 1
    assert sim(np.array([1]), np.array([2]))[0] == pytest.approx(1.0)
    # (4, 1): [1, 4, 2, 1] min(1, 2) = 1; (6, 1): d = 2; (5, x): never seen -> 0; (v, v) = 1
    pairs = sim(np.array([4, 6, 5, 3, 7]), np.array([1, 1, 1, 3, 7]))
    assert pairs.tolist() == pytest.approx([1.0, 1 / math.log2(3), 0.0, 1.0, 1.0])
    grid = sim(np.arange(8)[:, None], np.arange(8)[None, :])
    assert np.allclose(grid, grid.T)


def test_candidate_pairs_share_length_and_label():
    lengths = np.array([2, 2, 3, 2, 2, 1])
    targets = np.array([5, 5, 5, 6, 5, 5])
    got = {tuple(sorted(p)) for p in candidate_pairs(lengths, targets).tolist()}
    assert got == {(0, 1), (0, 4), (1, 4)}


def test_perfect_matching_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 4):
        adj = rng.random((400, size, size)) < 0.45
        brute = [
            any(
                all(a[i, perm[i]] for i in range(size))
                for perm in itertools.permutations(range(size))
            )
            for a in adj
        ]
        assert has_perfect_matching(adj).tolist() == brute


# Hand-made test set. sim(1,2)=.9, sim(1,5)=.6, sim(2,5)=.3, sim(3,4)=.2, others 0, sim(v,v)=1.
SIM = ItemSimilarity.from_table({(1, 2): 0.9, (1, 5): 0.6, (2, 5): 0.3, (3, 4): 0.2}, 9)
SEQS = [
    [1, 2, 3],  # 0
    [2, 5, 3],  # 1: matches 0 via {1-5 .6, 2-2, 3-3} (θ < .6) or identity {.9, .3, 1} (θ < .3)
    [3, 2, 1],  # 2: matches 0 only if index differences of 2 are allowed (β = 3)
    [1, 2, 3],  # 3: next item differs -> never paired
    [1, 2],  # 4: length differs -> never paired
    [1, 2, 4],  # 5: needs 3-4 (.2)
    [1, 2, 3],  # 6: identical to 0
    [1],  # 7..10: length-1 cases
    [2],
    [5],
    [3],
]
LABELS = [9, 9, 9, 8, 9, 9, 9, 7, 7, 7, 7]
TEST = Sessions.from_lists(SEQS).as_examples(np.array(LABELS))
SINGLES = {(7, 8), (7, 9), (8, 9)}  # sims .9, .6, .3
EXPECTED = {
    2: {
        0.1: {(0, 1), (0, 5), (0, 6), (1, 5), (1, 6), (5, 6)} | SINGLES,
        0.5: {(0, 1), (0, 6), (1, 6), (7, 8), (7, 9)},
        0.7: {(0, 6), (7, 8)},
    },
    3: {
        0.1: {(a, b) for a, b in itertools.combinations([0, 1, 2, 5, 6], 2)} | SINGLES,
        0.5: {(0, 1), (0, 2), (0, 6), (1, 2), (1, 6), (2, 6), (7, 8), (7, 9)},
        0.7: {(0, 2), (0, 6), (2, 6), (7, 8)},
    },
    1: {
        0.1: {(0, 1), (0, 5), (0, 6), (1, 5), (1, 6), (5, 6)} | SINGLES,
        0.25: {(0, 1), (0, 6), (1, 6)} | SINGLES,
    },
}


def as_set(pairs):
    return {tuple(sorted(p)) for p in pairs.tolist()}


@pytest.mark.parametrize("beta", [1, 2, 3])
def test_find_pairs_on_hand_made_test_set(beta):
    expected = EXPECTED[beta]
    got = find_pairs(TEST, SIM, list(expected), beta)
    assert {t: as_set(p) for t, p in got.items()} == expected


def test_find_pairs_without_beta_and_without_identical():
    got = find_pairs(TEST, SIM, [0.5], None)
    assert as_set(got[0.5]) == EXPECTED[3][0.5]  # length 3: every index difference is < 3
    distinct = find_pairs(TEST, SIM, [0.7], 3, exclude_identical=True)
    assert as_set(distinct[0.7]) == {(0, 2), (2, 6), (7, 8)}
    assert identical_inputs(TEST, np.array([[0, 6], [0, 2], [7, 8]])).tolist() == [
        True,
        False,
        False,
    ]


class FixedScorer:
    """Scores: item 9 is on top for inputs starting with 1, last otherwise."""

    def score_batch(self, batch):
        scores = torch.arange(12, dtype=torch.float32).repeat(len(batch.lengths), 1)
        scores[:, 9] = torch.where(batch.items[:, 0] == 1, 100.0, -100.0)
        return scores


def test_case_hits_and_pair_share():
    hits = case_hits(FixedScorer(), TEST, k=2)
    assert hits.tolist() == [1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert pair_share(hits, np.array([[0, 6], [0, 1], [5, 6]])) == pytest.approx(2 / 3)
    assert pair_share(np.array([0.5, 1.0]), np.array([[0, 1]])) == 0.5  # expected ties
    assert pair_share(hits, np.zeros((0, 2), np.int64)) is None


def test_parse_thetas():
    assert parse_thetas("0.5, 0.1,0.5") == [0.1, 0.5]
    for bad in ("x", "", "1.5"):
        with pytest.raises(ConfigError):
            parse_thetas(bad)


@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    """LINet and NARM trained briefly on the tiny synthetic data, as run directories."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(epochs=1, batch_size=128, lr=3e-3, eval_batch_size=1000)
    for name in ("linet", "narm"):
        train_and_evaluate(create(name, tiny.num_items, seed=0), tiny, config, root / name)
    return root


def test_cli_runs_end_to_end(two_runs, tiny, tmp_path):
    out = tmp_path / "li"
    args = ["analyze", "local-invariance", two_runs / "linet", two_runs / "narm"]
    proc = run_cli(*args, "--theta", "0.3,0.6", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "local_invariance.json").read_text())
    assert (out / "local_invariance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["theta"] == [0.3, 0.6] and result["beta"] == 3 and result["k"] == 20
    expected = find_pairs(
        tiny.test, item_similarity(tiny.train_sessions, tiny.num_items), [0.3, 0.6]
    )
    assert result["pairs"] == [len(expected[0.3]), len(expected[0.6])]
    assert result["pairs"][0] >= result["pairs"][1] > 0
    assert set(result["models"]) == {"linet", "narm"}
    for entry in result["models"].values():
        assert all(0.0 <= s <= 1.0 for s in entry["share"])
    assert "linet" in proc.stdout and "θ" in proc.stdout
    again = local_invariance([two_runs / "linet"], [0.3], beta=3)
    assert again["models"]["linet"]["share"][0] == pytest.approx(
        result["models"]["linet"]["share"][0]
    )


def test_cli_rejects_bad_input(two_runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((two_runs / "narm" / "config.json").read_text())
    config["dataset"] = dict(config["dataset"], seed=2)
    (other / "config.json").write_text(json.dumps(config))
    for extra, message in (
        ([two_runs / "linet", other], "trained on"),
        ([two_runs / "linet", "--theta", "abc"], "comma-separated"),
    ):
        proc = run_cli("analyze", "local-invariance", *extra, timeout=300)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
