"""FOCOL's fine-grained co-occurrence graph (FOG, Sec. 3.2.1, Eq. 1), stored sparse.

Edge u→v carries w_uv ∈ R^{2L}, kept as non-zero (edge, slot, count) entries, never as a
dense E×2L tensor.

Spec: docs/focol.md#fog-sec-321-eq-1
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sessionrec.data.sessions import Sessions
from sessionrec.io import atomic_write
from sessionrec.progress import status

FOG_FORMAT = 1


@dataclass(frozen=True)
class FOG:
    """A FOG over items 0..num_nodes-1: edges src→dst and their non-zero weight-vector slots."""

    num_nodes: int
    max_distance: int  # L; weight vectors have 2L slots
    src: np.ndarray  # (E,) int64
    dst: np.ndarray  # (E,) int64
    entry_edge: np.ndarray  # (nnz,) int64, index into src/dst
    entry_slot: np.ndarray  # (nnz,) int64 in [0, 2L)
    entry_count: np.ndarray  # (nnz,) float32

    @property
    def num_edges(self) -> int:
        return len(self.src)

    def weight_vectors(self, edges: np.ndarray | None = None) -> np.ndarray:
        """Dense weight vectors of the given edges (for tests and small graphs only)."""
        edges = np.arange(self.num_edges) if edges is None else np.asarray(edges)
        pos = np.full(self.num_edges, -1)
        pos[edges] = np.arange(len(edges))
        out = np.zeros((len(edges), 2 * self.max_distance), dtype=np.float32)
        keep = pos[self.entry_edge] >= 0
        out[pos[self.entry_edge[keep]], self.entry_slot[keep]] = self.entry_count[keep]
        return out

    def edge_index(self, u: int, v: int) -> int | None:
        hit = np.flatnonzero((self.src == u) & (self.dst == v))
        return int(hit[0]) if len(hit) else None


def longest_distance(sessions: Sessions) -> int:
    """Default L: the longest training session minus one."""
    return max(int(sessions.lengths.max(initial=1)) - 1, 1)


def build_fog(sessions: Sessions, num_nodes: int, max_distance: int | None = None) -> FOG:
    """Count ordered co-occurrences at every distance 1..L (vectorised over positions)."""
    L = max_distance or longest_distance(sessions)
    items = sessions.items
    session_of = np.repeat(np.arange(len(sessions)), sessions.lengths)
    keys = []
    width = 2 * L
    for k in range(1, min(L, len(items) - 1) + 1):
        same = np.flatnonzero(session_of[:-k] == session_of[k:])
        if not len(same):
            continue
        a, b = items[same], items[same + k]  # b occurs k positions after a
        keys.append((a * num_nodes + b) * width + (k - 1))  # edge a→b, slot k−1
        keys.append((b * num_nodes + a) * width + (width - k))  # edge b→a, slot 2L−k
    if keys:
        uniq, counts = np.unique(np.concatenate(keys), return_counts=True)
    else:
        uniq, counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pair, slot = np.divmod(uniq, width)
    edges, entry_edge = np.unique(pair, return_inverse=True)
    src, dst = np.divmod(edges, num_nodes)
    return FOG(num_nodes, L, src, dst, entry_edge.astype(np.int64), slot, counts.astype(np.float32))


def cache_dir() -> Path:
    return Path(os.environ.get("SESSIONREC_CACHE", Path.home() / ".cache" / "sessionrec"))


def fog_cache_key(sessions: Sessions, num_nodes: int, max_distance: int) -> str:
    h = hashlib.sha1()
    for arr in (sessions.items, sessions.offsets):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    h.update(f"{num_nodes}:{max_distance}:{FOG_FORMAT}".encode())
    return h.hexdigest()[:20]


def load_or_build_fog(
    sessions: Sessions, num_nodes: int, max_distance: int | None = None, cache: bool = True
) -> FOG:
    """`build_fog`, cached on disk (npz, no pickle) keyed by the training data and L."""
    L = max_distance or longest_distance(sessions)
    path = cache_dir() / f"fog-{fog_cache_key(sessions, num_nodes, L)}.npz"
    if cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return FOG(
                    num_nodes,
                    L,
                    z["src"],
                    z["dst"],
                    z["entry_edge"],
                    z["entry_slot"],
                    z["entry_count"],
                )
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt
    with status(f"building the FOG (L = {L}) of {len(sessions):,} sessions"):
        fog = build_fog(sessions, num_nodes, L)
    if cache:
        arrays = {
            k: getattr(fog, k) for k in ("src", "dst", "entry_edge", "entry_slot", "entry_count")
        }

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)

        with contextlib.suppress(OSError):  # a read-only cache only costs the rebuild
            atomic_write(path, write)
    return fog
