"""Fused numba kernels for FOGCN on CPU: both α variants, forward and hand-written backward.

Edges j→i are grouped by destination and identical weight vector; a group's weights are
computed once, on the fly, never stored as E×d, and the backward recomputes them.

Spec: docs/focol.md#fogcn-sec-322-eq-24 (CPU kernels)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from sessionrec.graph.kernel_tools import PREFETCH_AHEAD as _PREFETCH_AHEAD
from sessionrec.graph.kernel_tools import next_task as _next_task
from sessionrec.graph.kernel_tools import prefetch_read as _prefetch_read
from sessionrec.graph.kernel_tools import prefetch_write as _prefetch_write

# No nnan/ninf: isolated rows and clamped logits must keep IEEE semantics.
_FM = {"nsz", "arcp", "contract", "reassoc"}

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_LOWEST = np.float32(-87.0)  # exp(-87) ≈ 1.6e-38: still a normal float32
_EXP_C = (
    np.float32(1.9875691500e-4),
    np.float32(1.3981999507e-3),
    np.float32(8.3334519073e-3),
    np.float32(4.1665795894e-2),
    np.float32(1.6666665459e-1),
    np.float32(5.0000001201e-1),
)
_C0, _C1, _C2, _C3, _C4, _C5 = _EXP_C
_HALF, _ONE, _BIAS, _MANT = np.float32(0.5), np.float32(1.0), np.float32(127.0), np.float32(2**23)


@dataclass(frozen=True)
class EdgeGroups:
    """Node-major CSR of edge groups; the edges of a group share one weight vector."""

    node_ptr: np.ndarray  # (N+1,) int64: groups of node i
    group_ptr: np.ndarray  # (G+1,) int64: members of group g
    group_mult: np.ndarray  # (G,) float32: number of members
    vec_ptr: np.ndarray  # (G+1,) int64: the group's non-zero slots
    vec_slot: np.ndarray  # (nnz_g,) int32
    vec_count: np.ndarray  # (nnz_g,) float32
    member: np.ndarray  # (E,) int32: the other end of each edge, in group order
    chunk_ptr: np.ndarray  # node ranges of about equal work, handed out to workers

    @property
    def max_groups(self) -> int:
        return int(np.diff(self.node_ptr).max(initial=0))

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The kernels' `groups` argument."""
        return (
            self.node_ptr,
            self.group_ptr,
            self.group_mult,
            self.vec_ptr,
            self.vec_slot,
            self.vec_count,
            self.member,
            self.chunk_ptr,
        )


@dataclass(frozen=True)
class KernelGraph:
    """A FOG for the kernels: edge j→i grouped by destination i (members j) and by source j
    (members i), plus each node's per-slot in-degree Σ_j w_ji (the normalized denominator)."""

    incoming: EdgeGroups
    outgoing: EdgeGroups
    deg_ptr: np.ndarray  # (N+1,) int64
    deg_slot: np.ndarray  # int32
    deg_count: np.ndarray  # float32
    has_in: np.ndarray  # (N,) bool: node has incoming edges

    @property
    def num_nodes(self) -> int:
        return len(self.deg_ptr) - 1

    def degrees(self) -> tuple[np.ndarray, ...]:
        """The normalized backward's `degrees` argument."""
        return (self.has_in, self.deg_ptr, self.deg_slot, self.deg_count)


@njit(cache=True)
def _edge_hashes(edge_ptr, slot, count_bits):  # pragma: no cover - compiled
    """A 64-bit FNV-1a hash of each edge's (slot, count) list."""
    num = len(edge_ptr) - 1
    out = np.empty(num, np.uint64)
    prime = np.uint64(1099511628211)
    for e in range(num):
        h = np.uint64(1469598103934665603)
        for t in range(edge_ptr[e], edge_ptr[e + 1]):
            h = (h ^ np.uint64(slot[t])) * prime
            h = (h ^ np.uint64(count_bits[t])) * prime
        out[e] = h
    return out


@njit(cache=True)
def _same_vector(a, b, edge_ptr, slot, count):  # pragma: no cover - compiled
    a0, a1, b0 = edge_ptr[a], edge_ptr[a + 1], edge_ptr[b]
    if a1 - a0 != edge_ptr[b + 1] - b0:
        return False
    for t in range(a1 - a0):
        if slot[a0 + t] != slot[b0 + t] or count[a0 + t] != count[b0 + t]:
            return False
    return True


