"""Seeded synthetic click sessions with the structure session models should exploit.

Items fall into categories; a session follows a latent intent (a category) that may switch.
Each step follows one of the current item's fixed successors, picks a popular item of the
same category, returns to an item seen two clicks ago or switches intent; small windows are
then shuffled. Popularity alone predicts little.

Spec: docs/design.md#data (Synthetic data)
"""

from __future__ import annotations

import numpy as np

from sessionrec.data.dataset import DEFAULT_VALID_FRACTION, SessionDataset, build_dataset
from sessionrec.data.sessions import Sessions


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return np.cumsum(w / w.sum())


def generate_sessions(
    num_items: int = 3000,
    num_categories: int = 60,
    num_sessions: int = 24000,
    mean_length: float = 6.0,
    max_length: int = 30,
    seed: int = 0,
) -> Sessions:
    """Draw `num_sessions` sessions in time order (item ids 1..num_items)."""
    rng = np.random.default_rng(seed)
    per_cat = num_items // num_categories
    cat_items = rng.permutation(num_categories * per_cat).reshape(num_categories, per_cat) + 1
    item_cat = np.zeros(num_items + 1, dtype=np.int64)
    item_cat[cat_items.ravel()] = np.repeat(np.arange(num_categories), per_cat)
    # Three fixed successors per item, inside its category, chosen with probabilities .6/.3/.1.
    succ = cat_items[item_cat[:, None], rng.integers(0, per_cat, size=(num_items + 1, 3))]
    succ_cdf = np.array([0.6, 0.9, 1.0])
    item_cdf, cat_cdf = _zipf_cdf(per_cat, 1.1), _zipf_cdf(num_categories, 0.8)

    def popular_in(cats: np.ndarray) -> np.ndarray:
        return cat_items[cats, np.searchsorted(item_cdf, rng.random(len(cats)))]

    n = num_sessions
    lengths = np.clip(2 + rng.poisson(mean_length - 2, size=n), 2, max_length)
    seqs = np.zeros((n, max_length), dtype=np.int64)
    cats = np.searchsorted(cat_cdf, rng.random(n))
    seqs[:, 0] = popular_in(cats)
    for t in range(1, max_length):  # vectorised over sessions; loops only over positions
        cur = seqs[:, t - 1]
        u = rng.random(n)
        follow = succ[cur, np.searchsorted(succ_cdf, rng.random(n))]
        switch = u >= 0.95
        cats = np.where(switch, np.searchsorted(cat_cdf, rng.random(n)), item_cat[cur])
        nxt = np.where(u < 0.6, follow, popular_in(cats))
        if t >= 2:
            nxt = np.where((u >= 0.85) & (u < 0.95), seqs[:, t - 2], nxt)
        seqs[:, t] = nxt
    # Shuffle windows of 3 consecutive clicks (random phase per session) with probability 0.3.
    pos = np.arange(max_length)
    block = (pos[None, :] + rng.integers(0, 3, size=(n, 1))) // 3
    shuffled = rng.random((n, max_length // 3 + 2)) < 0.3
    key = np.where(
        np.take_along_axis(shuffled, block, 1), rng.random((n, max_length)), pos / max_length
    )
    order = np.lexsort((key, block), axis=1)
    seqs = np.take_along_axis(seqs, order, 1)
    keep = pos[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Sessions(seqs[keep], offsets)


def make_synthetic(
    num_items: int = 3000,
    num_categories: int = 60,
    num_sessions: int = 24000,
    test_fraction: float = 0.1,
    seed: int = 0,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    train_fraction: float = 1.0,
) -> SessionDataset:
    """The built-in `synthetic` dataset: the last `test_fraction` of sessions are test sessions.

    `train_fraction` < 1 keeps the most recent fraction of the training sessions.
    """
    sessions = generate_sessions(num_items, num_categories, num_sessions, seed=seed)
    n_train = len(sessions) - int(round(len(sessions) * test_fraction))
    train = sessions.select(np.arange(n_train))
    test = sessions.select(np.arange(n_train, len(sessions))).prefixes()
    seen = np.zeros(num_items + 1, dtype=bool)
    seen[train.items] = True
    test = test.subset(np.flatnonzero(seen[test.target]))
    source = {
        "dataset": "synthetic",
        "num_items": num_items,
        "num_categories": num_categories,
        "num_sessions": num_sessions,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    return build_dataset("synthetic", train, test, valid_fraction, None, source, train_fraction)
