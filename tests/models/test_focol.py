"""FOCOL pieces: CSRL sampling and augmentation, E^g caching, variants."""

import numpy as np
import pytest
import torch

from helpers import SMALL_FOCOL
from sessionrec.data.batching import Batch, collate
from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.models import Recommender, create
from sessionrec.training.trainer import adam, batch_loss

SMALL = SMALL_FOCOL


@pytest.fixture()
def toy():
    train = Sessions.from_lists([[1, 2, 3], [4, 2, 3], [5, 1, 2], [3, 4, 5, 1]])
    test = Sessions.from_lists([[1, 2], [4, 5]]).as_examples(np.array([3, 1]))
    return build_dataset("toy", train, test, valid_fraction=0.0)


def test_positive_is_another_example_with_the_same_next_item(toy):
    model = create("focol", toy.num_items, **SMALL)
    model.prepare(toy)
    net = model.net
    targets = torch.as_tensor(toy.train.target)
    index = torch.arange(len(targets))
    for _ in range(20):
        pos = net.sample_positives(targets, index)
        assert torch.equal(torch.as_tensor(toy.train.target[pos.numpy()]), targets)
        counts = np.bincount(toy.train.target)
        shared = counts[toy.train.target] > 1
        assert (pos.numpy() != index.numpy())[shared].all()  # never the anchor when others exist
        assert (pos.numpy() == index.numpy())[~shared].all()


def test_insert_adds_the_mask_at_one_position(toy):
    model = create("focol", toy.num_items, augmentations=("insert",), **SMALL)
    model.prepare(toy)
    idx = torch.arange(len(toy.train))
    items, lengths, noise, drop = model.net._augmented_inputs(idx, torch.device("cpu"))
    assert noise is None and drop is None
    assert torch.equal(lengths, torch.as_tensor(toy.train.length) + 1)
    for row, n, i in zip(items, lengths, idx, strict=True):
        seq = row[:n].tolist()
        assert seq.count(0) == 1
        seq.remove(0)
        assert seq == toy.train.sequence(int(i)).tolist()


def test_corrupt_and_dropout_touch_only_sampled_inputs(toy):
    for aug in ("corrupt", "dropout"):
        model = create("focol", toy.num_items, augmentations=(aug,), **SMALL)
        model.prepare(toy)
        items, lengths, noise, drop = model.net._augmented_inputs(
            torch.arange(3), torch.device("cpu")
        )
        assert (noise is not None) == (aug == "corrupt") and (drop is not None) == (
            aug == "dropout"
        )
        if aug == "dropout":
            assert torch.allclose(torch.unique(drop), torch.tensor([0.0, 1 / 0.9]))


@pytest.mark.parametrize(
    ("augmentation", "anchors", "anchors_dropped"),
    [("dropout", True, True), ("dropout", False, False), ("corrupt", True, False)],
)
def test_augment_anchors_drops_the_anchors_only_under_dropout(
    toy, monkeypatch, augmentation, anchors, anchors_dropped
):
    """The released code's Dropout also reaches the anchors (both losses); the paper's does not."""
    model = create(
        "focol", toy.num_items, augmentations=(augmentation,), augment_anchors=anchors, **SMALL
    )
    model.prepare(toy)
    net, masks = model.net.train(), []
    real = net.encode

    def recording(eg, items, lengths, noise=None, drop=None):
        masks.append(drop)
        return real(eg, items, lengths, noise, drop)

    monkeypatch.setattr(net, "encode", recording)
    items, lengths = torch.tensor([[1, 2], [4, 0]]), torch.tensor([2, 1])
    net.training_loss(Batch(items, lengths, torch.tensor([3, 2]), torch.tensor([0, 1])))
    anchor_mask, sampled_mask = masks  # the anchors' encoding, then CSRL's sampled sessions
    assert (anchor_mask is not None) == anchors_dropped
    assert (sampled_mask is not None) == (augmentation == "dropout")
    if anchors_dropped:
        assert anchor_mask.shape == (2, 2, SMALL["embedding_dim"])
        assert torch.allclose(torch.unique(anchor_mask), torch.tensor([0.0, 1 / 0.9]))