@njit(cache=True)
def _build_groups(n, src, dst, edge_ptr, slot, count, hashes):  # pragma: no cover - compiled
    """Edges by destination, then by hash; runs of equal weight vectors become groups."""
    num = len(src)
    node_edge = np.zeros(n + 1, np.int64)
    for e in range(num):
        node_edge[dst[e] + 1] += 1
    node_edge = np.cumsum(node_edge)
    fill = node_edge[:-1].copy()
    order = np.empty(num, np.int64)
    for e in range(num):
        order[fill[dst[e]]] = e
        fill[dst[e]] += 1
    for i in range(n):
        seg = order[node_edge[i] : node_edge[i + 1]]
        if len(seg) > 1:
            seg[:] = seg[np.argsort(hashes[seg], kind="mergesort")]
    first = np.zeros(num, np.bool_)  # does edge order[t] start a group?
    for i in range(n):
        for t in range(node_edge[i], node_edge[i + 1]):
            first[t] = (
                t == node_edge[i]
                or hashes[order[t]] != hashes[order[t - 1]]
                or not _same_vector(order[t - 1], order[t], edge_ptr, slot, count)
            )
    groups = np.flatnonzero(first)
    num_groups = len(groups)
    node_ptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        node_ptr[i + 1] = node_ptr[i]
        for t in range(node_edge[i], node_edge[i + 1]):
            if first[t]:
                node_ptr[i + 1] += 1
    group_ptr = np.empty(num_groups + 1, np.int64)
    group_ptr[:-1] = groups
    group_ptr[-1] = num
    vec_ptr = np.zeros(num_groups + 1, np.int64)
    for g in range(num_groups):
        e = order[groups[g]]
        vec_ptr[g + 1] = vec_ptr[g] + edge_ptr[e + 1] - edge_ptr[e]
    vec_slot = np.empty(vec_ptr[-1], np.int32)
    vec_count = np.empty(vec_ptr[-1], np.float32)
    mult = np.empty(num_groups, np.float32)
    for g in range(num_groups):
        e = order[groups[g]]
        for t in range(edge_ptr[e + 1] - edge_ptr[e]):
            vec_slot[vec_ptr[g] + t] = slot[edge_ptr[e] + t]
            vec_count[vec_ptr[g] + t] = count[edge_ptr[e] + t]
        mult[g] = group_ptr[g + 1] - group_ptr[g]
    member = np.empty(num, np.int32)
    for t in range(num):
        member[t] = src[order[t]]
    return node_ptr, group_ptr, mult, vec_ptr, vec_slot, vec_count, member


@njit(cache=True)
def _in_degrees(node_ptr, group_mult, vec_ptr, vec_slot, vec_count, width):  # pragma: no cover
    """Per node, the non-zero Σ_j w_ji[k] over its incoming edges, as CSR (slot, count)."""
    n = len(node_ptr) - 1
    dense = np.zeros(width, np.float64)
    ptr = np.zeros(n + 1, np.int64)
    slots = np.empty(len(vec_slot), np.int32)
    counts = np.empty(len(vec_slot), np.float32)
    for i in range(n):
        for g in range(node_ptr[i], node_ptr[i + 1]):
            for v in range(vec_ptr[g], vec_ptr[g + 1]):
                dense[vec_slot[v]] += vec_count[v] * group_mult[g]
        ptr[i + 1] = ptr[i]
        for k in range(width):
            if dense[k] != 0.0:
                slots[ptr[i + 1]] = k
                counts[ptr[i + 1]] = dense[k]
                ptr[i + 1] += 1
                dense[k] = 0.0
    return ptr, slots[: ptr[n]].copy(), counts[: ptr[n]].copy()


def _chunks(node_ptr: np.ndarray, group_ptr: np.ndarray, target: int = 512) -> np.ndarray:
    """Split nodes into about `target` contiguous ranges of similar work (members + groups)."""
    n = len(node_ptr) - 1
    cost = np.diff(group_ptr[node_ptr]) + 4 * np.diff(node_ptr) + 8
    total = np.concatenate([[0], np.cumsum(cost)])
    cuts = np.searchsorted(total, np.linspace(0, total[-1], min(target, n) + 1))
    return np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]])).astype(np.int64)


