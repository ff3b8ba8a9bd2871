"""LINet: the local encoder's weights by hand, its open choices, invariance, ablations."""

import math

import numpy as np
import pytest
import torch

from sessionrec.analysis.local_invariance import item_similarity
from sessionrec.errors import ConfigError
from sessionrec.evaluation import evaluate
from sessionrec.models import create
from sessionrec.models.linet import (
    LINet,
    LINetParams,
    LocalEncoder,
    gaussian_variance,
    local_weights,
    neighbour_similarity,
)
from sessionrec.training.config import TrainConfig

# x1..x4 of a hand-made session: cos(x1,x2) = cos(x2,x3) = 1/√2, cos(x3,x4) = 0.
X4 = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]])
MASK4 = torch.ones(1, 4, dtype=torch.bool)
BUDGET = TrainConfig(epochs=4, batch_size=64, lr=3e-3, patience=4, eval_batch_size=1000)


def encoder(**kw) -> LocalEncoder:
    base = dict(embedding_dim=2, hidden_size=2, m=1, k_init=2.0, learn_k=False)
    return LocalEncoder(LINetParams(**{**base, **kw}))


def gauss(d: int, var: float) -> float:
    return math.exp(-(d**2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def test_gaussian_weights_of_eq7_by_hand():
    # m = 1, k = 2: s̄ = (0.7071, 0.7071, 0.3536, 0); σ² = max(2 s̄, 1e-3) (Eq. 7, the default);
    # w_ij = exp(−(i−j)² / 2σ_i²) normalised over j (no attention).
    enc = encoder(attention_weights=False)
    assert enc.variance(X4, MASK4)[0].tolist() == pytest.approx(
        [1.414214, 1.414214, 0.707107, 0.001], abs=1e-6
    )
    expected = [
        [0.50332, 0.353425, 0.122365, 0.020889],
        [0.265228, 0.377716, 0.265228, 0.091829],
        [0.028899, 0.241081, 0.488939, 0.241081],
        [0.0, 0.0, 0.0, 1.0],  # s̄ = 0: a Gaussian of variance 1e-3 keeps only the click itself
    ]
    w = enc.weights(X4, MASK4)[0]
    assert w.tolist() == [pytest.approx(row, abs=1e-5) for row in expected]


def test_gaussian_weights_match_hand_computation():
    # m = 1, k = 2: s̄ = (0.7071, 0.7071, 0.3536, 0); σ² = softplus(2 s̄) + 1e-3.
    enc = encoder(attention_weights=False, variance="softplus")
    sim = neighbour_similarity(X4, MASK4, 1)
    assert sim[0].tolist() == pytest.approx(
        [1 / math.sqrt(2), 1 / math.sqrt(2), 0.353553, 0], abs=1e-6
    )
    var = enc.variance(X4, MASK4)[0]
    assert var.tolist() == pytest.approx([1.632835, 1.632835, 1.10894, 0.694147], abs=1e-5)
    w = enc.weights(X4, MASK4)[0]
    expected = [
        [0.477652, 0.351661, 0.140333, 0.030354],
        [0.266146, 0.3615, 0.266146, 0.106208],
        [0.067539, 0.261216, 0.410029, 0.261216],
        [0.000991, 0.036307, 0.315117, 0.647586],
    ]
    assert w.tolist() == [pytest.approx(row, abs=1e-5) for row in expected]


def test_attention_times_gaussian_is_normalised_product():
    # w_ij = α_ij f_i(|i−j|) / Σ_k α_ik f_i(|i−k|) with α a softmax (Eq. 3–6), by hand.
    enc = encoder()
    with torch.no_grad():
        enc.w_i.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        enc.w_j.weight.copy_(torch.tensor([[0.5, -1.0], [1.0, 0.0]]))
        enc.v.weight.copy_(torch.tensor([[2.0, -1.0]]))
    x = X4[0].tolist()
    var = enc.variance(X4, MASK4)[0].tolist()
    w = enc.weights(X4, MASK4)[0]
    for i in range(4):
        e = [
            2 * math.tanh(x[i][0] + 0.5 * x[j][0] - x[j][1]) - math.tanh(x[i][1] + x[j][0])
            for j in range(4)
        ]
        alpha = [math.exp(v) / sum(math.exp(u) for u in e) for v in e]
        raw = [alpha[j] * gauss(abs(i - j), var[i]) for j in range(4)]
        assert w[i].tolist() == pytest.approx([r / sum(raw) for r in raw], abs=1e-6)


def test_rows_sum_to_one_and_padding_is_masked():
    torch.manual_seed(0)
    enc = encoder(embedding_dim=8, hidden_size=8, m=2)
    x = torch.randn(3, 5, 8)
    lengths = torch.tensor([5, 2, 1])
    mask = torch.arange(5)[None, :] < lengths[:, None]
    x = x * mask.unsqueeze(-1)
    w = enc.weights(x, mask)
    assert torch.allclose(w.sum(-1)[mask], torch.ones(int(mask.sum())))
    assert (w.sum(-1)[~mask] == 0).all()  # padded rows
    assert (w.masked_select(~mask.unsqueeze(1).expand_as(w)) == 0).all()  # padded columns
    # A padded session gives the same weights as the session alone.
    alone = enc.weights(x[1:2, :2], mask[1:2, :2])
    assert torch.allclose(w[1, :2, :2], alone[0], atol=1e-6)
    assert w[2, 0, 0] == 1.0  # a single click is its own group


def test_padding_does_not_change_scores():
    net = LINet(20, LINetParams(embedding_dim=8, hidden_size=8)).eval()
    items = torch.tensor([[3, 5, 7, 0, 0], [3, 5, 7, 2, 9]])
    lengths = torch.tensor([3, 5])
    both = net(items, lengths)
    alone = net(items[:1, :3], lengths[:1])
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_end_positions_average_over_existing_neighbours():
    # m = 2: position 0 has neighbours {1, 2} only; the mean is over 2, not 2m = 4.
    x = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, True, True, False]])  # last slot is padding
    sim = neighbour_similarity(x, mask, 2)[0]
    assert sim[:4].tolist() == pytest.approx([0.5, 2 / 3, 0.0, 0.5])  # pos 3: {1, 2}, not pad
    assert sim[4] == 0.0
    lone = neighbour_similarity(torch.tensor([[[0.3, 0.4]]]), torch.tensor([[True]]), 2)
    assert lone.item() == 0.0  # no neighbours: average similarity 0


