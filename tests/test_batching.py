import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.data.batching import batch_indices, collate
from sessionrec.data.sessions import Sessions

session_lists = st.lists(
    st.lists(st.integers(1, 50), min_size=1, max_size=12), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(session_lists, st.integers(1, 17), st.integers(0, 5))
def test_batches_cover_every_example_once(seqs, batch_size, seed):
    ex = Sessions.from_lists(seqs).prefixes()
    assert len(ex) == sum(len(s) - 1 for s in seqs)
    for shuffle, bucket, by_session in ((False, 64, 0), (True, 64, 0), (True, 0, 0), (True, 0, 1)):
        idx = batch_indices(
            ex, batch_size, shuffle=shuffle, seed=seed, bucket_batches=bucket, sessions=by_session
        )
        flat = np.concatenate(idx) if idx else np.array([], dtype=int)
        assert sorted(flat.tolist()) == list(range(len(ex)))
        assert all(len(b) <= batch_size for b in idx)
    if len(ex):
        same = batch_indices(ex, batch_size, shuffle=True, seed=seed)
        again = batch_indices(ex, batch_size, shuffle=True, seed=seed)
        assert all(np.array_equal(a, b) for a, b in zip(same, again, strict=True))


@settings(max_examples=60, deadline=None)
@given(session_lists)
def test_collate_matches_prefixes(seqs):
    ex = Sessions.from_lists(seqs).prefixes()
    if not len(ex):
        return
    batch = collate(ex, np.arange(len(ex)))
    assert batch.index.tolist() == list(range(len(ex)))
    for row, n, target, i in zip(
        batch.items, batch.lengths, batch.targets, range(len(ex)), strict=True
    ):
        assert row[:n].tolist() == ex.sequence(i).tolist()
        assert (row[n:] == 0).all()
        assert target.item() == ex.target[i]


def test_length_sorted_evaluation_batches():
    ex = Sessions.from_lists([[1, 2, 3, 4], [5, 6], [7, 8, 9]]).prefixes()
    lengths = [ex.length[b].tolist() for b in batch_indices(ex, 2)]
    assert lengths == [[1, 1], [1, 2], [2, 3]]


def test_bucket_batches_zero_is_the_seeded_permutation_cut_in_order():
    ex = Sessions.from_lists([[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11], [12, 13]]).prefixes()
    perm = np.random.default_rng(3).permutation(len(ex))
    uniform = batch_indices(ex, 3, shuffle=True, seed=3)  # the default, as the Trainer's
    assert [b.tolist() for b in uniform] == [perm[i : i + 3].tolist() for i in range(0, len(ex), 3)]
    bucketed = batch_indices(ex, 3, shuffle=True, seed=3, bucket_batches=64)  # sorted in windows
    assert all(np.all(np.diff(ex.length[b]) >= 0) for b in bucketed)


def test_runs_from_before_bucket_batches_resume_bucketed_as_they_were(tiny, tmp_path):
    import json

    from sessionrec.models import create
    from sessionrec.training.config import TrainConfig
    from sessionrec.training.run import prepare_resume, train_and_evaluate

    run = tmp_path / "old"
    config = TrainConfig(epochs=1, batch_size=512, num_threads=1)
    train_and_evaluate(create("pop", tiny.num_items), tiny, config, run)
    assert TrainConfig().bucket_batches == 0  # uniform batches by default
    recorded = json.loads((run / "config.json").read_text())
    del recorded["train"]["bucket_batches"]  # as config.json was written before 2026-12-04
    (run / "config.json").write_text(json.dumps(recorded))
    assert prepare_resume(run, "pop")[2].bucket_batches == 64


def test_session_chunks_give_each_chunk_its_prefixes_in_turn():
    """STAMP's code: sessions with equally many examples, in chunks of `batch_size` sessions;
    a chunk's j-th batch holds its sessions' inputs of length j + 1, none padded."""
    seqs = [[1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11, 12], [13, 14, 15], [16, 17]]
    ex = Sessions.from_lists(seqs).prefixes()
    batches = batch_indices(ex, 2, shuffle=True, seed=5, sessions=True)
    starts = [sorted(set(ex.start[b].tolist())) for b in batches]
    lengths = [ex.length[b].tolist() for b in batches]
    assert all(len(set(n)) == 1 for n in lengths)  # one input length a batch: no padding
    # 3 sessions of 2 examples: chunks of 2 and 1 sessions, 2 batches each; 2 sessions of 1
    # example: 1 batch; the 4-click session: 3 batches. 4 + 1 + 3 = 8 batches
    assert len(batches) == 8 and sorted(len(b) for b in batches) == [1] * 5 + [2] * 3
    for i in range(len(batches)):  # a chunk's batches are consecutive, lengths 1, 2, ...
        if lengths[i][0] > 1:
            assert starts[i - 1] == starts[i] and lengths[i - 1][0] == lengths[i][0] - 1
    again = batch_indices(ex, 2, shuffle=True, seed=5, sessions=True)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
