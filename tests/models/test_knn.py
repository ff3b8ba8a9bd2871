"""Item-kNN and the session-kNN family: hand-computed toy examples and a loop reference."""

import math

import numpy as np
import pytest
import torch

from sessionrec.data.batching import collate
from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.models import Recommender, create
from sessionrec.models import sknn as sknn_module
from sessionrec.models.sknn import position_decay, step_decay


def toy(train: list[list[int]], num_items: int | None = None, valid_fraction: float = 0.0):
    """A dataset with the given training sessions (in time order) and one dummy test case."""
    n = num_items or max(max(s) for s in train)
    test = Sessions.from_lists([[1]]).as_examples(np.array([n]))
    return build_dataset("toy", Sessions.from_lists(train), test, valid_fraction)


def scores(model: Recommender, sessions: list[list[int]]) -> np.ndarray:
    ex = Sessions.from_lists(sessions).as_examples(np.ones(len(sessions), dtype=np.int64))
    return model.score_batch(collate(ex, np.arange(len(sessions)))).double().numpy()


# --- item-kNN -------------------------------------------------------------------------------
def test_itemknn_cosine_on_three_sessions():
    data = toy([[1, 2, 3], [1, 2], [2, 4]])
    model = create("itemknn", 4, regularization=0.0).fit(data)
    # supp = sessions holding the item: 1 -> 2, 2 -> 3, 3 -> 1, 4 -> 1; c_12 = 2, c_13 = 1, ...
    expected = {
        1: [0, 0, 2 / math.sqrt(2 * 3), 1 / math.sqrt(2 * 1), 0],
        2: [0, 2 / math.sqrt(6), 0, 1 / math.sqrt(3), 1 / math.sqrt(3)],
        4: [0, 0, 1 / math.sqrt(3), 0, 0],
    }
    for last, row in expected.items():
        np.testing.assert_allclose(scores(model, [[3, last]])[0], row, rtol=1e-6)
    # λ = 20 shrinks rare pairs: sim(1, 2) = 2 / sqrt((2 + 20)(3 + 20))
    reg = create("itemknn", 4).fit(data)
    assert scores(reg, [[1]])[0, 2] == pytest.approx(2 / math.sqrt(22 * 23), rel=1e-6)


def test_itemknn_click_counts_and_top_m():
    data = toy([[1, 1, 2], [2, 3], [2, 4]])
    clicks = create("itemknn", 4, regularization=0.0, count_clicks=True).fit(data)
    # c_12 = 2 clicks x 1 click; supp_1 = 2 clicks, supp_2 = 3 clicks
    assert scores(clicks, [[1]])[0, 2] == pytest.approx(2 / math.sqrt(2 * 3), rel=1e-6)
    binary = create("itemknn", 4, regularization=0.0).fit(data)
    assert scores(binary, [[1]])[0, 2] == pytest.approx(1 / math.sqrt(1 * 3), rel=1e-6)
    top1 = create("itemknn", 4, regularization=0.0, num_neighbors=1).fit(data)
    # item 2's neighbours 1, 3, 4 tie at 1/sqrt(3): the smallest id is kept
    np.testing.assert_allclose(scores(top1, [[2]])[0], [0, 1 / math.sqrt(3), 0, 0, 0], rtol=1e-6)
    assert top1.neighbors.shape == (5, 1)


def test_fit_sessions_leave_out_validation():
    data = toy([[1, 2, 3], [2, 3], [3, 4, 1], [4, 2]], valid_fraction=0.34)
    # 6 examples, the last 2 (session 2's shorter prefix and session 3) are validation
    assert data.fit_sessions().to_lists() == [[1, 2, 3], [2, 3]]
    assert toy([[1, 2], [2, 3]]).fit_sessions().to_lists() == [[1, 2], [2, 3]]


# --- SKNN -----------------------------------------------------------------------------------
TRAIN = [[1, 2, 3], [2, 4], [5, 6], [1, 4, 6]]


