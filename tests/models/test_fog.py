"""FOG construction by hand and FOGCN kernels against a naive per-edge reference."""

import numpy as np
import pytest
import torch

from sessionrec.data.sessions import Sessions
from sessionrec.graph.fog import build_fog, load_or_build_fog
from sessionrec.graph.fogcn import FOGOperator, fogcn, normalized_layer, softmax_layer

TOY = [[1, 2, 3], [2, 3, 2], [4, 1]]  # L = 2, so weight vectors have 4 slots


def test_toy_fog_by_hand():
    fog = build_fog(Sessions.from_lists(TOY), num_nodes=5)
    assert fog.max_distance == 2
    w = {
        (int(u), int(v)): fog.weight_vectors([e])[0].tolist()
        for e, (u, v) in enumerate(zip(fog.src, fog.dst, strict=True))
    }
    # slots: [after 1, after 2, before 2, before 1]
    assert w == {
        (1, 2): [1, 0, 0, 0],  # [1,2,3]: 2 follows 1 at distance 1
        (1, 3): [0, 1, 0, 0],  # 3 follows 1 at distance 2
        (1, 4): [0, 0, 0, 1],  # [4,1]: 4 precedes 1 at distance 1
        (2, 1): [0, 0, 0, 1],
        (2, 2): [0, 1, 1, 0],  # [2,3,2]: self-loop, symmetric
        (2, 3): [2, 0, 0, 1],  # 3 after 2 twice, once before
        (3, 1): [0, 0, 1, 0],
        (3, 2): [1, 0, 0, 2],
        (4, 1): [1, 0, 0, 0],
    }
    for (u, v), vec in w.items():  # w_vu = reverse(w_uv)
        assert w[(v, u)] == vec[::-1]


def test_max_distance_cap_and_cache(tmp_path, monkeypatch):
    sessions = Sessions.from_lists(TOY)
    capped = build_fog(sessions, 5, max_distance=1)
    assert capped.edge_index(1, 3) is None and capped.max_distance == 1
    monkeypatch.setenv("SESSIONREC_CACHE", str(tmp_path))
    a = load_or_build_fog(sessions, 5)
    assert len(list(tmp_path.glob("fog-*.npz"))) == 1
    b = load_or_build_fog(sessions, 5)
    assert np.array_equal(a.entry_count, b.entry_count) and np.array_equal(a.src, b.src)


def _naive(h, p, fog, alpha):
    """Per-edge reference: node i aggregates neighbours j with the vector of edge j→i."""
    w = torch.from_numpy(fog.weight_vectors()).to(h.dtype)
    src, dst = torch.from_numpy(fog.src), torch.from_numpy(fog.dst)
    out = h.clone()
    for i in range(fog.num_nodes):
        e = (dst == i).nonzero().flatten()
        if not len(e):
            continue
        if alpha == "normalized":
            s = w[e] @ torch.softmax(p, 0)
            out = out.index_put((torch.tensor([i]),), ((s * h[src[e]]).sum(0) / s.sum(0))[None])
        else:
            a = torch.softmax(w[e] @ p, 0)
            out = out.index_put((torch.tensor([i]),), (a * h[src[e]]).sum(0)[None])
    return out


@pytest.mark.parametrize("alpha", ["normalized", "softmax"])
def test_layer_matches_naive_reference_and_gradients(alpha):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 12, rng.integers(2, 7)).tolist() for _ in range(30)]
    fog = build_fog(Sessions.from_lists(seqs), num_nodes=14)  # nodes 0, 12, 13 are isolated
    op = FOGOperator(fog).to(dtype=torch.float64)
    torch.manual_seed(0)
    h = torch.randn(14, 5, dtype=torch.float64, requires_grad=True)
    p = torch.randn(2 * fog.max_distance, 5, dtype=torch.float64, requires_grad=True)
    layer = normalized_layer if alpha == "normalized" else softmax_layer
    kwargs = {} if alpha == "normalized" else {"chunk_edges": 7}  # several chunks
    got, want = layer(h, p, op, **kwargs), _naive(h, p, fog, alpha)
    assert torch.allclose(got, want, atol=1e-10)
    assert torch.equal(got[12], h[12])  # no neighbours: keeps its embedding
    torch.autograd.gradcheck(lambda a, b: layer(a, b, op, **kwargs), (h, p))


def test_softmax_stays_finite_with_huge_counts():
    fog = build_fog(Sessions.from_lists([[1, 2], [3, 2]]), num_nodes=4)
    fog.entry_count[:] = 1e4
    op = FOGOperator(fog)
    h, p = torch.randn(4, 3), torch.full((2, 3), 5.0)
    out = softmax_layer(h, p, op)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[2], (h[1] + h[3]) / 2)  # equal logits: plain mean of neighbours


def test_fogcn_averages_layers():
    fog = build_fog(Sessions.from_lists(TOY), num_nodes=5)
    op = FOGOperator(fog)
    e0 = torch.randn(5, 4)
    ps = [torch.zeros(4, 4), torch.zeros(4, 4)]
    h1 = normalized_layer(e0, ps[0], op)
    h2 = normalized_layer(h1, ps[1], op)
    assert torch.allclose(fogcn(e0, ps, op), (e0 + h1 + h2) / 3)