def build_kernel_graph(
    num_nodes: int,
    width: int,
    src: np.ndarray,
    dst: np.ndarray,
    entry_edge: np.ndarray,
    entry_slot: np.ndarray,
    entry_count: np.ndarray,
) -> KernelGraph:
    """Group a FOG's edges by (destination, weight vector) and by (source, weight vector)."""
    edge, slot = np.asarray(entry_edge, np.int64), np.asarray(entry_slot, np.int64)
    count = np.ascontiguousarray(entry_count, np.float32)
    later = (edge[1:] > edge[:-1]) | ((edge[1:] == edge[:-1]) & (slot[1:] > slot[:-1]))
    if not later.all():
        order = np.lexsort((slot, edge))
        edge, slot, count = edge[order], slot[order], count[order]
    edge_ptr = np.zeros(len(src) + 1, np.int64)
    np.cumsum(np.bincount(edge, minlength=len(src)), out=edge_ptr[1:])
    slot32 = slot.astype(np.int32)
    hashes = _edge_hashes(edge_ptr, slot32, count.view(np.uint32))
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    incoming = _build_groups(num_nodes, src, dst, edge_ptr, slot32, count, hashes)
    outgoing = _build_groups(num_nodes, dst, src, edge_ptr, slot32, count, hashes)
    groups = [
        EdgeGroups(*parts, chunk_ptr=_chunks(parts[0], parts[1])) for parts in (incoming, outgoing)
    ]
    inc = groups[0]
    deg = _in_degrees(inc.node_ptr, inc.group_mult, inc.vec_ptr, inc.vec_slot, inc.vec_count, width)
    return KernelGraph(*groups, *deg, has_in=np.diff(inc.node_ptr) > 0)


# --- exp ----------------------------------------------------------------------------------


@njit(inline="always", fastmath=_FM)
def _exp_shifted(x, shift, out, bits, two_n, fast):  # pragma: no cover - compiled
    """out = exp(x - shift) for x ≤ shift; a polynomial exp (Cephes expf) when `fast`."""
    d = len(x)
    if fast:
        for f in range(d):
            v = max(x[f] - shift[f], _LOWEST)
            n = np.floor(v * _LOG2E + _HALF)
            r = v - n * _LN2_HI - n * _LN2_LO
            p = (((((_C0 * r + _C1) * r + _C2) * r + _C3) * r + _C4) * r + _C5) * (r * r)
            out[f] = p + r + _ONE
            bits[f] = np.int32((n + _BIAS) * _MANT)  # 2^n as float32 bits
        for f in range(d):
            out[f] *= two_n[f]
    else:
        for f in range(d):
            out[f] = np.exp(x[f] - shift[f])


@njit(inline="always", fastmath=_FM)
def _group_vector(table, g, vec_ptr, vec_slot, vec_count, out):  # pragma: no cover - compiled
    """out = Σ_k w_g[k] table[k] over the group's non-zero slots."""
    v0 = vec_ptr[g]
    k, c = vec_slot[v0], vec_count[v0]
    for f in range(out.shape[0]):
        out[f] = c * table[k, f]
    for v in range(v0 + 1, vec_ptr[g + 1]):
        k, c = vec_slot[v], vec_count[v]
        for f in range(out.shape[0]):
            out[f] += c * table[k, f]


@njit(inline="always", fastmath=_FM)
def _add_group(h, member, group_ptr, g, mult, w, o, dn, last):  # pragma: no cover - compiled
    """One edge group's share of a node's output: o += w ⊙ Σ_{j∈g} h_j, dn += |g| w."""
    d = h.shape[1]
    for f in range(d):
        dn[f] += mult * w[f]
    for m in range(group_ptr[g], group_ptr[g + 1]):
        if m < last:
            _prefetch_read(h, member[m + _PREFETCH_AHEAD])
        j = member[m]
        for f in range(d):
            o[f] += w[f] * h[j, f]


@njit(inline="always", fastmath=_FM)
def _scatter_slots(grad_table, g, vec_ptr, vec_slot, vec_count, x):  # pragma: no cover
    """grad_table[k] += w_g[k] x over the group's non-zero slots (adjoint of _group_vector)."""
    for v in range(vec_ptr[g], vec_ptr[g + 1]):
        k, c = vec_slot[v], vec_count[v]
        for f in range(x.shape[0]):
            grad_table[k, f] += c * x[f]


# --- normalized α -------------------------------------------------------------------------
# Kernels share one driver shape: `workers` prange iterations, each taking tasks from an atomic
# counter until none is left (dynamic balance: item ids are not in degree order, and other
# processes may hold a core), with its own scratch row(s). Forward tasks are node chunks, each
# node written by one worker. Backward tasks are fixed blocks of chunks with their own gradient
# accumulators, summed in block order afterwards: results do not depend on which worker ran
# what, so they are reproducible bit for bit.


