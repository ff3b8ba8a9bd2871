"""GRU4Rec: session-parallel batching, state resets, the ranking losses by hand, exact resume."""

import math

import numpy as np
import pytest
import torch

from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.data.synthetic import make_synthetic
from sessionrec.models import create
from sessionrec.models import gru4rec as g4r
from sessionrec.training.config import TrainConfig


def _steps(lengths, batch_size, min_slots=1):
    return [
        (s.tolist(), p.tolist(), None if k is None else k.tolist())
        for s, p, k in g4r.session_parallel_batches(np.array(lengths), batch_size, min_slots)
    ]


def test_session_parallel_slots_by_hand():
    # sessions of 3, 2, 4 and 2 clicks (2, 1, 3 and 1 next-click events) in 2 slots
    assert _steps([3, 2, 4, 2], 2) == [
        ([0, 1], [0, 0], None),  # sessions 0 and 1 start: both states are zero
        ([0, 2], [1, 0], None),  # session 1 ended; session 2 takes slot 1 (reset)
        ([3, 2], [0, 1], None),  # session 0 ended; session 3 takes slot 0 (reset)
        ([2], [2], [1]),  # session 3 ended with no session left: slot 0 is dropped
    ]
    # without extra negatives a lone slot has no negative at all: the official code stops
    assert len(_steps([3, 2, 4, 2], 2, min_slots=2)) == 3


def test_every_next_click_is_trained_exactly_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=50)
    seen = [(s, p) for sess, pos, _ in _steps(lengths, 7) for s, p in zip(sess, pos, strict=True)]
    expected = [(s, p) for s, n in enumerate(lengths) for p in range(n - 1)]
    assert sorted(seen) == expected


def test_carry_state_drops_finished_slots_and_resets_new_sessions():
    hidden = [torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], requires_grad=True)]
    keep = np.array([0, 2])  # slot 1 was dropped
    fresh = torch.tensor([False, True])  # the old slot 2 (now 1) starts a new session
    (out,) = g4r.carry_state(hidden, keep, fresh)
    assert out.tolist() == [[1.0, 1.0], [0.0, 0.0]] and not out.requires_grad


def test_trains_on_the_sessions_before_the_validation_cut():
    """GRU4Rec's session-parallel steps run over `SessionDataset.fit_sessions`, the one policy:
    the session the validation cut splits is left out whole."""
    data = build_dataset(
        "toy",
        Sessions.from_lists([[1, 2, 3], [4, 5], [6, 7, 8, 9]]),
        Sessions.from_lists([[1]]).as_examples(np.array([2])),
        0.2,
    )
    model = create("gru4rec", 9)
    trainer = model.trainer_class(model, TrainConfig(epochs=1, batch_size=2))
    trainer.setup(data)
    assert trainer.offsets.tolist() == [0, 3, 5]
    assert data.fit_sessions().to_lists() == [[1, 2, 3], [4, 5]]


