"""The int8 item table (serving/int8_kernels.py, `Int8Index` in serving/ann.py): hand-computed
quantisation, bounds that hold for any table, and float32's top-k from every path.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.errors import ConfigError
from sessionrec.serving import SessionRecommender
from sessionrec.serving.ann import INT8_MAX_BATCH, AnnConfig, Int8Index
from sessionrec.serving.int8_kernels import (
    error_factor,
    exact_top_k,
    int8_upper_bounds,
    quantize_rows,
)


def float32_top_k(vectors: torch.Tensor, queries: torch.Tensor, k: int, exclude=None):
    """The reference: every item scored in float32 (items 1..N), excluded ones dropped."""
    scores = queries @ vectors.T
    for row, skip in zip(scores, exclude or [], strict=False):
        row[[i - 1 for i in skip if i <= len(vectors)]] = -torch.inf
    values, labels = scores.topk(min(k, len(vectors)), dim=1)
    return scores, [
        [(i + 1, s) for i, s in zip(li, vi, strict=True) if s != -float("inf")]
        for li, vi in zip(labels.tolist(), values.tolist(), strict=True)
    ]


def assert_same_top_k(got, want, scores: torch.Tensor) -> None:
    """Same items up to the order of scores equal within float32 rounding, same scores."""
    tol = 1e-5 * max(1.0, float(scores[scores > -torch.inf].abs().max()))
    for g, w, row in zip(got, want, scores, strict=True):
        assert len(g) == len(w)
        assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=tol)
        if not w:
            continue
        kth = w[-1][1]
        for item, s in g:  # anything returned really scores at least the k-th (or ties it)
            assert float(row[item - 1]) >= kth - tol and float(row[item - 1]) == pytest.approx(
                s, abs=tol
            )
        strict = {i for i, s in w if s > kth + tol}
        assert strict <= {i for i, _ in g}


def test_quantize_rows_hand_computed():
    codes, scale = quantize_rows(np.array([[0.5, -1.27, 0.0], [0.0, 0.0, 0.0]], np.float32))
    assert scale.tolist() == pytest.approx([0.01, 0.0])
    assert codes.tolist() == [[50, -127, 0], [0, 0, 0]] and codes.dtype == np.int8


def test_bounds_hand_computed():
    codes = np.array([[50, -127, 0], [0, 0, 0]], np.int8)
    scale = np.array([0.01, 0.0], np.float32)
    q = np.array([[2.0, 1.0, -3.0]], np.float32)
    out = np.empty((1, 2), np.float32)
    int8_upper_bounds(codes, scale, q, np.array([6.0], np.float32), out)
    # 0.01 · (2·50 + 1·(−127) + 0 + 6) = −0.21; a zero row is bounded by 0
    assert out.tolist()[0] == pytest.approx([-0.21, 0.0])
    assert error_factor(3) == pytest.approx(0.5 + 2 * 127 * 3 * 2.0**-23)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 300),
    d=st.integers(1, 70),
    spread=st.sampled_from([0.0, 1.0, 4.0]),
)
def test_bounds_hold_for_any_table(seed, n, d, spread):
    """Every bound is above the float32 score, rows of very different norms included."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n, d)).astype(np.float32)
    table *= np.exp(spread * rng.standard_normal((n, 1))).astype(np.float32)
    table[rng.random(n) < 0.05] = 0.0
    queries = rng.standard_normal((2, d)).astype(np.float32) * 3
    codes, scale = quantize_rows(table)
    slack = (np.abs(queries).sum(axis=1) * error_factor(d)).astype(np.float32)
    bounds = np.empty((2, n), np.float32)
    int8_upper_bounds(codes, scale, queries, slack, bounds)
    exact = (queries.astype(np.float64) @ table.T.astype(np.float64)).astype(np.float32)
    assert (bounds >= exact).all()
    # and not loose: within twice the error term of the score
    assert (bounds - exact <= 2 * slack[:, None] * scale[None, :] + 1e-6).all()


def test_exact_top_k_scores_few_items_and_handles_exclusions():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 32)).astype(np.float32)
    q = rng.standard_normal(32).astype(np.float32)
    codes, scale = quantize_rows(vectors)
    bounds = np.empty((1, 2000), np.float32)
    slack = np.array([np.abs(q).sum() * error_factor(32)], np.float32)
    int8_upper_bounds(codes, scale, q[None], slack, bounds)
    values, labels = np.empty(10, np.float32), np.empty(10, np.int64)
    scored = exact_top_k(vectors, bounds[0], q, values, labels)
    want = np.argsort(-(vectors @ q))[:10]
    assert labels.tolist() == want.tolist() and scored < 100
    bounds[0, :] = -np.inf
    bounds[0, [5, 7]] = 1e9  # all but two excluded: those two, then empty slots
    exact_top_k(vectors, bounds[0], q, values, labels)
    assert sorted(labels[:2].tolist()) == [5, 7] and (values[2:] == -np.inf).all()


@pytest.mark.parametrize("k", [1, 20, 299, 300, 500])
@pytest.mark.parametrize("batch", [1, INT8_MAX_BATCH, 7])
def test_index_gives_float32_top_k(k, batch):
    gen = torch.Generator().manual_seed(k + batch)
    vectors = torch.randn(300, 24, generator=gen) * torch.rand(300, 1, generator=gen) * 3
    vectors[10:20] = vectors[9]  # ties
    vectors[20] = vectors[9] * (1 + 1e-7)  # a near-tie
    index = Int8Index(vectors, AnnConfig.parse("int8"))
    queries = torch.randn(batch, 24, generator=gen)
    queries[0] = vectors[9]
    exclude = [[9, 11, 500], [], list(range(1, 299))][:batch]  # unknown ids are ignored
    for excl in (None, exclude):
        scores, want = float32_top_k(vectors, queries, k, excl)
        assert_same_top_k(index.search(queries, k, excl), want, scores)


def test_int8_through_the_recommender(focol_run, tiny):
    exact = SessionRecommender.load(focol_run)
    fast = SessionRecommender.load(focol_run, ann="int8")
    assert fast.info()["ann"] == {"kind": "int8"}
    sessions = [tiny.test.sequence(i).tolist() for i in range(30)]
    vectors = fast.ann.vectors
    for s in sessions[:10]:
        got, want = fast.recommend(s, k=20, exclude=s), exact.recommend(s, k=20, exclude=s)
        assert got.items == want.items and got.scores == pytest.approx(want.scores, abs=1e-5)
    got, want = fast.recommend_batch(sessions, k=5), exact.recommend_batch(sessions, k=5)
    assert [g.items for g in got] == [w.items for w in want]
    assert vectors.shape == (fast.model.num_items, fast.model.item_vectors().shape[1])


def test_int8_needs_no_faiss_and_refuses_options(stamp_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    rec = SessionRecommender.load(stamp_run, ann="int8")
    assert rec.recommend([1, 2], k=3).items
    with pytest.raises(ConfigError, match=r"^--ann: 'm=3' is not an option of int8 \(options"):
        AnnConfig.parse("int8,m=3")
