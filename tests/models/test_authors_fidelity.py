"""Differences from the authors' code that were fixed, each pinned (docs/baselines-*.md)."""

import numpy as np
import pytest
import torch

from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.models import create

N = 2000


def test_narm_item_table_scales_default_theano_code_and_pytorch():
    table = create("narm", N, emb_init_std=None).net.item_emb.weight.detach()
    assert torch.equal(table[0], torch.zeros_like(table[0]))
    assert table[1:].std().item() == pytest.approx((2 / (N + 1)) ** 0.5, rel=0.05)
    default = create("narm", N).net.item_emb.weight.detach()  # chosen by measurement
    assert default[1:].std().item() == pytest.approx(0.1, rel=0.05) and not default[0].any()
    port = create("narm", N, emb_init_std=1.0).net.item_emb.weight.detach()
    assert port[1:].std().item() == pytest.approx(1.0, rel=0.05) and not port[0].any()


def test_repeatnet_is_glorot_normal_like_the_code():
    net = create("repeatnet", N).net
    table = net.item_emb.weight.detach()
    assert table[1:].std().item() == pytest.approx((2 / (N + 1 + 100)) ** 0.5, rel=0.05)
    explore = net.explore.weight.detach()  # (N+1, 2d)
    assert explore.std().item() == pytest.approx((2 / (N + 1 + 200)) ** 0.5, rel=0.05)
    assert create("repeatnet", N, init="torch").net.item_emb.weight[1:].std() > 0.9


def _stamp(add_ms, max_norm):
    model = create("stamp", 20, embedding_dim=4, add_ms=add_ms, input_max_norm=max_norm)
    net = model.net.eval()
    with torch.no_grad():
        net.item_emb.weight[1:] = torch.arange(1, 21.0)[:, None] * torch.tensor([1.0, 0, 0, 0])
        for p in net.attention.parameters():
            p.zero_()  # α_i = 0: m_a is only what is added to the attention output
    return net


def test_stamp_adds_m_s_to_the_attention_output_and_clips_inputs_at_1_5():
    items, lengths = torch.tensor([[1, 2, 5]]), torch.tensor([3])
    code = _stamp(True, 1.5)
    # rows 1, 2, 5 have norms 1, 2, 5 -> clipped to 1, 1.5, 1.5; m_s = their mean
    m_s = torch.tensor([[(1 + 1.5 + 1.5) / 3, 0, 0, 0]])
    x_t = torch.tensor([[1.5, 0, 0, 0]])
    want = torch.tanh(code.mlp_s(m_s)) * torch.tanh(code.mlp_t(x_t))
    assert torch.allclose(code.session_vectors(items, lengths), want)
    paper = _stamp(False, None)  # Eq. 8 alone: m_a = Σ α_i x_i = 0 here; raw inputs
    want = torch.tanh(paper.mlp_s(torch.zeros(1, 4))) * torch.tanh(
        paper.mlp_t(torch.tensor([[5.0, 0, 0, 0]]))
    )
    assert torch.allclose(paper.session_vectors(items, lengths), want)


def _dataset_with_a_validation_only_item():
    """Item 9 occurs only in the last training session, whose prefixes are validation."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 9, 4).tolist() for _ in range(60)] + [[3, 9, 9, 4, 9]]
    test = Sessions.from_lists([[1, 2, 3]]).prefixes()
    return build_dataset("toy", Sessions.from_lists(seqs), test, valid_fraction=0.05)


def test_no_validation_session_enters_a_graph_or_index():
    data = _dataset_with_a_validation_only_item()
    assert 9 not in data.fit_sessions().items and 9 in data.valid.target
    gce = create("gcegnn", 9, embedding_dim=8)
    gce.prepare(data)
    assert gce.net.neighbors[9].sum() == 0 and 9 not in gce.net.neighbors[1:9]
    dhcn = create("dhcn", 9, embedding_dim=8)
    dhcn.prepare(data)
    items, sessions = dhcn.net.incidence
    assert 9 not in items.tolist() and sessions.max() + 1 == len(data.fit_sessions())
