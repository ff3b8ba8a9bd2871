import numpy as np

from sessionrec.data.synthetic import generate_sessions, make_synthetic


def test_seeded_and_in_range():
    a, b = generate_sessions(num_sessions=500, seed=3), generate_sessions(num_sessions=500, seed=3)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.items, generate_sessions(num_sessions=500, seed=4).items)
    assert a.items.min() >= 1 and a.items.max() <= 3000
    assert a.lengths.min() >= 2


def test_transitions_carry_signal_beyond_popularity():
    d = make_synthetic(num_items=600, num_categories=12, num_sessions=4000, seed=0)
    ex = d.train
    last = ex.items[ex.start + ex.length - 1]
    # the most frequent successor of the last click beats the most popular item by far
    pairs = last * (d.num_items + 1) + ex.target
    uniq, counts = np.unique(pairs, return_counts=True)
    best = {}
    for p, c in zip(uniq, counts, strict=True):
        a = p // (d.num_items + 1)
        if c > best.get(a, (0, 0))[0]:
            best[a] = (c, p % (d.num_items + 1))
    transition_acc = np.mean([best[a][1] == t for a, t in zip(last, ex.target, strict=True)])
    pop_acc = np.mean(ex.target == np.bincount(ex.target).argmax())
    assert transition_acc > 0.3 > 5 * pop_acc
    assert set(np.unique(d.test.target)) <= set(np.unique(d.train_sessions.items))
