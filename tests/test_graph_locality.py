"""graph/locality.py: the relabelling that keeps graph neighbours close in memory."""

import numpy as np
import scipy.sparse as sp

from sessionrec.graph.locality import bandwidth_profile, locality_order, permute


def banded_then_shuffled(n: int = 200, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """A path graph (each node linked to the next two) under a random relabelling."""
    rows = np.r_[np.arange(n - 1), np.arange(n - 2)]
    cols = np.r_[np.arange(1, n), np.arange(2, n)]
    band = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    shuffle = np.random.default_rng(seed).permutation(n)
    return permute(band, shuffle), shuffle


def test_permute_is_p_a_p_transpose():
    a = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 2], [3, 0, 0]], dtype=float))
    perm = np.array([2, 0, 1])  # label 0 is node 2, label 1 node 0, label 2 node 1
    p = np.eye(3)[perm]
    np.testing.assert_array_equal(permute(a, perm).toarray(), p @ a.toarray() @ p.T)
    assert permute(a, perm).has_sorted_indices


def test_locality_order_recovers_a_narrow_band():
    shuffled, _ = banded_then_shuffled()
    assert bandwidth_profile(shuffled) > 30  # neighbours far apart after the shuffle
    perm = locality_order(shuffled)
    assert sorted(perm.tolist()) == list(range(200))
    assert bandwidth_profile(permute(shuffled, perm)) <= 2  # the path's band is back
    np.testing.assert_array_equal(perm, locality_order(shuffled))  # deterministic


def test_products_in_locality_order_equal_the_original():
    shuffled, _ = banded_then_shuffled()
    shuffled = shuffled.multiply(np.random.default_rng(1).random(shuffled.shape)).tocsr()
    x = np.random.default_rng(2).standard_normal((200, 5))
    perm = locality_order(shuffled)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    np.testing.assert_allclose((permute(shuffled, perm) @ x[perm])[inv], shuffled @ x)
