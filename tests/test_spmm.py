"""The numba CSR × dense kernel (graph/spmm.py) against SciPy, and the choice of product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sessionrec.graph.spmm import CSRMatrix, faster_product, row_chunks


def _random_csr(rows: int, cols: int, density: float, seed: int, dtype=np.float32):
    m = sp.random(rows, cols, density=density, format="csr", random_state=seed, dtype=dtype)
    m = m.tolil()
    m[rows // 2, :] = 0  # an empty row
    return m.tocsr()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_matches_scipy(dtype):
    m = _random_csr(300, 200, 0.05, seed=1, dtype=dtype)
    x = np.random.default_rng(2).standard_normal((200, 37)).astype(dtype)
    out = CSRMatrix(m) @ torch.from_numpy(x)
    assert out.dtype == torch.from_numpy(x).dtype
    assert np.allclose(out.numpy(), m @ x, rtol=1e-5, atol=1e-5)
    assert not out[150].any()  # the empty row


def test_hand_worked_product():
    # [[2, 0, 1], [0, 0, 0], [0, 3, 0]] @ [[1, 2], [3, 4], [5, 6]]
    m = sp.csr_matrix(np.array([[2, 0, 1], [0, 0, 0], [0, 3, 0]], np.float32))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert (CSRMatrix(m) @ x).tolist() == [[7.0, 10.0], [0.0, 0.0], [9.0, 12.0]]


def test_same_bits_at_one_and_two_threads():
    m = _random_csr(2000, 2000, 0.01, seed=3)
    x = torch.randn(2000, 100, generator=torch.Generator().manual_seed(4))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = CSRMatrix(m) @ x
        torch.set_num_threads(2)
        two = CSRMatrix(m) @ x
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_row_chunks_cover_every_row_once():
    indptr = np.array([0, 0, 5, 5, 100, 101, 101])
    chunks = row_chunks(indptr, target=3)
    assert chunks[0] == 0 and chunks[-1] == 6 and np.all(np.diff(chunks) > 0)
    assert len(row_chunks(np.array([0]), target=8)) == 1  # no rows: no chunks


def test_faster_product_names_one_of_the_two():
    m = _random_csr(500, 500, 0.02, seed=5)
    dense = torch.from_numpy(m.toarray()).to_sparse_csr()
    assert faster_product(CSRMatrix(m), dense, torch.randn(500, 16)) in ("numba", "torch")
