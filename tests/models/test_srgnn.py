"""SR-GNN: batched session-graph construction (hand-computed) and padding invariance."""

import numpy as np
import pytest
import torch

from sessionrec.models import create
from sessionrec.models.srgnn import session_graphs


def test_adjacency_of_the_papers_example():
    # Session v1 → v2 → v3 → v2 → v4 (the paper's Fig. 1 example). Each item's node sits at
    # the position of its first click: slots 0, 1, 2 and 4; slot 3 (the repeat of v2) is none.
    g = session_graphs(torch.tensor([[1, 2, 3, 2, 4]]), torch.tensor([5]))
    assert g.nodes.tolist() == [[1, 2, 3, 0, 4]]
    assert g.alias.tolist() == [[0, 1, 2, 1, 4]]
    # edges 1→2, 2→3, 3→2, 2→4; in-degrees 0, 2, 1, 1; out-degrees 1, 2, 1, 0
    a_in = torch.tensor(
        [  # a_in[v, u] = 1 / indeg(v) for u → v
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.5, 0.0, 0.5, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
        ]
    )
    a_out = torch.tensor(
        [  # a_out[u, v] = 1 / outdeg(u) for u → v
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.5, 0.0, 0.5],
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    assert torch.equal(g.a_in[0], a_in)
    assert torch.equal(g.a_out[0], a_out)


def test_repeated_transition_counts_once_and_padding_is_no_node():
    items = torch.tensor([[7, 5, 7, 5, 7], [5, 5, 0, 0, 0]])
    g = session_graphs(items, torch.tensor([5, 2]))
    assert g.nodes.tolist() == [[7, 5, 0, 0, 0], [5, 0, 0, 0, 0]]
    # row 0: edges 7→5 and 5→7 (each twice in the session, once in the graph)
    assert g.a_in[0, :2, :2].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert g.a_out[0, :2, :2].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    # row 1: a self-loop 5→5; the slots of the repeat and of the padding have no edges
    assert g.a_in[1, :1, :1].tolist() == [[1.0]] and g.a_out[1, :1, :1].tolist() == [[1.0]]
    assert g.a_in.sum().item() == 3.0 and g.a_out.sum().item() == 3.0
    assert g.alias.tolist() == [[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]]


def _reference_graph(seq: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """One session at a time, straight from the definition, nodes sorted by item id."""
    nodes = sorted(set(seq))
    adj = np.zeros((len(nodes), len(nodes)))
    for a, b in zip(seq[:-1], seq[1:], strict=True):
        adj[nodes.index(a), nodes.index(b)] = 1.0
    a_in = (adj / np.maximum(adj.sum(0, keepdims=True), 1.0)).T
    a_out = adj / np.maximum(adj.sum(1, keepdims=True), 1.0)
    return nodes, a_in, a_out


def test_batched_graphs_match_per_session_reference():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 8, size=rng.integers(1, 9)).tolist() for _ in range(40)]
    width = max(map(len, seqs))
    items = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    g = session_graphs(items, torch.tensor([len(s) for s in seqs]))
    for b, seq in enumerate(seqs):
        nodes, a_in, a_out = _reference_graph(seq)
        slots = [seq.index(v) for v in nodes]  # each item's node: its first click's position
        assert g.nodes[b, slots].tolist() == nodes
        assert g.nodes[b].count_nonzero().item() == len(nodes)
        assert g.alias[b, : len(seq)].tolist() == [seq.index(v) for v in seq]
        np.testing.assert_allclose(g.a_in[b][slots][:, slots].numpy(), a_in)
        np.testing.assert_allclose(g.a_out[b][slots][:, slots].numpy(), a_out)
        assert g.a_in[b].sum().item() == pytest.approx(a_in.sum())
        assert g.a_out[b].sum().item() == pytest.approx(a_out.sum())


def test_scores_do_not_depend_on_batch_companions():
    model = create("srgnn", 20, seed=0, hidden_size=8, step=2)
    model.net.eval()
    alone = model.net(torch.tensor([[3, 4, 3]]), torch.tensor([3]))
    batch = torch.tensor([[3, 4, 3, 0, 0, 0], [1, 2, 5, 6, 7, 1]])
    together = model.net(batch, torch.tensor([3, 6]))
    torch.testing.assert_close(together[0], alone[0])