@njit(parallel=True, fastmath=_FM, cache=True)
def normalized_forward(h, q, groups, counter, scratch, out, den):  # pragma: no cover - compiled
    """out_i = Σ_g s_g ⊙ Σ_{j∈g} h_j / Σ_g |g| s_g; den keeps the denominator (1 if isolated).

    `groups` are the incoming edge groups; `scratch` is (workers, d).
    """
    node_ptr, group_ptr, group_mult, vec_ptr, vec_slot, vec_count, member, chunk_ptr = groups
    d, last = h.shape[1], len(member) - _PREFETCH_AHEAD
    counter[0] = 0
    for w in prange(scratch.shape[0]):
        s = scratch[w]
        c = _next_task(counter)
        while c < len(chunk_ptr) - 1:
            for i in range(chunk_ptr[c], chunk_ptr[c + 1]):
                o, dn = out[i], den[i]
                if node_ptr[i] == node_ptr[i + 1]:
                    for f in range(d):
                        o[f] = h[i, f]
                        dn[f] = 1.0
                    continue
                for f in range(d):
                    o[f] = 0.0
                    dn[f] = 0.0
                for g in range(node_ptr[i], node_ptr[i + 1]):
                    _group_vector(q, g, vec_ptr, vec_slot, vec_count, s)
                    _add_group(h, member, group_ptr, g, group_mult[g], s, o, dn, last)
                for f in range(d):
                    o[f] /= dn[f]
            c = _next_task(counter)


