"""The fused numba FOGCN kernels against the torch path and a dense per-edge reference."""

import numpy as np
import pytest
import torch

from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.graph import fogcn as fogcn_module
from sessionrec.graph.fog import FOG, build_fog
from sessionrec.graph.fogcn import (
    FOGOperator,
    fogcn,
    normalized_layer,
    numba_available,
    softmax_layer,
)

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")

LAYERS = {"normalized": normalized_layer, "softmax": softmax_layer}


def _random_fog(num_nodes: int, num_sessions: int, seed: int, max_len: int = 7) -> FOG:
    rng = np.random.default_rng(seed)
    seqs = [
        rng.integers(1, num_nodes - 2, rng.integers(2, max_len)).tolist()
        for _ in range(num_sessions)
    ]
    return build_fog(Sessions.from_lists(seqs), num_nodes=num_nodes)  # the last two: isolated


def _dense_reference(h, p, fog, alpha):
    """Every destination at once from dense E×2L weight vectors (independent of both paths)."""
    w = torch.from_numpy(fog.weight_vectors()).to(h.dtype)
    src, dst = torch.from_numpy(fog.src), torch.from_numpy(fog.dst)
    n, d = h.shape
    if alpha == "normalized":
        s = w @ torch.softmax(p, 0)
        num = torch.zeros(n, d, dtype=h.dtype).index_add(0, dst, s * h[src])
        den = torch.zeros(n, d, dtype=h.dtype).index_add(0, dst, s)
    else:
        z = w @ p
        top = torch.full((n, d), -torch.inf, dtype=h.dtype)
        top = top.scatter_reduce(0, dst[:, None].expand(-1, d), z, "amax")
        ex = torch.exp(z - top[dst])
        num = torch.zeros(n, d, dtype=h.dtype).index_add(0, dst, ex * h[src])
        den = torch.zeros(n, d, dtype=h.dtype).index_add(0, dst, ex)
    keep = torch.bincount(dst, minlength=n)[:, None] > 0
    return torch.where(keep, num / den.where(keep, 1.0), h)


def _inputs(fog, d, dtype, seed=0, scale=1.0):
    torch.manual_seed(seed)
    h = torch.randn(fog.num_nodes, d, dtype=dtype, requires_grad=True)
    p = (scale * torch.randn(2 * fog.max_distance, d, dtype=dtype)).requires_grad_()
    return h, p


@pytest.mark.parametrize("alpha", ["normalized", "softmax"])
def test_gradcheck_float64(alpha):
    fog = _random_fog(14, 30, seed=0)
    op = FOGOperator(fog)
    h, p = _inputs(fog, 5, torch.float64)
    layer = LAYERS[alpha]
    got = layer(h, p, op, backend="numba")
    assert torch.allclose(got, _dense_reference(h, p, fog, alpha), atol=1e-12)
    assert torch.equal(got[12], h[12]) and torch.equal(got[13], h[13])  # isolated nodes
    assert torch.autograd.gradcheck(lambda a, b: layer(a, b, op, backend="numba"), (h, p))