def test_sknn_similarity_and_scores():
    data = toy(TRAIN)
    # current [1, 2]: candidates 0, 1, 3 with cosine 2/sqrt(6), 1/sqrt(4), 1/sqrt(6)
    s0, s1, s3 = 2 / math.sqrt(6), 0.5, 1 / math.sqrt(6)
    two = create("sknn", 6, k=2).fit(data)
    np.testing.assert_allclose(scores(two, [[1, 2]])[0], [0, s0, s0 + s1, s0, s1, 0, 0], rtol=1e-6)
    three = create("sknn", 6, k=3).fit(data)
    np.testing.assert_allclose(
        scores(three, [[1, 2]])[0], [0, s0 + s3, s0 + s1, s0, s1 + s3, 0, s3], rtol=1e-6
    )
    recent = create("sknn", 6, k=3, sample_size=2).fit(data)  # only sessions 1 and 3
    np.testing.assert_allclose(
        scores(recent, [[1, 2]])[0], [0, s3, s1, 0, s1 + s3, 0, s3], rtol=1e-6
    )
    jac = create("sknn", 6, k=1, similarity="jaccard").fit(data)  # 2/3 for session 0
    np.testing.assert_allclose(scores(jac, [[2, 1]])[0], [0, 2 / 3, 2 / 3, 2 / 3, 0, 0, 0])
    assert not scores(two, [[5, 5]])[0, :5].any() and scores(two, [[5, 5]])[0, 6] > 0