def test_augment_anchors_needs_one_operation_a_batch(toy):
    with pytest.raises(ConfigError, match="augment_anchors needs augment_policy=batch"):
        create("focol", toy.num_items, augment_anchors=True, augment_policy="sample", **SMALL)


def test_emb_init_std_sets_the_item_table_only():
    num_items, big = 2000, {**SMALL, "embedding_dim": 50}
    code = create("focol", num_items, seed=0, **big).net
    small = create("focol", num_items, seed=0, emb_init_std=0.05, **big).net
    assert code.item_emb.weight.std().item() == pytest.approx(1.0, abs=0.02)  # N(0, 1)
    assert small.item_emb.weight.std().item() == pytest.approx(0.05, abs=0.001)
    for (name, a), (_, b) in zip(code.named_parameters(), small.named_parameters(), strict=True):
        if name != "item_emb.weight":
            assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="emb_init_std must be > 0"):
        create("focol", num_items, emb_init_std=0.0, **SMALL)


def test_item_lr_scale_moves_the_item_table_that_much_faster(toy):
    """The Trainer's own optimiser: Adam's first step moves an element by lr·g/(|g| + ε), so
    lr at most, and about lr where the gradient is not tiny."""
    from sessionrec.training.config import TrainConfig
    from sessionrec.training.trainer import Trainer

    model = create("focol", toy.num_items, seed=0, item_lr_scale=4.0, **SMALL)
    model.prepare(toy)
    trainer = Trainer(model, TrainConfig(batch_size=8, lr=1e-3))
    trainer.optimizer = trainer.setup(toy)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [4e-3, 1e-3]
    before = {n: p.detach().clone() for n, p in model.net.named_parameters()}
    next(trainer.train_steps(toy, 0, 0))
    after = dict(model.net.named_parameters())
    moved = {n: (after[n].detach() - b).abs().max().item() for n, b in before.items()}
    assert moved.pop("item_emb.weight") == pytest.approx(4e-3, rel=1e-3)
    assert max(moved.values()) == pytest.approx(1e-3, rel=1e-3)
    with pytest.raises(ConfigError, match="item_lr_scale must be > 0"):
        create("focol", toy.num_items, item_lr_scale=0.0, **SMALL)


def test_item_lr_scale_one_keeps_one_parameter_group(toy):
    """Scale 1 (the paper's one lr): one group, so older checkpoints' optimiser state loads."""
    net = create("focol", toy.num_items, seed=0, **SMALL).net
    opt = adam(net.optimizer_groups(1e-3), 1e-3, 0.0, torch.device("cpu"))
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["params"] == list(net.parameters())


def test_global_embeddings_computed_once_for_inference(toy, monkeypatch):
    model = create("focol", toy.num_items, **SMALL)
    model.prepare(toy)
    net = model.net.eval()
    calls = {"n": 0}
    real = net._propagate

    def counting():
        calls["n"] += 1
        return real()

    monkeypatch.setattr(net, "_propagate", counting)
    batch = (torch.tensor([[1, 2]]), torch.tensor([2]))
    net(*batch)
    net(*batch)
    assert calls["n"] == 1
    net.train()
    net.eval()
    net(*batch)
    assert calls["n"] == 1  # switching modes changes no weight
    for _ in range(3):
        model.score_batch(collate(toy.test, np.arange(len(toy.test))))
    assert calls["n"] == 1
    with torch.no_grad():  # a weight update outside training does
        net.item_emb.weight.add_(0.01)
    model.score_batch(collate(toy.test, np.arange(len(toy.test))))
    assert calls["n"] == 2


def test_cached_global_embeddings_follow_a_fused_adam_step(toy):
    """The Trainer's fused Adam updates E^(0) and P in place without bumping their version
    counters: E^g cached before the step must not be served after it."""
    model = create("focol", toy.num_items, **SMALL)
    model.prepare(toy)
    net = model.net
    opt = adam(net.parameters(), 0.1, 0.0, model.device)
    assert opt.defaults["fused"]
    batch_loss(net.train(), collate(toy.train, np.arange(len(toy.train)))).backward()
    net.eval()
    cached = net.global_embeddings().clone()
    version = net.item_emb.weight._version
    opt.step()
    assert net.item_emb.weight._version == version  # what a version-only key would miss
    fresh = net.global_embeddings()
    assert not torch.equal(fresh, cached)
    torch.testing.assert_close(fresh, net._propagate())


