"""FOGCN propagation over a FOG (Sec. 3.2.2, Eq. 2–4) without E×d tensors of the whole graph.

Two importance-weight variants:
- `normalized` (the authors' released code): Q = softmax over the 2L slots of P (per feature),
  s_ji = Σ_k w_ji[k] Q[k], h_i = Σ_j s_ji ⊙ h_j / Σ_j s_ji. Linear in the counts, so the
  per-feature scaling moves onto the inputs: num = A @ (H[j] ⊙ Q[k]) over (neighbour, slot)
  columns and den = D Q; two CSR products per layer, with a hand-written backward that keeps
  no E×d or (node, slot)×d activations.
- `softmax` (the paper's Eq. 3): α_ij = softmax over the neighbours j of i of P w_ji, per
  feature, with the per-node maximum subtracted so raw counts never overflow. Computed in
  chunks of destination nodes under activation checkpointing, so memory stays bounded.
A node without neighbours keeps its previous embedding.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

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


class FOGOperator:
    """Sparse matrices of one FOG for both α variants (built once, moved to a device).

    Node i aggregates neighbour j with the vector of edge j→i (as the released code does).
    For the normalized variant the columns are (neighbour j, slot k) pairs: A[i, (j, k)] =
    w_ji[k], so Σ_k Q[k] ⊙ (A_k H)_i = (A @ (H[j] ⊙ Q[k]))_i with one CSR product per layer.
    """

    def __init__(self, fog: FOG) -> None:
        n, width = fog.num_nodes, 2 * fog.max_distance
        self.num_nodes, self.width = n, width
        dst, src = fog.dst[fog.entry_edge], fog.src[fog.entry_edge]
        slot, count = fog.entry_slot, fog.entry_count
        # Columns sorted by slot, so each slot's columns form one contiguous block.
        col_key, col = np.unique(slot * n + src, return_inverse=True)
        r = len(col_key)
        self.col_node = torch.from_numpy(col_key % n)
        self.col_slot = torch.from_numpy(col_key // n)
        bounds = np.searchsorted(col_key // n, np.arange(width + 1))
        self.slot_blocks = [
            (k, int(bounds[k]), int(bounds[k + 1]))
            for k in range(width)
            if bounds[k + 1] > bounds[k]
        ]
        self.adjacency = _csr(dst, col, count, (n, r))  # A
        self.adjacency_t = _csr(col, dst, count, (r, n))  # Aᵀ, for gradients
        ones = np.ones(r, dtype=np.float32)
        self.node_sum = _csr(col_key % n, np.arange(r), ones, (n, r))  # Σ over a node's columns
        deg_key, deg_inv = np.unique(dst * width + slot, return_inverse=True)
        degree = np.bincount(deg_inv, weights=count).astype(np.float32)
        self.degree = _csr(deg_key // width, deg_key % width, degree, (n, width))  # deg_k[i]
        self.degree_t = _csr(deg_key % width, deg_key // width, degree, (width, n))
        self.has_neighbours = torch.from_numpy(np.bincount(fog.dst, minlength=n) > 0)
        # Edges sorted by destination with their weight vectors as CSR (softmax variant).
        e_order = np.argsort(fog.dst, kind="stable")
        rank = np.empty_like(e_order)
        rank[e_order] = np.arange(len(e_order))
        w_order = np.lexsort((fog.entry_slot, rank[fog.entry_edge]))
        w_crow = np.zeros(fog.num_edges + 1, dtype=np.int64)
        np.cumsum(np.bincount(rank[fog.entry_edge], minlength=fog.num_edges), out=w_crow[1:])
        self.edge_src = torch.from_numpy(fog.src[e_order])
        self.edge_dst = torch.from_numpy(fog.dst[e_order])
        self.edge_crow = torch.from_numpy(w_crow)
        self.edge_slot = torch.from_numpy(fog.entry_slot[w_order])
        self.edge_count = torch.from_numpy(fog.entry_count[w_order])
        self._node_bounds = np.searchsorted(fog.dst[e_order], np.arange(n + 1))
        self._chunks: dict[int, list[tuple[int, int, int, int]]] = {}

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> FOGOperator:
        """Move every tensor to `device`; `dtype` converts the floating ones (tests use float64)."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                value = value.to(device) if device is not None else value
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
                setattr(self, name, value)
        return self

    def softmax_chunks(self, chunk_edges: int) -> list[tuple[int, int, int, int]]:
        """(first edge, end edge, first node, end node) of destination chunks of ~chunk_edges."""
        if chunk_edges not in self._chunks:
            b = self._node_bounds
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
        op: FOGOperator = ctx.op
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


def normalized_layer(h: torch.Tensor, p: torch.Tensor, op: FOGOperator) -> torch.Tensor:
    """One FOGCN layer as in the released code; `p` is (2L, d), softmax over slots per feature."""
    return _NormalizedLayer.apply(h, torch.softmax(p, dim=0), op)


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


def softmax_layer(
    h: torch.Tensor, p: torch.Tensor, op: FOGOperator, chunk_edges: int = 262_144
) -> torch.Tensor:
    """One FOGCN layer as the paper writes it (Eq. 2–3), in checkpointed destination chunks."""
    parts = []
    for e0, e1, n0, n1 in op.softmax_chunks(chunk_edges):
        args = (h, p, op, e0, e1, n0, n1)
        parts.append(
            checkpoint(_softmax_chunk, *args, use_reentrant=False)
            if torch.is_grad_enabled()
            else _softmax_chunk(*args)
        )
    return torch.cat(parts)


def fogcn(
    e0: torch.Tensor, importance: list[torch.Tensor], op: FOGOperator, alpha: str = "normalized"
) -> torch.Tensor:
    """E^g = mean(E^(0), ..., E^(L_G)) with one importance matrix per layer (Eq. 4)."""
    layer = normalized_layer if alpha == "normalized" else softmax_layer
    h, total = e0, e0
    for p in importance:
        h = layer(h, p, op)
        total = total + h
    return total / (len(importance) + 1)
