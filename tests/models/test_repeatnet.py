"""RepeatNet: repeat probabilities land on the session's item ids; the mixture is a distribution."""

import math

import torch

from sessionrec.data.batching import Batch
from sessionrec.models import create


def _net():
    model = create("repeatnet", 6, seed=0, embedding_dim=8, hidden_size=8)
    return model.net.eval()


ITEMS = torch.tensor([[3, 5, 3, 0], [1, 2, 4, 6]])
LENGTHS = torch.tensor([3, 4])


def test_repeat_mode_scatters_attention_onto_item_ids():
    net = _net()
    _, log_alpha, _, _ = net.heads(ITEMS, LENGTHS)
    alpha = log_alpha.exp()  # attention over positions; 0 at padding
    _, p_repeat, _ = net.components(ITEMS, LENGTHS)
    # row 0 = [3, 5, 3]: item 3 gets positions 0 and 2, item 5 position 1, nothing else (Eq. 6)
    want = torch.zeros(7)
    want[3], want[5] = alpha[0, 0] + alpha[0, 2], alpha[0, 1]
    torch.testing.assert_close(p_repeat[0], want)
    torch.testing.assert_close(p_repeat[1, [1, 2, 4, 6]], alpha[1])
    assert p_repeat[1, [0, 3, 5]].eq(0).all()
    torch.testing.assert_close(p_repeat.sum(1), torch.ones(2))


def test_explore_excludes_the_session_and_the_mixture_sums_to_one():
    net = _net()
    p_mode, p_repeat, p_explore = net.components(ITEMS, LENGTHS)
    assert p_explore[0, [0, 3, 5]].eq(0).all() and p_explore[1, [0, 1, 2, 4, 6]].eq(0).all()
    torch.testing.assert_close(p_explore.sum(1), torch.ones(2))
    mix = p_mode[:, :1] * p_repeat + p_mode[:, 1:] * p_explore  # Eq. 1
    torch.testing.assert_close(mix.sum(1), torch.ones(2))
    logp = net(ITEMS, LENGTHS)  # forward returns the log of exactly this mixture
    torch.testing.assert_close(logp[:, 1:].exp(), mix[:, 1:])
    assert torch.isfinite(logp[:, 1:]).all() and logp[:, 0].eq(float("-inf")).all()


def test_loss_is_negative_log_of_mixture_probability():
    net = _net()
    targets = torch.tensor([5, 2])  # repeat targets: each is in its own session
    logp = net(ITEMS, LENGTHS)
    want = -(logp[0, 5] + logp[1, 2]).item() / 2
    assert math.isclose(
        net.training_loss(Batch(ITEMS, LENGTHS, targets)).item(), want, rel_tol=1e-5
    )
    targets = torch.tensor([4, 3])  # explore targets (not in their sessions)
    want = -(logp[0, 4] + logp[1, 3]).item() / 2
    assert math.isclose(
        net.training_loss(Batch(ITEMS, LENGTHS, targets)).item(), want, rel_tol=1e-5
    )


def test_extreme_attention_stays_finite():
    net = _net()
    with torch.no_grad():  # make the repeat attention extremely peaked
        net.repeat_attention.v.weight.mul_(1e4)
    net.train(False)
    logp = net(ITEMS, LENGTHS)
    assert torch.isfinite(logp[:, 1:]).all()
    net.zero_grad()
    loss = net.training_loss(Batch(ITEMS, LENGTHS, torch.tensor([5, 6])))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_scores_do_not_depend_on_padding():
    net = _net()
    alone = net(torch.tensor([[2, 4]]), torch.tensor([2]))
    padded = net(torch.tensor([[2, 4, 0, 0], [1, 2, 3, 1]]), torch.tensor([2, 4]))
    torch.testing.assert_close(padded[:1], alone)


def test_the_gru_reads_the_embeddings_undropped_as_the_code():
    """Chainer's 1-layer NStepGRU(…, 0.5) drops nothing; only h_t and the states are dropped."""
    seen = []
    net = create("repeatnet", 6, seed=0, embedding_dim=8, hidden_size=8).net.train()
    net.gru.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    log_mode = net.heads(ITEMS, LENGTHS)[0]
    torch.testing.assert_close(seen[0], net.item_emb(ITEMS), rtol=0, atol=0)
    assert not torch.equal(log_mode, net.heads(ITEMS, LENGTHS)[0])  # the states' dropout
    net = create("repeatnet", 6, seed=0, embedding_dim=8, hidden_size=8, embedding_dropout=0.5)
    net.net.train().gru.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    net.net.heads(ITEMS, LENGTHS)
    emb, got = net.net.item_emb(ITEMS), seen[-1]  # the PyTorch port's: each entry 0 or 2×
    assert torch.all((got == 0) | torch.isclose(got, 2 * emb)) and got.eq(0).any()