@pytest.mark.parametrize("alpha", ["normalized", "softmax"])
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_matches_torch_path_and_reference(alpha, threads):
    fog = _random_fog(300, 600, seed=1, max_len=12)
    op = FOGOperator(fog)
    groups = op.kernel_graph().incoming
    assert groups.group_mult.max() > 1 and len(groups.chunk_ptr) > 8  # shared vectors, chunks
    h, p = _inputs(fog, 37, torch.float32, seed=1, scale=2.0)  # odd d: vector remainders
    layer = LAYERS[alpha]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = layer(h, p, op, backend="numba")
        g_got = torch.autograd.grad((got * got.detach().cos()).sum(), (h, p))
    finally:
        torch.set_num_threads(before)
    want = layer(h, p, op, backend="torch")
    g_want = torch.autograd.grad((want * want.detach().cos()).sum(), (h, p))
    h64, p64 = h.detach().double(), p.detach().double()
    assert torch.allclose(got.double(), _dense_reference(h64, p64, fog, alpha), atol=2e-5)
    assert torch.allclose(got, want, atol=2e-5)
    for a, b in zip(g_got, g_want, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("alpha", ["normalized", "softmax"])
def test_three_layers_and_frozen_importance(alpha):
    """fogcn() through the numba path equals the torch path, also when P needs no gradient."""
    fog = _random_fog(40, 80, seed=2)
    op = FOGOperator(fog).to(dtype=torch.float64)  # the torch path needs float64 matrices
    torch.manual_seed(3)
    e0 = torch.randn(fog.num_nodes, 8, dtype=torch.float64, requires_grad=True)
    ps = [torch.randn(2 * fog.max_distance, 8, dtype=torch.float64) for _ in range(3)]
    ps[1].requires_grad_()
    grads = []
    for backend in ("numba", "torch"):
        out = fogcn(e0, ps, op, alpha, backend=backend)
        grads.append((out, *torch.autograd.grad(out.square().sum(), (e0, ps[1]))))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("alpha", ["normalized", "softmax"])
@pytest.mark.parametrize("d", [12, 16, 100])
def test_bit_for_bit_reproducible_across_runs_and_thread_counts(alpha, d):
    """Two FOGCN layers, forward and both gradients, identical at 1, 2 and 4 threads.

    Resuming on a machine with another core count needs this. The widths cut SIMD vectors
    of 8 (AVX2) and 16 (AVX-512) floats differently when torch splits work between threads.
    """
    fog = _random_fog(300, 600, seed=7, max_len=12)
    op = FOGOperator(fog)
    h, p = _inputs(fog, d, torch.float32, seed=7)
    p2 = (p.detach() * 0.5).flip(0).requires_grad_()
    before, results = torch.get_num_threads(), []
    try:
        for threads in (2, 2, 1, 4):
            torch.set_num_threads(threads)
            out = fogcn(h, [p, p2], op, alpha=alpha, backend="numba")
            grads = torch.autograd.grad((out * out.detach().sin()).sum(), (h, p, p2))
            results.append((out, *grads))
    finally:
        torch.set_num_threads(before)
    for threads, other in zip((2, 1, 4), results[1:], strict=True):
        for name, a, b in zip(("E^g", "dH", "dP1", "dP2"), results[0], other, strict=True):
            gap = (a - b).abs().max()
            assert torch.equal(a, b), f"{name} at {threads} threads differs by {gap}"


def test_softmax_stays_finite_with_counts_of_ten_thousand():
    fog = _random_fog(30, 60, seed=4)
    fog.entry_count[: len(fog.entry_count) // 2] = 1e4
    op = FOGOperator(fog)
    h, p = _inputs(fog, 16, torch.float32, seed=4, scale=5.0)  # logits up to ~1e5
    out = softmax_layer(h, p, op, backend="numba")
    gh, gp = torch.autograd.grad(out.sum(), (h, p))
    assert torch.isfinite(out).all() and torch.isfinite(gh).all() and torch.isfinite(gp).all()
    want = _dense_reference(h.detach().double(), p.detach().double(), fog, "softmax")
    assert torch.allclose(out.double(), want, atol=1e-5)


def test_polynomial_exp_is_accurate():
    from sessionrec.graph.fogcn_kernels import _exp_shifted

    x = np.linspace(-87.0, 0.0, 10_001, dtype=np.float32)
    out, bits = np.empty_like(x), np.empty(len(x), np.int32)
    _exp_shifted(x, np.zeros_like(x), out, bits, bits.view(np.float32), True)
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(out - ref) / ref) < 5e-7


def test_groups_partition_the_edges_by_weight_vector():
    fog = _random_fog(50, 120, seed=5)
    graph = FOGOperator(fog).kernel_graph()
    vectors = fog.weight_vectors()
    edge_of = {(int(s), int(d)): e for e, (s, d) in enumerate(zip(fog.src, fog.dst, strict=True))}
    for groups, incoming in ((graph.incoming, True), (graph.outgoing, False)):
        seen = set()
        for node in range(fog.num_nodes):
            for g in range(groups.node_ptr[node], groups.node_ptr[node + 1]):
                vec = np.zeros(2 * fog.max_distance, np.float32)
                lo, hi = groups.vec_ptr[g], groups.vec_ptr[g + 1]
                vec[groups.vec_slot[lo:hi]] = groups.vec_count[lo:hi]
                members = groups.member[groups.group_ptr[g] : groups.group_ptr[g + 1]]
                assert groups.group_mult[g] == len(members) > 0
                for other in members:
                    key = (int(other), node) if incoming else (node, int(other))
                    assert np.array_equal(vectors[edge_of[key]], vec)
                    seen.add(key)
        assert seen == set(edge_of)
    degree = np.zeros((fog.num_nodes, 2 * fog.max_distance), np.float32)
    np.add.at(degree, fog.dst, vectors)
    for node in range(fog.num_nodes):
        lo, hi = graph.deg_ptr[node], graph.deg_ptr[node + 1]
        row = np.zeros(2 * fog.max_distance, np.float32)
        row[graph.deg_slot[lo:hi]] = graph.deg_count[lo:hi]
        assert np.array_equal(row, degree[node])


def test_backend_selection(monkeypatch):
    fog = _random_fog(14, 30, seed=6)
    op = FOGOperator(fog)
    h, p = _inputs(fog, 4, torch.float32)
    with pytest.raises(ConfigError, match="unknown FOGCN backend"):
        normalized_layer(h, p, op, backend="cuda-magic")
    with pytest.raises(ConfigError, match="numba"):
        normalized_layer(h.bfloat16(), p.bfloat16(), op, backend="numba")
    assert not fogcn_module._use_numba(h.bfloat16(), "auto")  # other dtypes: the torch path
    numba_out = normalized_layer(h, p, op)
    assert numba_out.grad_fn.name().startswith("_NumbaNormalized")
    monkeypatch.setattr(fogcn_module, "_KERNELS", False)  # as if numba were not installed
    torch_out = normalized_layer(h, p, op)
    assert torch_out.grad_fn.name().startswith("_NormalizedLayer")
    assert torch.allclose(numba_out, torch_out, atol=1e-6)