# --- V-SKNN ---------------------------------------------------------------------------------
def test_vsknn_position_and_step_weights():
    pos, length = np.array([1, 2, 3, 4]), np.full(4, 4)
    np.testing.assert_allclose(position_decay("div", pos, length), [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(position_decay("quadratic", pos, length), [1 / 16, 0.25, 9 / 16, 1])
    np.testing.assert_allclose(position_decay("linear", pos, length), [0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(position_decay("log", pos, length)[-1], 1 / math.log10(1.7))
    np.testing.assert_allclose(step_decay("div", np.array([1, 2, 4])), [1, 0.5, 0.25])
    np.testing.assert_allclose(step_decay("linear", np.array([1, 12])), [0.9, 0.0])


def test_vsknn_scores():
    data = toy([[2, 5], [3, 6]])
    # current [1, 2, 3] (div): w = 1/3, 2/3, 1; sim_0 = (2/3)/3, sim_1 = 1/3
    # session 0 matches item 2 (step 2, decay 1/2), session 1 item 3 (step 1)
    a, b = 2 / 9 * 0.5, 1 / 3
    plain = create("vsknn", 6, idf_weighting=0.0).fit(data)
    np.testing.assert_allclose(scores(plain, [[1, 2, 3]])[0], [0, 0, a, b, 0, a, b], rtol=1e-6)
    # every item is in 1 of 2 sessions: idf = log 2; factor 1 + 2 log 2
    idf = create("vsknn", 6, idf_weighting=2.0).fit(data)
    factor = 1 + 2 * math.log(2)
    expected = np.array([0, 0, a, b, 0, a, b]) * factor
    np.testing.assert_allclose(scores(idf, [[1, 2, 3]])[0], expected, rtol=1e-6)
    # a repeated item takes its last position: [2, 3, 2] gives item 2 weight 1, item 3 2/3
    rep = scores(plain, [[2, 3, 2]])[0]
    np.testing.assert_allclose(rep[5], 1 / 2 * 1.0, rtol=1e-6)
    np.testing.assert_allclose(rep[6], (2 / 3) / 2 * 0.5, rtol=1e-6)


# --- STAN -----------------------------------------------------------------------------------
def test_stan_decays():
    data = toy([[4, 2, 7, 8], [3, 9]])
    model = create("stan", 9, lambda1=1.0, lambda2=2.0, lambda3=1.0).fit(data)
    np.testing.assert_allclose(
        model.position_weights(np.array([1, 2, 3]), np.full(3, 3)), np.exp([-2.0, -1.0, 0.0])
    )
    # current [1, 2, 3]: session 0 shares 2 (w1 = e^-1), 2 sessions back -> recency e^-1
    sim0 = math.exp(-1) / math.sqrt(3 * 4) * math.exp(-1)
    sim1 = 1.0 / math.sqrt(3 * 2) * math.exp(-0.5)  # shares 3 (w1 = 1), 1 session back
    e = math.exp
    expected = np.zeros(10)
    expected[[4, 2, 7, 8]] = sim0 * np.array([e(-1), 1, e(-1), e(-2)])  # i* = 2 at position 2
    expected[[3, 9]] = sim1 * np.array([1, e(-1)])  # i* = 3 at position 1
    np.testing.assert_allclose(scores(model, [[1, 2, 3]])[0], expected, rtol=1e-6)


def test_stan_anchor_is_most_recent_item_of_the_current_session():
    data = toy([[2, 1, 5]])
    model = create("stan", 5, lambda3=1.0).fit(data)
    # current [1, 2]: the most recent shared item is 2, at position 1 of the neighbour
    # (session-rec would anchor at position 2, the last shared position)
    row = scores(model, [[1, 2]])[0]
    np.testing.assert_allclose(row[[2, 1, 5]] / row[2], [1, math.exp(-1), math.exp(-2)], rtol=1e-6)


# --- loop reference on random data ----------------------------------------------------------
def reference(name: str, p, train: list[list[int]], cur: list[int], n_items: int) -> np.ndarray:
    """The definitions written as loops over sessions (slow, obviously right)."""
    n_s, length = len(train), len(cur)
    last = {i: t + 1 for t, i in enumerate(cur)}
    df = np.zeros(n_items + 1)
    for s in train:
        df[list(set(s))] += 1
    cands = [n for n in range(n_s) if set(cur) & set(train[n])]
    cands = cands[-p.sample_size :] if p.sample_size else cands
    sims = {}
    for n in cands:
        inter, nn = sorted(set(cur) & set(train[n])), len(set(train[n]))
        if name == "sknn":
            sim = len(inter) / math.sqrt(len(last) * nn)
        elif name == "vsknn":
            sim = sum(last[i] / length for i in inter) / len(last)
        else:
            w = sum(math.exp((last[i] - length) / p.lambda1) for i in inter)
            sim = w / math.sqrt(len(last) * nn) * math.exp(-(n_s - n) / p.lambda2)
        if sim > 0:
            sims[n] = sim
    out = np.zeros(n_items + 1)
    for n in sorted(sims, key=lambda n: (-sims[n], -n))[: p.k]:
        pos = {i: q + 1 for q, i in enumerate(train[n])}
        newest = max(last.get(i, 0) for i in pos)
        anchor = pos[max(pos, key=lambda i: last.get(i, 0))]
        for i, q in pos.items():
            if name == "sknn":
                out[i] += sims[n]
            elif name == "vsknn":
                idf = math.log(n_s / df[i])
                out[i] += sims[n] / (length - newest + 1) * (1 + p.idf_weighting * idf)
            else:
                out[i] += sims[n] * math.exp(-abs(q - anchor) / p.lambda3)
    return out


@pytest.mark.parametrize(
    "name, hp",
    [
        ("sknn", {"k": 7, "sample_size": 25}),
        ("sknn", {"k": 500, "sample_size": 0}),
        ("vsknn", {"k": 500, "sample_size": 25}),
        ("stan", {"k": 7, "sample_size": 25, "lambda2": 50.0}),
    ],
)
def test_vectorised_scores_match_loop_reference(name, hp):
    rng = np.random.default_rng(3)
    n_items = 25
    train = [rng.integers(1, n_items + 1, rng.integers(1, 8)).tolist() for _ in range(150)]
    current = [rng.integers(1, n_items + 1, rng.integers(1, 10)).tolist() for _ in range(40)]
    model = create(name, n_items, **hp).fit(toy(train, n_items))
    got = scores(model, current)
    for row, cur in zip(got, current, strict=True):
        expected = reference(name, model.params, train, cur, n_items)
        np.testing.assert_allclose(row, expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["sknn", "vsknn", "stan"])
def test_scoring_in_chunks_gives_the_same_scores(name, tiny, monkeypatch):
    model = create(name, tiny.num_items).fit(tiny)
    b = collate(tiny.test, np.arange(64))
    whole = model.score_batch(b)
    monkeypatch.setattr(sknn_module, "CANDIDATE_BUDGET", 50)  # about one row per chunk
    assert torch.equal(model.score_batch(b), whole)


@pytest.mark.parametrize("name", ["itemknn", "sknn", "vsknn", "stan"])
def test_unfitted_and_unseen_items_score_zero(name):
    model = create(name, 6)
    assert not scores(model, [[1, 2]]).any()
    fitted = model.fit(toy([[1, 2], [2, 3]], num_items=6))
    assert not scores(fitted, [[6]]).any()
    assert torch.isfinite(torch.from_numpy(scores(fitted, [[1, 6, 2]]))).all()