def test_glorot_init_covers_each_gru_gate_with_zero_biases():
    """NStepGRU: six (d, in) GlorotNormal matrices, biases 0; the item table's pad row is 0."""
    net = create("repeatnet", 500, seed=0, embedding_dim=64, hidden_size=32).net
    assert net.gru.bias_ih_l0.eq(0).all() and net.gru.bias_hh_l0.eq(0).all()
    for w, fan_in in ((net.gru.weight_ih_l0, 64), (net.gru.weight_hh_l0, 32)):
        for gate in w.chunk(3):  # std √(2 / (32 + fan_in)): 0.144 and 0.177
            assert math.isclose(gate.std().item(), (2 / (32 + fan_in)) ** 0.5, rel_tol=0.1)
    assert net.item_emb.weight[0].eq(0).all()


def test_training_loss_by_length_groups_equals_the_padded_pass(monkeypatch):
    """A large batch's loss is computed in length groups: the same loss and gradients."""
    import sessionrec.models.layers as layers

    model = create("repeatnet", 40, seed=0, embedding_dim=8, hidden_size=8)
    net = model.net.eval()  # no dropout: both passes see the same network
    g = torch.Generator().manual_seed(0)
    n, width = 3 * layers.GROUP_ROWS + 5, 10
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    items = torch.randint(1, 41, (n, width), generator=g)
    items[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    targets = torch.where(torch.rand(n, generator=g) < 0.5, items[:, 0], 7)  # repeat, explore
    batch = Batch(items, lengths, targets)
    widths, heads = [], net.heads
    net.heads = lambda it, le: widths.append(it.shape[1]) or heads(it, le)
    results = []
    for rows in (layers.GROUP_ROWS, 10**9):  # groups, then one padded pass
        monkeypatch.setattr(layers, "GROUP_ROWS", rows)
        loss = net.training_loss(batch)
        results.append((loss, *torch.autograd.grad(loss, list(net.parameters()))))
    assert len(widths) == 4 and widths[0] < width and widths[-1] == width  # 3 groups, 1 pass
    for grouped, padded in zip(*results, strict=True):
        torch.testing.assert_close(grouped, padded, atol=1e-5, rtol=1e-5)


def test_attentions_have_no_bias_as_eqs_3_5_7_and_the_code():
    """e_τ = vᵀ tanh(W h_t + U h_τ), computed by hand from the GRU states, with no b."""
    net = _net()
    attentions = (net.mode_attention, net.repeat_attention, net.explore_attention)
    assert all(a.w_query.bias is None for a in attentions)
    states, _ = net.gru(net.item_emb(ITEMS))
    h_t = states[torch.arange(2), LENGTHS - 1]
    a = net.repeat_attention
    e = a.v.weight @ torch.tanh(a.w_query.weight @ h_t[:, :, None] + a.w_key.weight @ states.mT)
    e = e.squeeze(1).masked_fill(ITEMS == 0, float("-inf"))
    torch.testing.assert_close(net.heads(ITEMS, LENGTHS)[1], e.log_softmax(1))
    with_bias = create("repeatnet", 6, seed=0, embedding_dim=8, hidden_size=8, attention_bias=True)
    assert all(
        a.w_query.bias is not None
        for a in (with_bias.net.mode_attention, with_bias.net.repeat_attention)
    )


def test_a_model_saved_before_attention_bias_loads_with_its_biases(tmp_path):
    """model.json written before the option existed has no `attention_bias`: it had biases."""
    import json

    from sessionrec.models import Recommender

    old = create("repeatnet", 6, seed=0, embedding_dim=8, hidden_size=8, attention_bias=True)
    old.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["params"]["attention_bias"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    loaded = Recommender.load(tmp_path)
    assert loaded.params.attention_bias
    torch.testing.assert_close(loaded.net.eval()(ITEMS, LENGTHS), old.net.eval()(ITEMS, LENGTHS))
