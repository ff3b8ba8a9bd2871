"""Item orders that put graph neighbours next to each other in memory.

A product with a global item graph (DHCN's hypergraph adjacency, FOCOL's FOG) gathers one
embedding row per edge from a table larger than a core's caches (Diginetica: 43,098 × 100
float32, 17 MB). Item ids follow first appearance, so a node's neighbours are scattered over
the whole table and most gathers miss the cache. Relabelling the nodes in reverse
Cuthill–McKee order keeps neighbours' rows close, so a run of destination rows reuses what
is already cached. Only the order of the work changes: each output row sums the same terms.
Figures: docs/performance.md#graph-locality.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee


def locality_order(adjacency: sp.spmatrix) -> np.ndarray:
    """perm such that node perm[k] gets label k: reverse Cuthill–McKee on A + Aᵀ's pattern.

    Deterministic for a given matrix, so a resumed run rebuilds the same order.
    """
    a = sp.csr_matrix(adjacency)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got {a.shape}")
    pattern = (a + a.T).tocsr()
    pattern.sort_indices()
    return np.asarray(reverse_cuthill_mckee(pattern, symmetric_mode=True), dtype=np.int64)


def permute(adjacency: sp.spmatrix, perm: np.ndarray) -> sp.csr_matrix:
    """P A Pᵀ in CSR with sorted indices: row and column k are node perm[k]'s."""
    out = sp.csr_matrix(adjacency)[perm][:, perm].tocsr()
    out.sort_indices()
    return out


def bandwidth_profile(adjacency: sp.spmatrix) -> float:
    """Median |i − j| over the non-zeros: how far apart a row's neighbours sit."""
    a = sp.coo_matrix(adjacency)
    return float(np.median(np.abs(a.row - a.col))) if a.nnz else 0.0