R = [[1.0, 0.5, -0.2], [0.3, 2.0, 0.1]]  # 2 rows (targets on the diagonal), 1 extra sample


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_cross_entropy_by_hand():
    want = [-math.log(_softmax(R[0])[0]), -math.log(_softmax(R[1])[1])]
    got = g4r.cross_entropy_loss(torch.tensor(R))
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_bpr_max_by_hand():
    # row 0: negatives 0.5, -0.2; row 1: negatives 0.3, 0.1; bpreg = 0.5
    s0, s1 = _softmax([0.5, -0.2]), _softmax([0.3, 0.1])
    want = [
        -math.log(s0[0] * _sig(1.0 - 0.5) + s0[1] * _sig(1.0 + 0.2))
        + 0.5 * (s0[0] * 0.25 + s0[1] * 0.04),
        -math.log(s1[0] * _sig(2.0 - 0.3) + s1[1] * _sig(2.0 - 0.1))
        + 0.5 * (s1[0] * 0.09 + s1[1] * 0.01),
    ]
    got = g4r.bpr_max_loss(torch.tensor(R), bpreg=0.5)
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_top1_max_by_hand():
    s0, s1 = _softmax([0.5, -0.2]), _softmax([0.3, 0.1])
    want = [
        s0[0] * (_sig(0.5 - 1.0) + _sig(0.25)) + s0[1] * (_sig(-0.2 - 1.0) + _sig(0.04)),
        s1[0] * (_sig(0.3 - 2.0) + _sig(0.09)) + s1[1] * (_sig(0.1 - 2.0) + _sig(0.01)),
    ]
    got = g4r.top1_max_loss(torch.tensor(R))
    assert got.tolist() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(
    "hp", [{}, {"embedding": 6, "layers": (8, 5)}, {"constrained_embedding": True}]
)
def test_prefix_scores_equal_the_carried_session_state(hp):
    hp = {"layers": (8,), **hp}
    net = create("gru4rec", 12, seed=0, **hp).net.eval()
    session = torch.tensor([4, 7, 4, 9])
    hidden = net.zero_state(1, torch.device("cpu"))
    for item in session:  # the session-parallel pass, one click at a time
        out, hidden = net.step(item.view(1), hidden)
    full = out @ net.out_w.weight.t() + net.out_b.weight.t()
    batch = torch.tensor([[4, 7, 4, 9, 0], [1, 2, 3, 4, 5]])
    torch.testing.assert_close(net(batch, torch.tensor([4, 5]))[:1], full)


def _small():
    return make_synthetic(num_items=100, num_categories=5, num_sessions=400, seed=2)


HP = dict(layers=(16,), n_sample=64, dropout_p_hidden=0.2, batch_size=16)


def test_resume_after_a_crash_gives_identical_weights(tmp_path, monkeypatch):
    data = _small()
    cfg = TrainConfig(epochs=2, checkpoint_seconds=0.0, eval_batch_size=1000, log_every=10)
    whole = create("gru4rec", data.num_items, seed=0, **HP).fit(data, cfg, tmp_path / "a")

    calls = {"n": 0}
    step = g4r.IndexedAdagrad.step

    def crashing_step(self, closure=None):
        calls["n"] += 1
        if calls["n"] == 105 + 40:  # mid-way through the second epoch (105 steps each)
            raise KeyboardInterrupt
        return step(self, closure)

    monkeypatch.setattr(g4r.IndexedAdagrad, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        create("gru4rec", data.num_items, seed=0, **HP).fit(data, cfg, tmp_path / "b")
    monkeypatch.setattr(g4r.IndexedAdagrad, "step", step)
    resumed = create("gru4rec", data.num_items, seed=0, **HP)
    resumed.fit(data, cfg, tmp_path / "b", resume=True)
    assert resumed.best_epoch == whole.best_epoch
    for name, value in whole.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[name]), name


@pytest.mark.parametrize("loss", ["cross-entropy", "top1-max"])
def test_other_losses_learn(loss):
    data = _small()
    model = create("gru4rec", data.num_items, seed=0, loss=loss, **HP)
    model.fit(data, TrainConfig(epochs=2, eval_batch_size=1000))
    assert all(math.isfinite(r["loss"]) for r in model.fit_history)
    assert model.fit_history[-1]["loss"] < model.fit_history[0]["loss"]


def test_the_export_path_scans_to_the_same_outputs_as_the_eager_loop(monkeypatch):
    """Under torch.export `last_output` runs a scan (so ONNX keeps the length axis dynamic),
    eagerly a loop: both give the same h for a batch of mixed lengths, bit for bit."""
    model = create("gru4rec", 30, seed=0, layers=[8, 6])
    net = model.net.eval()
    items = torch.tensor([[3, 4, 5, 6], [7, 0, 0, 0], [9, 9, 2, 0]])
    lengths = torch.tensor([4, 1, 3])
    with torch.no_grad():
        loop = net.last_output(items, lengths)
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        scanned = net.last_output(items, lengths)
        assert torch.equal(scanned, loop)
        monkeypatch.undo()
        for row, n in enumerate(lengths.tolist()):  # each row alone, unpadded
            alone = net.last_output(items[row : row + 1, :n], lengths[row : row + 1])
            torch.testing.assert_close(alone[0], loop[row])
