"""An int8 copy of a dot-product model's item table, for exact top-k at a quarter of the bytes.

Scoring one session against 43k items reads the whole float32 table (17 MB) and is bound by
memory, not arithmetic; the int8 copy is 4.3 MB. Each row keeps its own scale, and the kernel
returns for every item an upper bound of its float32 score, so the index in serving/ann.py can
rescore the best candidates in float32 and prove that no other item beats its k-th.

Spec: docs/serving.md#int8-item-table
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise the dot product; no nnan/ninf, so -inf rows stay -inf.
_FM = {"nsz", "arcp", "contract", "reassoc"}
_UNIT = 2.0**-23  # float32 unit roundoff, rounded up to one ulp of 1


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: `table ≈ scale[:, None] * codes`, error ≤ scale / 2 each."""
    table = np.asarray(table, dtype=np.float32)
    scale = (np.abs(table).max(axis=1) / 127).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    codes = np.clip(np.rint(table / safe[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(codes), scale


def error_factor(dim: int) -> float:
    """c in |float32 score − int8 score| ≤ c · ‖q‖₁ · scaleᵢ: half a code step for the
    rounding of the table, plus float32 rounding of both dot products (≤ d·u·Σ|qₖ·tᵢₖ| each,
    with |tᵢₖ| ≤ 127·scaleᵢ)."""
    return 0.5 + 2 * 127 * dim * _UNIT


@njit(fastmath=_FM, cache=True, boundscheck=False, nogil=True)
def int8_upper_bounds(
    codes: np.ndarray, scale: np.ndarray, queries: np.ndarray, slack: np.ndarray, out: np.ndarray
) -> None:
    """out[r, i] = scaleᵢ · (queries[r] · codes[i] + slack[r]): an upper bound of item i's
    float32 score when slack[r] = error_factor(d) · ‖queries[r]‖₁. Items outer, so each
    int8 row is read once for the whole batch."""
    n, d = codes.shape
    b = queries.shape[0]
    for i in range(n):
        s = scale[i]
        for r in range(b):
            acc = np.float32(0.0)
            for k in range(d):
                acc += queries[r, k] * np.float32(codes[i, k])
            out[r, i] = (acc + slack[r]) * s


@njit(fastmath=_FM, cache=True, boundscheck=False, nogil=True)
def _dot(vectors: np.ndarray, i: int, q: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for k in range(q.shape[0]):
        acc += vectors[i, k] * q[k]
    return acc


@njit(fastmath=_FM, cache=True, boundscheck=False, nogil=True)
def _push(heap_v: np.ndarray, heap_i: np.ndarray, value: np.float32, item: int) -> None:
    """Replace the root of a min-heap of the k best (value, item) so far and sift it down."""
    k = heap_v.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and heap_v[child + 1] < heap_v[child]:
            child += 1
        if heap_v[child] >= value:
            break
        heap_v[pos], heap_i[pos] = heap_v[child], heap_i[child]
        pos = child
    heap_v[pos], heap_i[pos] = value, item


@njit(fastmath=_FM, cache=True, boundscheck=False, nogil=True)
def exact_top_k(
    vectors: np.ndarray, bounds: np.ndarray, q: np.ndarray, out_v: np.ndarray, out_i: np.ndarray
) -> int:
    """The k = len(out_v) best float32 scores vectors[i]·q, best first, given an upper bound
    of each (−inf: excluded); returns how many rows it scored in float32.

    θ is the k-th best float32 score of the k items with the highest bounds; every item whose
    bound reaches θ is then scored, and no other can beat the k-th of those."""
    n, k = bounds.shape[0], out_v.shape[0]
    heap_v = np.full(k, -np.inf, dtype=np.float32)
    heap_i = np.full(k, -1, dtype=np.int64)
    for i in range(n):  # the k highest bounds
        if bounds[i] > heap_v[0]:
            _push(heap_v, heap_i, bounds[i], i)
    theta = np.float32(np.inf)
    for j in range(k):
        if heap_i[j] >= 0:
            theta = min(theta, _dot(vectors, heap_i[j], q))
    if heap_i.min() < 0:  # fewer than k items left: all of them
        theta = np.float32(-np.inf)
    heap_v[:] = -np.inf
    heap_i[:] = -1
    scored = 0
    for i in range(n):
        if bounds[i] >= theta and bounds[i] > -np.inf:
            scored += 1
            s = _dot(vectors, i, q)
            if s > heap_v[0]:
                _push(heap_v, heap_i, s, i)
    order = np.argsort(-heap_v, kind="mergesort")
    for j in range(k):
        out_v[j], out_i[j] = heap_v[order[j]], heap_i[order[j]]
    return scored