@njit(parallel=True, fastmath=_FM, cache=True)
def normalized_backward(
    h, q, grad, out, den, degrees, groups, counter, workers, grad_num, grad_h, grad_q_buf, need_q
):  # pragma: no cover - compiled
    """∂/∂H and per-block ∂/∂Q, gathered over each node's *outgoing* edge groups.

    `groups` are the outgoing groups (members are destinations), so node j collects
    ∂h_j = Σ_g s_g ⊙ Σ_{i∈g} ∂num_i without scattering; the ∂den term uses the node's own
    per-slot in-degree (`degrees` = has_in, deg_ptr, deg_slot, deg_count). `grad_num` is
    ∂L/∂num = grad / den; `grad_q_buf` is (blocks, 2L, d).
    """
    has_in, deg_ptr, deg_slot, deg_count = degrees
    node_ptr, group_ptr, _, vec_ptr, vec_slot, vec_count, member, chunk_ptr = groups
    d = h.shape[1]
    last = len(member) - _PREFETCH_AHEAD
    blocks, chunks = grad_q_buf.shape[0], len(chunk_ptr) - 1
    scratch = np.empty((workers, 2, d), h.dtype)
    counter[0] = 0
    for w in prange(workers):
        s, gs = scratch[w, 0], scratch[w, 1]
        b = _next_task(counter)
        while b < blocks:
            gq = grad_q_buf[b]
            gq[:] = 0.0
            lo, hi = chunk_ptr[b * chunks // blocks], chunk_ptr[(b + 1) * chunks // blocks]
            for j in range(lo, hi):
                gh = grad_h[j]
                if has_in[j]:
                    for f in range(d):
                        gh[f] = 0.0
                    if need_q:
                        for f in range(d):
                            s[f] = -grad_num[j, f] * out[j, f]  # ∂L/∂den_j
                        for v in range(deg_ptr[j], deg_ptr[j + 1]):
                            k, cnt = deg_slot[v], deg_count[v]
                            for f in range(d):
                                gq[k, f] += cnt * s[f]
                else:
                    for f in range(d):
                        gh[f] = grad[j, f]  # no neighbours: out_j = h_j
                for g in range(node_ptr[j], node_ptr[j + 1]):
                    for f in range(d):
                        gs[f] = 0.0
                    for m in range(group_ptr[g], group_ptr[g + 1]):
                        if m < last:
                            _prefetch_read(grad_num, member[m + _PREFETCH_AHEAD])
                        i = member[m]
                        for f in range(d):
                            gs[f] += grad_num[i, f]
                    _group_vector(q, g, vec_ptr, vec_slot, vec_count, s)
                    for f in range(d):
                        gh[f] += s[f] * gs[f]
                    if need_q:
                        for f in range(d):
                            gs[f] *= h[j, f]  # ∂L/∂s_g, numerator part
                        _scatter_slots(gq, g, vec_ptr, vec_slot, vec_count, gs)
            b = _next_task(counter)


# --- softmax α ----------------------------------------------------------------------------


@njit(parallel=True, fastmath=_FM, cache=True)
def softmax_forward(h, p, groups, counter, logits, fast, out, lse):  # pragma: no cover
    """out_i = Σ_g α_g ⊙ Σ_{j∈g} h_j with α_g = exp(z_g − m_i) / den_i; lse_i = m_i + log den_i.

    `groups` are the incoming groups; `logits` is (workers, most groups of a node, d) scratch.
    """
    node_ptr, group_ptr, group_mult, vec_ptr, vec_slot, vec_count, member, chunk_ptr = groups
    d, last = h.shape[1], len(member) - _PREFETCH_AHEAD
    workers = logits.shape[0]
    rows = np.empty((workers, 2, d), h.dtype)
    bits = np.empty((workers, d), np.int32)
    two_n = bits.view(np.float32)
    counter[0] = 0
    for w in prange(workers):
        z, top, ex, b, t2 = logits[w], rows[w, 0], rows[w, 1], bits[w], two_n[w]
        c = _next_task(counter)
        while c < len(chunk_ptr) - 1:
            for i in range(chunk_ptr[c], chunk_ptr[c + 1]):
                o, dn = out[i], lse[i]
                g0, g1 = node_ptr[i], node_ptr[i + 1]
                if g0 == g1:
                    for f in range(d):
                        o[f] = h[i, f]
                        dn[f] = 0.0
                    continue
                for g in range(g0, g1):
                    zg = z[g - g0]
                    _group_vector(p, g, vec_ptr, vec_slot, vec_count, zg)
                    if g == g0:
                        for f in range(d):
                            top[f] = zg[f]
                    else:
                        for f in range(d):
                            top[f] = max(top[f], zg[f])
                for f in range(d):
                    o[f] = 0.0
                    dn[f] = 0.0
                for g in range(g0, g1):
                    _exp_shifted(z[g - g0], top, ex, b, t2, fast)
                    _add_group(h, member, group_ptr, g, group_mult[g], ex, o, dn, last)
                for f in range(d):
                    o[f] /= dn[f]
                    dn[f] = top[f] + np.log(dn[f])
            c = _next_task(counter)


@njit(parallel=True, fastmath=_FM, cache=True)
def softmax_backward(
    h, p, grad, out, lse, groups, counter, workers, fast, grad_h_buf, grad_p_buf, need_p
):  # pragma: no cover - compiled
    """∂z_g = α_g ⊙ g_i ⊙ (Σ_{j∈g} h_j − |g| out_i); ∂h_j += α_g ⊙ g_i; α recomputed from lse.

    `groups` are the incoming groups; ∂H is scattered into per-block (blocks, N, d) buffers.
    """
    node_ptr, group_ptr, group_mult, vec_ptr, vec_slot, vec_count, member, chunk_ptr = groups
    d = h.shape[1]
    last = len(member) - _PREFETCH_AHEAD
    blocks, chunks = grad_h_buf.shape[0], len(chunk_ptr) - 1
    scratch = np.empty((workers, 3, d), h.dtype)
    bits = np.empty((workers, d), np.int32)
    two_n = bits.view(np.float32)
    counter[0] = 0
    for w in prange(workers):
        z, a, hs, e_bits, e_two = scratch[w, 0], scratch[w, 1], scratch[w, 2], bits[w], two_n[w]
        b = _next_task(counter)
        while b < blocks:
            gh, gp = grad_h_buf[b], grad_p_buf[b]
            gh[:] = 0.0
            gp[:] = 0.0
            lo, hi = chunk_ptr[b * chunks // blocks], chunk_ptr[(b + 1) * chunks // blocks]
            for i in range(lo, hi):
                gi, oi = grad[i], out[i]
                if node_ptr[i] == node_ptr[i + 1]:
                    for f in range(d):
                        gh[i, f] += gi[f]
                    continue
                for g in range(node_ptr[i], node_ptr[i + 1]):
                    _group_vector(p, g, vec_ptr, vec_slot, vec_count, z)
                    _exp_shifted(z, lse[i], a, e_bits, e_two, fast)  # α_g
                    for f in range(d):
                        a[f] *= gi[f]  # α_g ⊙ g_i
                        hs[f] = 0.0
                    for m in range(group_ptr[g], group_ptr[g + 1]):
                        if m < last:
                            _prefetch_read(h, member[m + _PREFETCH_AHEAD])
                            _prefetch_write(gh, member[m + _PREFETCH_AHEAD])
                        j = member[m]
                        for f in range(d):
                            hs[f] += h[j, f]
                            gh[j, f] += a[f]
                    if need_p:
                        mult = group_mult[g]
                        for f in range(d):
                            hs[f] = a[f] * (hs[f] - mult * oi[f])  # ∂L/∂z_g
                        _scatter_slots(gp, g, vec_ptr, vec_slot, vec_count, hs)
            b = _next_task(counter)
