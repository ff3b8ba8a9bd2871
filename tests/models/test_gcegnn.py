"""GCE-GNN: global ε-neighbour graph, session-graph edge types and the two attention layers."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.models import create
from sessionrec.models.gcegnn import (
    IN,
    IN_OUT,
    NONE,
    OUT,
    SELF,
    GCEGNNParams,
    build_global_graph,
    sample_neighbors,
    session_graph,
)

TOY = [[1, 2, 3], [2, 3, 4, 1], [3, 1]]


def test_global_graph_toy_epsilon_2():
    # pairs within distance 2, each counted once per direction:
    # s1: (1,2) (2,3) | (1,3);  s2: (2,3) (3,4) (4,1) | (2,4) (3,1);  s3: (3,1)
    # => {1,3}: 3, {2,3}: 2, {1,2} {3,4} {1,4} {2,4}: 1
    nb, w = build_global_graph(Sessions.from_lists(TOY), 4, epsilon=2, num_neighbors=12)
    assert nb.shape == w.shape == (5, 12)
    expected = {
        1: ([3, 2, 4], [3, 1, 1]),  # 2 before 4: (1,2) is seen before (4,1)
        2: ([3, 1, 4], [2, 1, 1]),
        3: ([1, 2, 4], [3, 2, 1]),
        4: ([3, 1, 2], [1, 1, 1]),  # first seen: (4,3) at s2 k=1 j=1, (4,1) at j=2, (4,2) k=2
    }
    for item, (neigh, weight) in expected.items():
        assert nb[item, :3].tolist() == neigh and w[item, :3].tolist() == weight
        assert not nb[item, 3:].any() and not w[item, 3:].any()  # padding
    assert not nb[0].any()


def test_global_graph_epsilon_top_k_and_self_loops():
    # ε = 1 keeps adjacent pairs only: item 1 meets 2 (s1), 4 (s2) and 3 (s3) once each,
    # and the tie keeps that order of first occurrence
    nb, w = build_global_graph(Sessions.from_lists(TOY), 4, epsilon=1, num_neighbors=12)
    assert nb[1, :3].tolist() == [2, 4, 3] and w[1, :3].tolist() == [1, 1, 1]
    assert nb[3, :3].tolist() == [2, 4, 1] and w[3, :3].tolist() == [2, 1, 1]
    # only the heaviest neighbours are kept
    nb, w = build_global_graph(Sessions.from_lists(TOY), 4, epsilon=2, num_neighbors=2)
    assert nb[1].tolist() == [3, 2] and w[1].tolist() == [3, 1]
    # an item repeated within ε co-occurs with itself (once per direction)
    nb, w = build_global_graph(Sessions.from_lists([[5, 6, 5]]), 6, epsilon=2, num_neighbors=3)
    assert nb[5].tolist() == [6, 5, 0] and w[5].tolist() == [2, 2, 0]


def test_prepare_uses_training_sessions_only():
    train = Sessions.from_lists(TOY)
    test = Sessions.from_lists([[5, 6], [6, 5]]).as_examples(np.array([6, 5]))
    data = build_dataset("toy", train, test, valid_fraction=0.0)
    model = create("gcegnn", data.num_items, epsilon=2)
    model.prepare(data)
    nb = model.net.neighbors
    assert nb.shape == (7, 12) and nb[1, :3].tolist() == [3, 2, 4]
    assert not nb[5].any() and not nb[6].any()  # test-only items have no global neighbours


def test_session_graph_edge_types():
    items = torch.tensor([[1, 2, 3, 2, 4], [7, 7, 0, 0, 0]])
    nodes, alias, types = session_graph(items)
    assert nodes.tolist() == [[1, 2, 3, 4], [7, 0, 0, 0]]
    assert alias.tolist() == [[0, 1, 2, 1, 3], [0, 0, 0, 0, 0]]
    # clicks 1→2, 2→3, 3→2, 2→4; row i, column j = relation of node j to node i
    assert types[0].tolist() == [
        [SELF, OUT, NONE, NONE],
        [IN, SELF, IN_OUT, OUT],
        [NONE, IN_OUT, SELF, NONE],
        [NONE, IN, NONE, SELF],
    ]
    assert types[1].tolist() == [  # a repeated click is only the self-loop
        [SELF, NONE, NONE, NONE],
        [NONE, SELF, NONE, NONE],
        [NONE, NONE, SELF, NONE],
        [NONE, NONE, NONE, SELF],
    ]


def test_session_level_attention_matches_equations():
    torch.manual_seed(0)
    net = create("gcegnn", 10).net
    items = torch.tensor([[1, 2, 3, 2, 4]])
    nodes, _, types = session_graph(items)
    h = net.item_emb(nodes)
    out = net.session_level(h, types)[0]
    for i in range(4):  # e_ij = LeakyReLU(a_rᵀ(h_i ⊙ h_j)) over j with an edge (Eqs. 7-9)
        js = [j for j in range(4) if types[0, i, j] != NONE]
        e = torch.stack(
            [F.leaky_relu(net.a[types[0, i, j] - 1] @ (h[0, i] * h[0, j]), 0.2) for j in js]
        )
        expected = (e.softmax(0).unsqueeze(1) * h[0, js]).sum(0)
        torch.testing.assert_close(out[i], expected)


def test_global_aggregator_attention_and_empty_neighbourhoods():
    torch.manual_seed(0)
    net = create("gcegnn", 10, dropout_gcn=0.0).net
    net.eval()
    agg = net.global_agg[0]
    self_vec, neigh = torch.randn(1, 2, 100), torch.randn(1, 2, 3, 100)
    weight = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    mask = torch.tensor([[[True, True, False], [False, False, False]]])
    s = torch.randn(1, 100)
    out = agg(self_vec, neigh, weight, mask, s)
    # node 0: softmax over its two real neighbours of q1ᵀ LeakyReLU(W1[(s ⊙ h_j); w_ij])
    pi = torch.stack(
        [
            agg.q_1(
                F.leaky_relu(
                    agg.w_1(torch.cat([s[0] * neigh[0, 0, j], weight[0, 0, j, None]])), 0.2
                )
            )[0]
            for j in (0, 1)
        ]
    ).softmax(0)
    h_n = pi[0] * neigh[0, 0, 0] + pi[1] * neigh[0, 0, 1]
    torch.testing.assert_close(out[0, 0], torch.relu(agg.w_2(torch.cat([self_vec[0, 0], h_n]))))
    # node 1 has no neighbours: h_N = 0
    expected = torch.relu(agg.w_2(torch.cat([self_vec[0, 1], torch.zeros(100)])))
    torch.testing.assert_close(out[0, 1], expected)


def test_sampled_slots_weigh_each_neighbour_by_its_copies():
    # item 1 has two neighbours (5 weight 3, 7 weight 1), item 2 all four slots, item 3 none
    nb = torch.tensor([[0, 0, 0, 0], [5, 7, 0, 0], [4, 6, 8, 9], [0, 0, 0, 0]])
    w = torch.tensor([[0.0] * 4, [3.0, 1.0, 0, 0], [4.0, 3.0, 2.0, 1.0], [0.0] * 4])
    snb, sw = sample_neighbors(nb, w, torch.Generator().manual_seed(0))
    assert set(snb[1].tolist()) <= {5, 7} and (snb[1] > 0).all()  # four draws of the two
    assert torch.equal(sw[1], torch.where(snb[1] == 5, 3.0, 1.0))  # counts follow their items
    assert torch.equal(snb[[0, 2, 3]], nb[[0, 2, 3]]) and torch.equal(sw[[0, 2, 3]], w[[0, 2, 3]])
    # with duplicates the aggregator's softmax is the code's: each neighbour weighed by copies
    torch.manual_seed(0)
    agg = create("gcegnn", 10, dropout_gcn=0.0).net.global_agg[0].eval()
    self_vec, s = torch.randn(1, 1, 100), torch.randn(1, 100)
    h = {5: torch.randn(100), 7: torch.randn(100)}
    ids = torch.tensor([5, 5, 5, 7])  # three copies of 5, one of 7
    neigh = torch.stack([h[i] for i in ids.tolist()]).view(1, 1, 4, 100)
    weight = torch.where(ids == 5, 3.0, 1.0).view(1, 1, 4)
    out = agg(self_vec, neigh, weight, torch.ones(1, 1, 4, dtype=torch.bool), s)
    e = {i: agg.q_1(F.leaky_relu(agg.w_1(torch.cat([s[0] * h[i], torch.tensor([c])])), 0.2))
         for i, c in ((5, 3.0), (7, 1.0))}  # fmt: skip
    z = 3 * e[5].exp() + e[7].exp()
    h_n = (3 * e[5].exp() * h[5] + e[7].exp() * h[7]) / z
    expected = torch.relu(agg.w_2(torch.cat([self_vec[0, 0], h_n])))
    torch.testing.assert_close(out[0, 0], expected)


def test_prepare_can_fill_slots_as_the_code_does():
    train = Sessions.from_lists(TOY)
    test = Sessions.from_lists([[5, 6], [6, 5]]).as_examples(np.array([6, 5]))
    data = build_dataset("toy", train, test, valid_fraction=0.0)
    masked, sampled = (create("gcegnn", data.num_items, epsilon=2, neighbor_fill=f, seed=0)
                       for f in ("mask", "sample"))  # fmt: skip
    masked.prepare(data)
    sampled.prepare(data)
    nb_m, nb_s = masked.net.neighbors, sampled.net.neighbors
    for item in (1, 2, 3, 4):  # three real neighbours each, drawn into all 12 slots
        assert (nb_s[item] > 0).all() and set(nb_s[item].tolist()) <= set(nb_m[item, :3].tolist())
    assert not nb_s[5].any() and not nb_s[6].any()
    with pytest.raises(Exception, match="neighbor_fill"):
        GCEGNNParams(neighbor_fill="copy").validate()


@pytest.mark.parametrize("hops", [1, 2])
def test_forward_scores_all_items_and_masks_padding(hops, tiny):
    model = create("gcegnn", tiny.num_items, hops=hops)
    model.prepare(tiny)
    model.net.eval()
    items = torch.tensor([[1, 2, 3, 2], [5, 0, 0, 0]])
    logits = model.net(items, torch.tensor([4, 1]))
    assert logits.shape == (2, tiny.num_items + 1)
    assert torch.isinf(logits[:, 0]).all() and torch.isfinite(logits[:, 1:]).all()


def test_params_validation():
    with pytest.raises(Exception, match="dropout_global"):
        GCEGNNParams(dropout_global=1.0).validate()
    with pytest.raises(Exception, match="epsilon"):
        GCEGNNParams(epsilon=0).validate()


def test_global_graph_matches_a_plain_loop(tiny):
    """Counts and neighbour order equal a direct loop over the training sessions."""
    sessions = tiny.train_sessions
    counts: list[dict[int, int]] = [{} for _ in range(tiny.num_items + 1)]
    for seq in sessions.to_lists():
        for k in (1, 2, 3):
            for j in range(len(seq) - k):
                for u, v in ((seq[j], seq[j + k]), (seq[j + k], seq[j])):
                    counts[u][v] = counts[u].get(v, 0) + 1  # dicts keep first-seen order
    nb, w = build_global_graph(sessions, tiny.num_items, epsilon=3, num_neighbors=12)
    for item in range(tiny.num_items + 1):
        top = sorted(counts[item].items(), key=lambda kv: -kv[1])[:12]  # stable sort
        assert nb[item, : len(top)].tolist() == [v for v, _ in top]
        assert w[item, : len(top)].tolist() == [c for _, c in top]
        assert not nb[item, len(top) :].any()


@pytest.mark.parametrize("hops", [1, 2])
def test_learned_padding_gives_items_without_neighbours_the_padding_row(hops):
    """`learned_padding` (the code): row 0 is a trained parameter and a node whose neighbour
    list is empty aggregates S copies of it, h_n = e_0; masked (the paper), h_n = 0."""
    train = Sessions.from_lists(TOY)
    test = Sessions.from_lists([[5, 6], [6, 5]]).as_examples(np.array([6, 5]))
    data = build_dataset("toy", train, test, valid_fraction=0.0)
    got = {}
    for learned in (False, True):
        model = create("gcegnn", data.num_items, epsilon=2, hops=hops, learned_padding=learned,
                       neighbor_fill="sample", seed=0)  # fmt: skip
        model.prepare(data)
        net = model.net.eval()
        assert (net.item_emb.weight[0].abs().sum() > 0) == learned
        assert (net.item_emb.padding_idx is None) == learned
        items = torch.tensor([[5, 6]])  # items 5 and 6 never appear in training: no neighbours
        ids = [items] + [torch.zeros(1, 2 * 12**k, dtype=torch.long) for k in range(1, hops + 1)]
        vecs = [net.item_emb(i) for i in ids]
        s = vecs[0].mean(1)
        got[learned] = (net.global_level(ids, vecs, s), net, vecs, s)
    out, net, vecs, s = got[True]
    e0, agg = net.item_emb.weight[0], net.global_agg[0]
    if hops == 1:  # h_n = e_0 exactly: uniform attention over 12 copies
        expected = torch.relu(agg.w_2(torch.cat([vecs[0], e0.expand_as(vecs[0])], -1)))
        torch.testing.assert_close(out, expected)
    for agg in net.global_agg:  # every level attends to all 12 (padding) slots, weight 0
        vecs = [agg(vecs[h], vecs[h + 1].view(1, -1, 12, 100), torch.zeros(1, vecs[h].shape[1], 12),
                    torch.ones(1, vecs[h].shape[1], 12, dtype=torch.bool), s)
                for h in range(len(vecs) - 1)]  # fmt: skip
    torch.testing.assert_close(out, vecs[0])
    out_m, net_m, vecs_m, _ = got[False]
    if hops == 1:  # masked: h_n = 0
        agg = net_m.global_agg[0]
        expected = torch.relu(agg.w_2(torch.cat([vecs_m[0], torch.zeros_like(vecs_m[0])], -1)))
        torch.testing.assert_close(out_m, expected)


def test_learned_padding_row_is_trained_and_readout_bias_can_be_left_out(tiny):
    model = create("gcegnn", tiny.num_items, learned_padding=True, readout_bias=False, seed=0)
    assert model.net.readout.w_z.bias is None
    model.prepare(tiny)
    net = model.net.train()
    net.neighbors[4] = 0  # item 4 without neighbours: its global vector is e_0's
    items = torch.tensor([[1, 2, 3], [4, 0, 0]])
    net(items, torch.tensor([3, 1]))[:, 1:].logsumexp(1).sum().backward()
    assert net.item_emb.weight.grad[0].abs().sum() > 0
