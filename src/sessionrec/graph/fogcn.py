"""FOGCN propagation over a FOG (Sec. 3.2.2, Eq. 2–4) without E×d tensors of the whole graph.

Two importance-weight variants (`normalized`, the released code; `softmax`, the paper's Eq. 3)
and two back ends chosen per call (`backend="auto"`): the numba kernels of `fogcn_kernels` on
CPU in float32/float64, torch ops elsewhere.

Spec: docs/focol.md#fogcn-sec-322-eq-24
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from sessionrec.errors import ConfigError
from sessionrec.graph.fog import FOG

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def _csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> torch.Tensor:
    """A torch CSR matrix from COO triples (duplicates must already be summed)."""
    order = np.lexsort((cols, rows))
    crow = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=crow[1:])
    return torch.sparse_csr_tensor(
        torch.from_numpy(crow),
        torch.from_numpy(cols[order]),
        torch.from_numpy(vals[order].astype(np.float32)),
        size=shape,
        check_invariants=False,
    )


def _slot_columns(fog: FOG) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (slot, neighbour) columns, sorted by slot, and each entry's column index."""
    n = fog.num_nodes
    key = fog.entry_slot * n + fog.src[fog.entry_edge]
    if 2 * fog.max_distance * n > 1 << 28:  # too many cells for a dense mark: sort instead
        return np.unique(key, return_inverse=True)
    mark = np.zeros(2 * fog.max_distance * n, dtype=bool)
    mark[key] = True
    return np.flatnonzero(mark), (np.cumsum(mark) - 1)[key]