def test_negative_similarity_keeps_variance_positive():
    x = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]]], requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    sim = neighbour_similarity(x, mask, 1)
    assert sim[0].tolist() == pytest.approx([-1.0, -1.0, -1.0])
    soft = gaussian_variance(sim, 5.0, "softplus", 1e-3)
    assert soft[0].tolist() == pytest.approx([math.log1p(math.exp(-5.0)) + 1e-3] * 3)
    clamp = gaussian_variance(sim, 5.0, "clamp", 1e-3)
    assert clamp[0].tolist() == pytest.approx([1e-3] * 3)
    w = local_weights(None, clamp, mask)
    assert torch.allclose(w[0], torch.eye(3), atol=1e-6)  # a very narrow Gaussian: itself only
    enc = encoder(variance="clamp")
    out = enc(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    with pytest.raises(ConfigError, match="unknown variance"):
        gaussian_variance(sim, 1.0, "abs")


def test_k_is_learned_or_fixed():
    learned = LocalEncoder(LINetParams(embedding_dim=4, hidden_size=4, k_init=3.0))
    assert learned.k.item() == pytest.approx(3.0)
    assert "rho" in dict(learned.named_parameters())
    x = torch.randn(2, 4, 4)
    learned(x, torch.ones(2, 4, dtype=torch.bool)).pow(2).sum().backward()
    assert learned.rho.grad is not None and learned.rho.grad != 0
    fixed = LocalEncoder(LINetParams(embedding_dim=4, hidden_size=4, learn_k=False))
    assert "rho" not in dict(fixed.named_parameters()) and "rho" in fixed.state_dict()


def test_params_validation():
    with pytest.raises(ConfigError, match="needs attention_weights or gaussian_weights"):
        create("linet", 10, attention_weights=False, gaussian_weights=False)
    with pytest.raises(ConfigError, match="positive"):
        create("linet", 10, k_init=0)
    with pytest.raises(ConfigError, match="must be one of"):
        create("linet", 10, variance="abs")


def test_ablation_switches():
    x = torch.randn(2, 4, 6)
    mask = torch.ones(2, 4, dtype=torch.bool)
    no_aw = create("linet-no-aw", 10, embedding_dim=6, hidden_size=6).net.local
    var = no_aw.variance(x, mask)
    assert torch.allclose(no_aw.weights(x, mask), local_weights(None, var, mask))
    no_gw = create("linet-no-gw", 10, embedding_dim=6, hidden_size=6).net.local
    assert torch.allclose(no_gw.weights(x, mask), no_gw.attention_logits(x, mask).softmax(-1))
    assert create("linet-no-le", 10).net.local is None
    no_ge = create("linet-no-ge", 10).net
    assert not hasattr(no_ge, "gru") and no_ge.g.in_features == 200


@pytest.fixture(scope="module")
def trained(tiny):
    """LINet and NARM with an identical small budget on the tiny synthetic data."""
    torch.set_num_threads(1)
    return {n: create(n, tiny.num_items, seed=0).fit(tiny, BUDGET) for n in ("linet", "narm")}


def test_linet_beats_narm_on_synthetic_data(trained, tiny):
    m = {n: evaluate(model, tiny.test, ks=(20,)).metrics for n, model in trained.items()}
    assert m["linet"]["mrr@20"] > m["narm"]["mrr@20"], m
    assert m["linet"]["hr@20"] > m["narm"]["hr@20"], m


def _padded(seqs):
    width = max(map(len, seqs))
    items = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        items[i, : len(s)] = torch.as_tensor(s)
    return items, torch.tensor([len(s) for s in seqs])


def test_swapping_similar_neighbours_moves_linet_less_than_narm(trained, tiny):
    """Local invariance: swap the first adjacent pair with Eq. 14 similarity > 0.5 (not the last
    click) in each test input; LINet's c = [c_h; x_t] (and c_h alone) moves less than NARM's
    c_t = [c_g; c_l], relative to its norm."""
    sim = item_similarity(tiny.train_sessions, tiny.num_items)
    original, swapped = [], []
    for i in range(len(tiny.test)):
        s = tiny.test.sequence(i)
        close = (s[:-2] != s[1:-1]) & (sim(s[:-2], s[1:-1]) > 0.5)
        if close.any():
            p = int(np.flatnonzero(close)[0])
            t = s.copy()
            t[p], t[p + 1] = s[p + 1], s[p]
            original.append(s)
            swapped.append(t)
    assert len(original) > 200
    a, b = _padded(original), _padded(swapped)
    linet, narm = trained["linet"].net.eval(), trained["narm"].net.eval()
    captured = []
    hook = narm.bilinear.register_forward_hook(lambda mod, inp, out: captured.append(inp[0]))
    with torch.no_grad():
        c_linet = [linet.session_representation(*a), linet.session_representation(*b)]
        narm(*a), narm(*b)
    hook.remove()

    def moved(c0, c1):
        return ((c1 - c0).norm(dim=1) / c0.norm(dim=1)).mean().item()

    hidden = linet.p.hidden_size
    narm_moved = moved(*captured)
    assert moved(*c_linet) < narm_moved
    assert moved(c_linet[0][:, :hidden], c_linet[1][:, :hidden]) < narm_moved


@pytest.mark.parametrize("name", ["linet-no-le", "linet-no-ge", "linet-no-aw", "linet-no-gw"])
def test_each_ablation_trains_and_scores(name, tiny):
    torch.set_num_threads(1)
    model = create(name, tiny.num_items, seed=0)
    model.fit(tiny, TrainConfig(epochs=1, batch_size=128, lr=3e-3))
    hr = evaluate(model, tiny.test, ks=(20,)).metrics["hr@20"]
    assert hr > 20 / tiny.num_items * 3
    assert len(model.recommend([1, 2, 3], k=5)) == 5
