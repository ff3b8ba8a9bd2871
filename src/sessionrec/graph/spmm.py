"""Constant sparse (CSR) × dense products on CPU: a numba kernel, and the choice between it and
torch's own product (MKL's), which is the faster one on some CPUs and far slower on others, so
`faster_product` measures both on the matrix itself.

Spec: docs/baselines-graph.md#dhcn-dhcn (hypergraph convolution); figures:
docs/performance.md#sparse-products
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numba import njit, prange

from sessionrec.graph.kernel_tools import PREFETCH_AHEAD, next_task, numba_threads, prefetch_read

_FM = {"nsz", "arcp", "contract", "reassoc"}  # no nnan/ninf: keep IEEE semantics


@njit(parallel=True, fastmath=_FM, cache=True)
def csr_dense(indptr, indices, data, x, chunk_ptr, counter, workers, out):  # pragma: no cover
    """out = A x, A in CSR. Each row is written by one worker, its terms summed in column
    order, so the result has the same bits at any thread count."""
    d, last = x.shape[1], len(indices) - PREFETCH_AHEAD
    counter[0] = 0
    for _ in prange(workers):
        c = next_task(counter)
        while c < len(chunk_ptr) - 1:
            for i in range(chunk_ptr[c], chunk_ptr[c + 1]):
                o = out[i]
                for f in range(d):
                    o[f] = 0.0
                for p in range(indptr[i], indptr[i + 1]):
                    if p < last:
                        prefetch_read(x, indices[p + PREFETCH_AHEAD])
                    j, a = indices[p], data[p]
                    for f in range(d):
                        o[f] += a * x[j, f]
            c = next_task(counter)


def row_chunks(indptr: np.ndarray, target: int = 256) -> np.ndarray:
    """About `target` contiguous row ranges of similar work (non-zeros, plus 4 a row)."""
    n = len(indptr) - 1
    work = np.asarray(indptr, np.int64) + 4 * np.arange(n + 1)
    cuts = np.searchsorted(work, np.linspace(0, work[-1], min(target, max(n, 1)) + 1))
    return np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]])).astype(np.int64)


class CSRMatrix:
    """A constant CSR matrix whose `@` with a 2-D CPU tensor runs `csr_dense`."""

    def __init__(self, m: sp.spmatrix) -> None:
        m = sp.csr_matrix(m)
        m.sort_indices()
        self.shape: tuple[int, int] = m.shape
        self.dtype: torch.dtype = torch.from_numpy(m.data[:0]).dtype  # as a torch tensor's
        self.indptr = m.indptr.astype(np.int64)
        self.indices = m.indices.astype(np.int32)
        self.data = np.ascontiguousarray(m.data)
        self.chunk_ptr = row_chunks(self.indptr)

    def to_dense(self) -> torch.Tensor:
        m = sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)
        return torch.from_numpy(m.toarray())

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.detach().to(self.dtype).contiguous().numpy()
        out = np.empty((self.shape[0], rows.shape[1]), self.data.dtype)
        counter = np.zeros(1, np.int64)
        with numba_threads() as workers:
            csr_dense(
                self.indptr, self.indices, self.data, rows, self.chunk_ptr, counter, workers, out
            )
        return torch.from_numpy(out)


def faster_product(
    numba_a: CSRMatrix, torch_a: torch.Tensor, x: torch.Tensor, rounds: int = 3
) -> str:
    """Which of the two computed `a @ x` faster, "numba" or "torch": best of `rounds`
    alternating rounds after one warm-up (which also compiles the kernel). numba must be at
    least 10% faster, so that where the two are close the choice stays torch's, run after
    run."""
    best: dict[str, float] = {"numba": np.inf, "torch": np.inf}
    products: dict[str, Any] = {"numba": numba_a, "torch": torch_a}
    with torch.autocast("cpu", enabled=False):  # as DHCN's products run: float32
        for r in range(rounds + 1):
            for name, a in products.items():
                start = time.perf_counter()
                a @ x
                if r:
                    best[name] = min(best[name], time.perf_counter() - start)
    return "numba" if best["numba"] < 0.9 * best["torch"] else "torch"