class FOGOperator:
    """One FOG prepared for both α variants and both back ends (moved to a device with `to`).

    Node i aggregates neighbour j with the vector of edge j→i (as the released code does).
    The numba kernels use the edges grouped by destination and by source, each by weight
    vector (`kernel_graph`); the torch path uses sparse matrices, built on first use. For the
    normalized variant their columns are (neighbour j, slot k) pairs: A[i, (j, k)] = w_ji[k],
    so Σ_k Q[k] ⊙ (A_k H)_i = (A @ (H[j] ⊙ Q[k]))_i with one CSR product per layer.
    """

    def __init__(self, fog: FOG) -> None:
        n, width = fog.num_nodes, 2 * fog.max_distance
        self.num_nodes, self.width = n, width
        self._fog = fog
        self._device: torch.device | str | None = None
        self._dtype: torch.dtype | None = None
        self._kernel_graph: Any = None
        self._torch_ready = False
        self._buffers: dict[tuple, np.ndarray] = {}
        self._chunks: dict[int, list[tuple[int, int, int, int]]] = {}
        self.col_node = torch.from_numpy(_slot_columns(fog)[0] % n)
        self.has_neighbours = torch.from_numpy(np.bincount(fog.dst, minlength=n) > 0)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> FOGOperator:
        """Move every tensor to `device`; `dtype` converts the floating ones (tests use float64)."""
        self._device = device if device is not None else self._device
        self._dtype = dtype if dtype is not None else self._dtype
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                value = value.to(device) if device is not None else value
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
                setattr(self, name, value)
        return self

    def kernel_graph(self) -> Any:
        """Edges grouped by destination and by source for the numba kernels (built once)."""
        if self._kernel_graph is None:
            fog = self._fog
            self._kernel_graph = _kernels().build_kernel_graph(
                fog.num_nodes,
                self.width,
                fog.src,
                fog.dst,
                fog.entry_edge,
                fog.entry_slot,
                fog.entry_count,
            )
        return self._kernel_graph

    def buffer(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A scratch array kept between calls (fresh large arrays page-fault slowly)."""
        full = (key, shape, np.dtype(dtype))
        if full not in self._buffers:
            self._buffers[full] = np.empty(shape, dtype)
        return self._buffers[full]

    def torch_parts(self) -> FOGOperator:
        """Build the sparse matrices of the torch path on first use (on the operator's device)."""
        if self._torch_ready:
            return self
        fog, n, width = self._fog, self.num_nodes, self.width
        dst, slot, count = fog.dst[fog.entry_edge], fog.entry_slot, fog.entry_count
        col_key, col = _slot_columns(fog)
        r = len(col_key)
        bounds = np.searchsorted(col_key // n, np.arange(width + 1))
        self.slot_blocks = [
            (k, int(bounds[k]), int(bounds[k + 1]))
            for k in range(width)
            if bounds[k + 1] > bounds[k]
        ]
        parts = {
            "adjacency": _csr(dst, col, count, (n, r)),  # A
            "adjacency_t": _csr(col, dst, count, (r, n)),  # Aᵀ, for gradients
            # Σ over a node's columns
            "node_sum": _csr(col_key % n, np.arange(r), np.ones(r, dtype=np.float32), (n, r)),
        }
        deg_key, deg_inv = np.unique(dst * width + slot, return_inverse=True)
        degree = np.bincount(deg_inv, weights=count).astype(np.float32)
        parts["degree"] = _csr(deg_key // width, deg_key % width, degree, (n, width))  # deg_k[i]
        parts["degree_t"] = _csr(deg_key % width, deg_key // width, degree, (width, n))
        # Edges sorted by destination with their weight vectors as CSR (softmax variant).
        e_order = np.argsort(fog.dst, kind="stable")
        rank = np.empty_like(e_order)
        rank[e_order] = np.arange(len(e_order))
        w_order = np.lexsort((fog.entry_slot, rank[fog.entry_edge]))
        w_crow = np.zeros(fog.num_edges + 1, dtype=np.int64)
        np.cumsum(np.bincount(rank[fog.entry_edge], minlength=fog.num_edges), out=w_crow[1:])
        parts["edge_src"] = torch.from_numpy(fog.src[e_order])
        parts["edge_dst"] = torch.from_numpy(fog.dst[e_order])
        parts["edge_crow"] = torch.from_numpy(w_crow)
        parts["edge_slot"] = torch.from_numpy(fog.entry_slot[w_order])
        parts["edge_count"] = torch.from_numpy(fog.entry_count[w_order])
        self._node_bounds = np.searchsorted(fog.dst[e_order], np.arange(n + 1))
        for name, value in parts.items():
            if self._dtype is not None and value.is_floating_point():
                value = value.to(self._dtype)
            setattr(self, name, value.to(self._device) if self._device is not None else value)
        self._torch_ready = True
        return self

    def softmax_chunks(self, chunk_edges: int) -> list[tuple[int, int, int, int]]:
        """(first edge, end edge, first node, end node) of destination chunks of ~chunk_edges."""
        if chunk_edges not in self._chunks:
            b = self.torch_parts()._node_bounds
            group = b[:-1] // chunk_edges
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            ends = np.r_[starts[1:], self.num_nodes]
            self._chunks[chunk_edges] = [
                (int(b[s]), int(b[e]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)
            ]
        return self._chunks[chunk_edges]


class _NormalizedLayer(torch.autograd.Function):
    """h_i = (A @ (H[j] ⊙ Q[k]))_i / (D Q)_i; backward uses Aᵀ, recomputing the gathers."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, q: torch.Tensor, op: FOGOperator) -> torch.Tensor:
        op.torch_parts()
        cols = torch.index_select(h, 0, op.col_node)
        for k, lo, hi in op.slot_blocks:  # H[j] ⊙ Q[k], in place, one slot block at a time
            cols[lo:hi].mul_(q[k])
        num = op.adjacency @ cols  # Σ_j s_ji ⊙ h_j
        del cols
        den = op.degree @ q  # Σ_j s_ji = Σ_k deg_k[i] Q[k]
        keep = op.has_neighbours[:, None]
        out = torch.where(keep, num / den.where(keep, 1.0), h)
        ctx.save_for_backward(h, q, den, out)
        ctx.op = op
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, q, den, out = ctx.saved_tensors
        op: FOGOperator = ctx.op.torch_parts()
        keep = op.has_neighbours[:, None]
        g_num = torch.where(keep, grad / den.where(keep, 1.0), 0.0)  # ∂out/∂num
        g_den = -g_num * out  # ∂out/∂den = −num/den² = −out/den
        g_cols = op.adjacency_t @ g_num  # gradient of each (neighbour, slot) column
        h_cols = torch.index_select(h, 0, op.col_node).mul_(g_cols)
        g_q = op.degree_t @ g_den
        for k, lo, hi in op.slot_blocks:
            g_q[k] += h_cols[lo:hi].sum(0)
            g_cols[lo:hi].mul_(q[k])
        del h_cols
        g_h = op.node_sum @ g_cols + torch.where(keep, 0.0, grad)
        return g_h, g_q, None


def _softmax_chunk(
    h: torch.Tensor, p: torch.Tensor, op: FOGOperator, e0: int, e1: int, n0: int, n1: int
) -> torch.Tensor:
    """Aggregate for destination nodes n0..n1-1, whose incoming edges are e0..e1-1."""
    crow = op.edge_crow[e0 : e1 + 1]
    lo, hi = int(crow[0]), int(crow[-1])
    w = torch.sparse_csr_tensor(
        crow - lo,
        op.edge_slot[lo:hi],
        op.edge_count[lo:hi],
        size=(e1 - e0, p.shape[0]),
        check_invariants=False,
    )
    logits = w @ p  # P w_ji for each edge (e, d)
    dst = op.edge_dst[e0:e1] - n0
    n, d = n1 - n0, h.shape[1]
    with torch.no_grad():  # a shift per node and feature; softmax does not depend on it
        top = torch.full((n, d), -torch.inf, dtype=h.dtype, device=h.device)
        top = top.scatter_reduce(0, dst[:, None].expand(-1, d), logits, "amax")
    ex = torch.exp(logits - top[dst])
    den = torch.zeros(n, d, dtype=h.dtype, device=h.device).index_add(0, dst, ex)
    num = torch.zeros(n, d, dtype=h.dtype, device=h.device).index_add(
        0, dst, ex * h[op.edge_src[e0:e1]]
    )
    keep = op.has_neighbours[n0:n1, None]
    return torch.where(keep, num / den.where(keep, 1.0), h[n0:n1])


def _softmax_torch(
    h: torch.Tensor, p: torch.Tensor, op: FOGOperator, chunk_edges: int
) -> torch.Tensor:
    """The softmax layer in checkpointed destination chunks (torch ops only)."""
    parts = []
    for e0, e1, n0, n1 in op.softmax_chunks(chunk_edges):
        args = (h, p, op, e0, e1, n0, n1)
        parts.append(
            checkpoint(_softmax_chunk, *args, use_reentrant=False)
            if torch.is_grad_enabled()
            else _softmax_chunk(*args)
        )
    return torch.cat(parts)


# --- numba back end ---------------------------------------------------------------------------

_KERNELS: Any = None


def _kernels() -> Any:
    """The numba kernel module, imported on first use; None when numba is not installed."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from sessionrec.graph import fogcn_kernels
        except ImportError:
            _KERNELS = False
        else:
            _KERNELS = fogcn_kernels
    return _KERNELS or None


def numba_available() -> bool:
    return _kernels() is not None


def _numba_threads() -> contextlib.AbstractContextManager[int]:
    from sessionrec.graph.kernel_tools import numba_threads  # numba is imported on first use

    return numba_threads()


def _array(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return t.detach().to(dtype).contiguous().numpy()


# Backward gradient blocks (fixed node ranges, each with its own accumulator, summed in order):
# results are then identical for any thread count up to the block count.
_NORMALIZED_BLOCKS = 32  # accumulators are 2L×d
_SOFTMAX_BLOCKS = 4  # accumulators are N×d: few, but enough to balance two threads


def _counter() -> np.ndarray:
    return np.zeros(1, dtype=np.int64)  # the kernels' shared chunk counter


def _save_for_backward(
    ctx: Any, h: torch.Tensor, q: torch.Tensor, op: FOGOperator, out: np.ndarray, stat: np.ndarray
) -> torch.Tensor:
    """Keep the inputs, the output and its per-node statistic for backward; return the output."""
    out_t = torch.from_numpy(out)
    ctx.save_for_backward(h, q, out_t, torch.from_numpy(stat))
    ctx.op = op
    return out_t


def _saved_arrays(
    ctx: Any, grad: torch.Tensor
) -> tuple[torch.Tensor, FOGOperator, tuple[np.ndarray, ...]]:
    """What `_save_for_backward` kept: the second input, the operator, and as arrays the two
    inputs, the gradient, the output and its statistic."""
    h, q, out, stat = ctx.saved_tensors
    arrays = (
        _array(h, h.dtype),
        _array(q, h.dtype),
        _array(grad, h.dtype),
        out.numpy(),
        stat.numpy(),
    )
    return q, ctx.op, arrays


class _NumbaNormalized(torch.autograd.Function):
    """The normalized layer as two fused kernels; backward recomputes s_g per edge group."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, q: torch.Tensor, op: FOGOperator) -> torch.Tensor:
        hn, qn = _array(h, h.dtype), _array(q, h.dtype)
        out, den = np.empty_like(hn), np.empty_like(hn)
        groups = op.kernel_graph().incoming.arrays()
        with _numba_threads() as threads:
            scratch = np.empty((threads, hn.shape[1]), hn.dtype)
            _kernels().normalized_forward(hn, qn, groups, _counter(), scratch, out, den)
        return _save_for_backward(ctx, h, q, op, out, den)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, op, (hn, qn, gn, out, den) = _saved_arrays(ctx, grad)
        graph = op.kernel_graph()
        g_h = np.empty_like(hn)
        with _numba_threads() as threads:
            gq_buf = op.buffer("grad_q", (max(_NORMALIZED_BLOCKS, threads), *qn.shape), hn.dtype)
            _kernels().normalized_backward(
                hn,
                qn,
                gn,
                out,
                den,
                graph.degrees(),
                graph.outgoing.arrays(),
                _counter(),
                threads,
                np.divide(gn, den, out=op.buffer("grad_num", hn.shape, hn.dtype)),
                g_h,
                gq_buf,
                ctx.needs_input_grad[1],
            )
        g_q = torch.from_numpy(gq_buf.sum(0)).to(q.dtype) if ctx.needs_input_grad[1] else None
        return torch.from_numpy(g_h), g_q, None


class _NumbaSoftmax(torch.autograd.Function):
    """The softmax layer as two fused kernels; backward recomputes α_g from the saved lse."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, p: torch.Tensor, op: FOGOperator) -> torch.Tensor:
        hn, pn = _array(h, h.dtype), _array(p, h.dtype)
        out, lse = np.empty_like(hn), np.empty_like(hn)
        incoming = op.kernel_graph().incoming
        with _numba_threads() as threads:
            shape = (threads, max(incoming.max_groups, 1), hn.shape[1])
            _kernels().softmax_forward(
                hn,
                pn,
                incoming.arrays(),
                _counter(),
                op.buffer("logits", shape, hn.dtype),
                hn.dtype == np.float32,
                out,
                lse,
            )
        return _save_for_backward(ctx, h, p, op, out, lse)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        p, op, (hn, pn, gn, out, lse) = _saved_arrays(ctx, grad)
        g_h = np.empty_like(hn)
        with _numba_threads() as threads:
            blocks = max(_SOFTMAX_BLOCKS, threads)
            gh_buf = op.buffer("grad_h", (blocks, *hn.shape), hn.dtype)
            gp_buf = op.buffer("grad_q", (blocks, *pn.shape), hn.dtype)
            _kernels().softmax_backward(
                hn,
                pn,
                gn,
                out,
                lse,
                op.kernel_graph().incoming.arrays(),
                _counter(),
                threads,
                hn.dtype == np.float32,
                gh_buf,
                gp_buf,
                ctx.needs_input_grad[1],
            )
        np.sum(gh_buf, axis=0, out=g_h)
        g_p = torch.from_numpy(gp_buf.sum(0)).to(p.dtype) if ctx.needs_input_grad[1] else None
        return torch.from_numpy(g_h), g_p, None


BACKENDS = ("auto", "numba", "torch")


def _use_numba(h: torch.Tensor, backend: str) -> bool:
    """numba for float32/float64 CPU tensors when installed ("auto"); torch otherwise."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown FOGCN backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return False
    fits = h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64)
    if backend == "numba" and not (fits and numba_available()):
        raise ConfigError("the numba FOGCN backend needs numba and float32/float64 CPU tensors")
    return fits and numba_available()


class _SlotSoftmax(torch.autograd.Function):
    """softmax over dim 0 in NumPy, which runs one thread: the same bits at any thread count.

    torch's CPU softmax kernels split rows or columns between threads, and a split that cuts a
    SIMD vector sends its tail to scalar code that rounds differently (forward and backward
    differ by 1-2 ulp between 1 and 2 threads, on AVX2 and AVX-512 alike). P is only 2L × d.
    """

    @staticmethod
    def forward(ctx, p: torch.Tensor) -> torch.Tensor:
        x = _array(p, p.dtype)
        e = np.exp(x - x.max(axis=0))
        q = torch.from_numpy(e / e.sum(axis=0))
        ctx.save_for_backward(q)
        return q

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (q,) = ctx.saved_tensors
        qn, gn = q.numpy(), _array(grad, q.dtype)
        return torch.from_numpy(qn * (gn - (gn * qn).sum(axis=0)))


def slot_softmax(p: torch.Tensor) -> torch.Tensor:
    """softmax(p, dim=0), bit-identical for any CPU thread count (torch's is not)."""
    if p.device.type != "cpu":
        return torch.softmax(p, dim=0)
    return _SlotSoftmax.apply(p)


# --- layers ---------------------------------------------------------------------------------


def normalized_layer(
    h: torch.Tensor, p: torch.Tensor, op: FOGOperator, backend: str = "auto"
) -> torch.Tensor:
    """One FOGCN layer as in the released code; `p` is (2L, d), softmax over slots per feature."""
    layer = _NumbaNormalized if _use_numba(h, backend) else _NormalizedLayer
    return layer.apply(h, slot_softmax(p), op)


def softmax_layer(
    h: torch.Tensor,
    p: torch.Tensor,
    op: FOGOperator,
    chunk_edges: int = 262_144,
    backend: str = "auto",
) -> torch.Tensor:
    """One FOGCN layer as the paper writes it (Eq. 2–3); torch path in destination chunks."""
    if _use_numba(h, backend):
        return _NumbaSoftmax.apply(h, p, op)
    return _softmax_torch(h, p, op, chunk_edges)


def fogcn(
    e0: torch.Tensor,
    importance: list[torch.Tensor],
    op: FOGOperator,
    alpha: str = "normalized",
    backend: str = "auto",
) -> torch.Tensor:
    """E^g = mean(E^(0), ..., E^(L_G)) with one importance matrix per layer (Eq. 4)."""
    layer = normalized_layer if alpha == "normalized" else softmax_layer
    h, total = e0, e0
    for p in importance:
        h = layer(h, p, op, backend=backend)
        total = total + h
    return total / (len(importance) + 1)
