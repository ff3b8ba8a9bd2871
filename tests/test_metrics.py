import math

import numpy as np
import pytest
import torch

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.evaluation import case_metrics, evaluate, rank_counts


class FixedScores:
    """Returns preset score rows (B, N+1) for examples in the order the evaluator asks."""

    def __init__(self, rows):
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def score_batch(self, batch: Batch) -> torch.Tensor:
        # the evaluator sorts by length; every example here has length 1 and its item is its row id
        return self.rows[batch.items[:, 0] - 1]


def _examples(targets):
    n = len(targets)
    return Sessions.from_lists([[i + 1] for i in range(n)]).as_examples(np.array(targets))


def test_hand_computed_without_ties():
    # items 1..5; column 0 is padding and is ignored even with the highest score
    rows = [
        [9.0, 0.5, 0.9, 0.1, 0.3, 0.2],  # target 4 (0.3): rank 3
        [9.0, 0.9, 0.1, 0.2, 0.3, 0.4],
    ]  # target 1 (0.9): rank 1
    res = evaluate(FixedScores(rows), _examples([4, 1]), ks=(1, 2, 3))
    m = res.metrics
    assert m["hr@1"] == pytest.approx(0.5)
    assert m["hr@2"] == pytest.approx(0.5)
    assert m["hr@3"] == pytest.approx(1.0)
    assert m["mrr@3"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1) / 2)
    assert m["mrr@2"] == pytest.approx(0.5)
    assert res.per_case["mrr@3"].tolist() == pytest.approx([1 / 3, 1.0])


def test_ties_expected_and_pessimistic():
    # target 2 ties with items 3 and 4 at 0.5; item 1 scores higher -> places 2, 3 or 4
    greater, ties = rank_counts(torch.tensor([[0.0, 0.9, 0.5, 0.5, 0.5, 0.1]]), torch.tensor([2]))
    assert (greater.item(), ties.item()) == (1, 2)
    exp = case_metrics(greater, ties, ks=(2, 3, 5))
    assert exp["hr@2"].item() == pytest.approx(1 / 3)
    assert exp["hr@3"].item() == pytest.approx(2 / 3)
    assert exp["hr@5"].item() == pytest.approx(1.0)
    assert exp["mrr@5"].item() == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert exp["ndcg@3"].item() == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    pess = case_metrics(greater, ties, ks=(3, 5), tie_policy="pessimistic")
    assert pess["hr@3"].item() == 0.0
    assert pess["mrr@5"].item() == pytest.approx(1 / 4)
    with pytest.raises(ConfigError):
        case_metrics(greater, ties, ks=(5,), tie_policy="optimistic")


def test_constant_model_gets_chance_level_not_a_perfect_score():
    n_items, n_cases = 1000, 50
    rows = np.ones((n_cases, n_items + 1))
    targets = np.random.default_rng(0).integers(1, n_items + 1, n_cases)
    m = evaluate(FixedScores(rows.tolist()), _examples(targets.tolist()), ks=(20,)).metrics
    assert m["hr@20"] == pytest.approx(20 / n_items)
    assert m["mrr@20"] == pytest.approx(sum(1 / r for r in range(1, 21)) / n_items)
    pess = evaluate(
        FixedScores(rows.tolist()), _examples(targets.tolist()), ks=(20,), tie_policy="pessimistic"
    ).metrics
    assert pess["hr@20"] == 0.0


def test_coverage_and_popularity():
    rows = [[0, 3, 2, 1, 0], [0, 3, 1, 2, 0]]  # top-2 lists: {1,2} and {1,3}
    counts = np.array([0, 10, 5, 0, 0])
    m = evaluate(FixedScores(rows), _examples([1, 2]), ks=(1, 2), item_counts=counts).metrics
    assert m["coverage@1"] == pytest.approx(1 / 4)
    assert m["coverage@2"] == pytest.approx(3 / 4)
    assert m["popularity@1"] == pytest.approx(1.0)
    assert m["popularity@2"] == pytest.approx(((1 + 0.5) / 2 + (1 + 0) / 2) / 2)


def test_nan_scores_are_an_error():
    with pytest.raises(FloatingPointError):
        evaluate(FixedScores([[0, float("nan"), 1.0]]), _examples([1]), ks=(1,))


def test_batching_does_not_change_results():
    rng = np.random.default_rng(1)
    rows = rng.random((37, 51)).round(1)  # rounding creates many ties
    targets = rng.integers(1, 51, 37).tolist()
    a = evaluate(FixedScores(rows.tolist()), _examples(targets), batch_size=5).metrics
    b = evaluate(FixedScores(rows.tolist()), _examples(targets), batch_size=1000).metrics
    assert a == pytest.approx(b)