def test_scoring_mid_training_leaves_training_as_it_was(toy):
    """A score_batch between steps keeps the module training: dropout on, and E^g recomputed
    with gradients flowing to E^(0) and P."""
    model = create("focol", toy.num_items, **SMALL)
    model.prepare(toy)
    net = model.net.train()
    model.score_batch(collate(toy.test, np.arange(len(toy.test))))
    assert net.training
    batch_loss(net, collate(toy.train, np.arange(len(toy.train)))).backward()
    assert net.item_emb.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.importance)


def test_saved_model_serves_without_the_graph(toy, tmp_path):
    model = create("focol", toy.num_items, **SMALL)
    model.prepare(toy)
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert loaded.net.graph is None
    assert loaded.net.importance[0].shape == (2 * 3, SMALL["embedding_dim"])  # L = 3 from data
    assert loaded.recommend([1, 2], k=3) == model.recommend([1, 2], k=3)


@pytest.mark.parametrize(
    "name,check",
    [
        ("focol-ng", lambda p: not p.use_fogcn),
        ("focol-sg", lambda p: not p.learn_distance_weights),
        ("focol-ncl", lambda p: p.beta == 0),
        ("focol-nc", lambda p: "corrupt" not in p.augmentations),
        ("focol-nid", lambda p: "identity" not in p.augmentations and len(p.augmentations) == 3),
    ],
)
def test_variants(name, check, toy):
    model = create(name, toy.num_items, **SMALL)
    assert check(model.params)
    model.prepare(toy)
    items, lengths = torch.tensor([[1, 2], [4, 0]]), torch.tensor([2, 1])
    loss = model.net.training_loss(
        Batch(items, lengths, torch.tensor([3, 2]), torch.tensor([0, 1]))
    )
    loss.backward()
    frozen = [p for p in model.net.importance if not p.requires_grad]
    assert bool(frozen) == (name == "focol-sg")


def test_distance_importance_slot_mapping():
    from sessionrec.analysis.importance import distance_importance

    # L = 3: slots 0,1,2 are neighbour distances -1,-2,-3; slots 3,4,5 are +3,+2,+1
    p = torch.log(torch.tensor([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]]))
    r = distance_importance(p, max_shown=10)
    assert r["distances"] == [-3, -2, -1, 1, 2, 3]
    assert r["mean"] == pytest.approx([4 / 21, 5 / 21, 6 / 21, 1 / 21, 2 / 21, 3 / 21])
    assert r["std"] == pytest.approx([0.0] * 6)


def test_training_passes_example_indices_to_csrl(toy, monkeypatch):
    from sessionrec.models.focol import FOCOL
    from sessionrec.training.config import TrainConfig

    seen = []
    real = FOCOL.sample_positives

    def spy(self, targets, index):
        seen.append(index)
        return real(self, targets, index)

    monkeypatch.setattr(FOCOL, "sample_positives", spy)
    create("focol", toy.num_items, **SMALL).fit(toy, TrainConfig(epochs=1, batch_size=4))
    assert seen and all(i is not None for i in seen)


def test_training_encodes_large_batches_by_length_groups_with_the_same_result():
    """Grouped by length in training, one padded pass in evaluation: the same h_s and
    gradients (dropout off, so both see the same network)."""
    from sessionrec.models.layers import GROUP_ROWS

    g = torch.Generator().manual_seed(0)
    n, width = 3 * GROUP_ROWS + 5, 12
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    items = torch.randint(1, 40, (n, width), generator=g)
    items[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    noise = torch.randn(n, width, 16, generator=g) * 0.1
    model = create("focol", 40, **{**SMALL, "embedding_dim": 16, "dropout": 0.0})
    net, eg = model.net, model.net.item_emb.weight
    grads = []
    for training in (True, False):
        net.train(training)
        h = net.encode(eg, items, lengths, noise=noise)
        grads.append((h, *torch.autograd.grad(h.square().sum(), (eg, *net.encoder.parameters()))))
    for grouped, padded in zip(*grads, strict=True):  # E_s's lookups: a sparse gradient
        assert torch.allclose(grouped.to_dense(), padded.to_dense(), atol=1e-5)
