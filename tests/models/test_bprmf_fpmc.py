"""FPMC's score formula and losses, BPR-MF's session representation and training loop."""

import math

import numpy as np
import pytest
import torch

from sessionrec.data.batching import collate
from sessionrec.data.sessions import Sessions
from sessionrec.models import create
from sessionrec.models.fpmc import bpr_loss, sample_negatives
from sessionrec.training.config import TrainConfig


def batch(sessions: list[list[int]], targets: list[int] | None = None):
    targets = targets or [1] * len(sessions)
    ex = Sessions.from_lists(sessions).as_examples(np.array(targets))
    return collate(ex, np.arange(len(sessions)))


def set_rows(emb: torch.nn.Embedding, rows: dict[int, list[float]]) -> None:
    with torch.no_grad():
        emb.weight.zero_()
        for i, v in rows.items():
            emb.weight[i] = torch.tensor(v)


# --- FPMC -----------------------------------------------------------------------------------
def fpmc(**hp):
    model = create("fpmc", 3, embedding_dim=2, **hp)
    set_rows(model.net.item_next, {1: [1.0, 0.0], 2: [0.0, 1.0], 3: [1.0, 1.0]})  # V^{I,L}
    set_rows(model.net.item_prev, {1: [2.0, 0.0], 2: [0.0, 3.0], 3: [1.0, -1.0]})  # V^{L,I}
    return model


def test_fpmc_scores_are_the_factorised_transition():
    b = batch([[1, 2], [3]])
    last = fpmc().score_batch(b)
    # x̂(i | l) = <v_i^{I,L}, v_l^{L,I}>; l = 2 -> (0, 3), l = 3 -> (1, -1)
    torch.testing.assert_close(last, torch.tensor([[0.0, 0, 3, 3], [0, 1, -1, 0]]))
    mean = fpmc(session_repr="mean").score_batch(b)
    # basket {1, 2}: mean of (2, 0) and (0, 3) = (1, 1.5)
    torch.testing.assert_close(mean, torch.tensor([[0.0, 1, 1.5, 2.5], [0, 1, -1, 0]]))


def test_fpmc_losses_on_a_two_item_example():
    model = fpmc(loss="bpr")
    b = batch([[2]], [1])  # last click 2 -> (0, 3): target 1 scores 0, negatives 2 and 3 score 3
    loss = model.net.training_loss(b)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(3.0)), rel=1e-6)
    ce = fpmc().net.training_loss(b)
    # softmax over items 0..3 with logits (0, 0, 3, 3): -log(e^0 / (2 + 2 e^3))
    assert ce.item() == pytest.approx(math.log(2 + 2 * math.exp(3.0)), rel=1e-6)
    assert bpr_loss(torch.tensor([2.0]), torch.tensor([0.5])).item() == pytest.approx(
        math.log(1 + math.exp(-1.5))
    )


def test_negatives_are_uniform_over_the_other_items():
    targets = torch.full((30000,), 3)
    neg = sample_negatives(targets, 5, torch.Generator().manual_seed(0))
    counts = torch.bincount(neg, minlength=6)
    assert counts[0] == 0 and counts[3] == 0
    assert counts[[1, 2, 4, 5]].float().div(30000).sub(0.25).abs().max() < 0.02
    assert torch.equal(sample_negatives(torch.tensor([1]), 1), torch.tensor([1]))


# --- BPR-MF ---------------------------------------------------------------------------------
def test_bprmf_scores_a_session_by_its_mean_item_factor():
    model = create("bprmf", 3, embedding_dim=2)
    set_rows(model.net.item_emb, {1: [1.0, 0.0], 2: [0.0, 2.0], 3: [1.0, 1.0]})
    got = model.score_batch(batch([[1, 2], [3, 3]]))
    # mean of (1, 0) and (0, 2) = (0.5, 1); (1, 1)
    torch.testing.assert_close(got, torch.tensor([[0.0, 0.5, 2, 1.5], [0, 1, 2, 2]]))


def test_bprmf_loss_with_regularisation():
    model = create("bprmf", 2, embedding_dim=2)
    set_rows(model.net.item_emb, {1: [1.0, 0.0], 2: [0.0, 1.0]})
    w_u = torch.tensor([[2.0, 1.0]])
    loss = model.pair_loss(w_u, torch.tensor([1]), torch.tensor([2]), reg=0.1)
    # x_ui - x_uj = 2 - 1; λ/2 (|w|² + |h_i|² + |h_j|²) = 0.05 (5 + 1 + 1)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)) + 0.35, rel=1e-6)


def test_bprmf_fit_selects_best_epoch_and_is_deterministic(tiny):
    cfg = TrainConfig(epochs=2, batch_size=256, lr=3e-3, eval_batch_size=1000, num_threads=1)
    a = create("bprmf", tiny.num_items).fit(tiny, cfg)
    b = create("bprmf", tiny.num_items).fit(tiny, cfg)
    assert torch.equal(a.net.item_emb.weight, b.net.item_emb.weight)
    assert a.best_epoch in (1, 2) and len(a.fit_history) == 2
    assert a.fit_history[1]["loss"] < a.fit_history[0]["loss"] < math.log(2)
    assert set(a.state_tensors()) == {"item_emb.weight"}  # session factors are not saved


def test_bprmf_resumes_after_a_crash_to_identical_weights(tiny, tmp_path, monkeypatch):
    """The session factors and the negative sampler's state are in the checkpoint."""
    cfg = TrainConfig(
        epochs=2, batch_size=256, lr=3e-3, eval_batch_size=1000, checkpoint_seconds=0.0
    )
    whole = create("bprmf", tiny.num_items).fit(tiny, cfg, tmp_path / "a")
    per_epoch = whole.fit_history[0]["steps"]
    crash_at, steps = per_epoch + per_epoch // 2, {"n": 0}  # mid-way through the 2nd epoch
    step = torch.optim.SparseAdam.step

    def crashing_step(self, closure=None):
        steps["n"] += 1
        if steps["n"] == crash_at:
            raise KeyboardInterrupt
        return step(self, closure)

    monkeypatch.setattr(torch.optim.SparseAdam, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        create("bprmf", tiny.num_items).fit(tiny, cfg, tmp_path / "b")
    monkeypatch.setattr(torch.optim.SparseAdam, "step", step)
    resumed = create("bprmf", tiny.num_items).fit(tiny, cfg, tmp_path / "b", resume=True)
    assert resumed.best_epoch == whole.best_epoch
    assert torch.equal(resumed.net.item_emb.weight, whole.net.item_emb.weight)
