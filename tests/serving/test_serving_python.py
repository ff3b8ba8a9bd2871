"""The Python serving API: original ids, unknown ids, truncation, exclusion, FOCOL precompute."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sessionrec.errors import ConfigError, RunError
from sessionrec.models.base import Recommender
from sessionrec.serving import SessionRecommender, UnknownItemsError
from sessionrec.serving.batcher import DynamicBatcher
from sessionrec.serving.vocab import ITEM_IDS_FILE, ItemVocabulary


def test_matches_the_models_own_recommend(stamp_run):
    rec = SessionRecommender.load(stamp_run)
    model = Recommender.load(stamp_run)
    for session in ([3, 17, 5], [42], [1, 2, 3, 4, 5, 6, 7]):
        got = rec.recommend(session, k=10)
        want = model.recommend(session, 10)
        assert got.items == [i for i, _ in want]
        assert got.scores == pytest.approx([s for _, s in want], abs=1e-5)
        assert got.unknown_items == []


def test_batch_equals_single(stamp_run):
    rec = SessionRecommender.load(stamp_run)
    sessions = [[3, 17, 5], [42], [8, 9, 10, 11, 12, 13, 14, 15]]
    batch = rec.recommend_batch(sessions, k=5)
    for session, got in zip(sessions, batch, strict=True):
        single = rec.recommend(session, k=5)
        assert got.items == single.items
        assert got.scores == pytest.approx(single.scores, abs=1e-5)


def test_unknown_items_are_dropped_and_reported(stamp_run):
    rec = SessionRecommender.load(stamp_run)
    got = rec.recommend([3, 999, "x", 17, 0, 5, True], k=5)
    assert got.unknown_items == [999, "x", 0, True]
    assert got.items == rec.recommend([3, 17, 5], k=5).items
    assert rec.recommend(["3", "17"], k=3).items == rec.recommend([3, 17], k=3).items
    with pytest.raises(UnknownItemsError, match=r"none of its items is known.*999, 'x'"):
        rec.recommend([999, "x"])
    with pytest.raises(ConfigError, match="session is empty"):
        rec.recommend([])
    with pytest.raises(ConfigError, match="must be a list of item ids"):
        rec.recommend("3,17")
    with pytest.raises(ConfigError, match="k must be at least 1"):
        rec.recommend([3], k=0)
    with pytest.raises(UnknownItemsError, match=r"sessions\[1\]"):
        rec.recommend_batch([[3], ["nope"]])


def test_long_sessions_keep_their_most_recent_items(stamp_run):
    rec = SessionRecommender.load(stamp_run, max_len=4)
    long = list(range(1, 40))
    assert rec.prepare(long).items == [36, 37, 38, 39]
    assert rec.recommend(long, k=5).items == rec.recommend([36, 37, 38, 39], k=5).items
    assert SessionRecommender.load(stamp_run).max_len == 200  # STAMP sets no maximum
    with pytest.raises(ConfigError, match="max_len must be at least 1"):
        SessionRecommender.load(stamp_run, max_len=0)


def test_exclude_and_k_larger_than_the_catalogue(pop_run):
    rec = SessionRecommender.load(pop_run)
    top = rec.recommend([1], k=3).items
    got = rec.recommend([1], k=3, exclude=[top[0], "unknown-id"])
    assert top[0] not in got.items and got.items[:2] == top[1:]
    everything = rec.recommend([1], k=10_000)
    assert len(everything.items) == rec.model.num_items and 0 not in everything.items


def test_focol_never_reruns_fogcn_when_serving(focol_run, monkeypatch):
    import sessionrec.models.focol as focol

    rec = SessionRecommender.load(focol_run)
    assert rec.model.net.graph is None  # the FOG is not even loaded

    def forbidden(*args, **kwargs):
        raise AssertionError("FOGCN ran while serving")

    monkeypatch.setattr(focol, "fogcn", forbidden)
    got = rec.recommend([3, 17, 5], k=5)
    rec.recommend_batch([[1, 2], [4]], k=5)
    net = rec.model.net
    with torch.no_grad():  # the answer is h_s^T E^g with the saved E^g
        items, lengths = torch.tensor([[3, 17, 5]]), torch.tensor([3])
        scores = net.encode(net.global_emb, items, lengths) @ net.global_emb.t()
    scores[0, 0] = -torch.inf
    assert got.items == scores[0].topk(5).indices.tolist()


def test_prepared_dataset_serves_original_ids(prepared_run, prepared_dir, tmp_path, sku):
    rec = SessionRecommender.load(prepared_run)
    assert rec.vocab.kind == "original"
    model = Recommender.load(prepared_run)
    got = rec.recommend([sku(3), sku(17), "not-an-item", sku(5)], k=5)
    assert got.items == [sku(i) for i, _ in model.recommend([3, 17, 5], 5)]
    assert got.unknown_items == ["not-an-item"]
    assert all(isinstance(i, str) for i in got.items)
    assert rec.recommend([3, sku(1)], k=3).unknown_items == [3]  # internal ids are not ids here
    # The vocabulary was copied into the run: the run serves without its dataset.
    copied = json.loads((prepared_run / ITEM_IDS_FILE).read_text())
    assert copied == json.loads((prepared_dir / ITEM_IDS_FILE).read_text())
    moved = tmp_path / "run-copy"
    shutil.copytree(prepared_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["dataset"]["dataset"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    assert SessionRecommender.load(moved).recommend([sku(3)], k=5).items[0].startswith("sku-")
    (moved / ITEM_IDS_FILE).unlink()
    with pytest.raises(RunError, match="is gone"):
        SessionRecommender.load(moved)


def test_vocabulary_checks():
    with pytest.raises(RunError, match="2 ids but the model has 3 items"):
        ItemVocabulary(3, ["a", "b"])
    v = ItemVocabulary(3)
    assert [v.lookup(x) for x in (1, "2", " 3 ", 4, 0, -1, "²", 1.0, None)] == [
        1,
        2,
        3,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_info_reports_model_and_metrics(focol_run):
    info = SessionRecommender.load(focol_run).info()
    assert info["model"] == "focol" and info["num_items"] == 300
    assert info["params"]["embedding_dim"] == 32 and info["max_session_length"] == 300
    assert 0 < info["metrics"]["test"]["hr@20"] <= 1 and info["dataset"] == "synthetic"


async def _gather(batcher: DynamicBatcher, jobs):
    import asyncio

    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(s, k) for s, k in jobs))
    finally:
        await batcher.stop()


def test_batcher_merges_concurrent_requests(stamp_run):
    import asyncio

    rec = SessionRecommender.load(stamp_run)
    jobs = [([[3, 17, 5]], 5), ([[42]], 3), ([[1, 2], [7]], 4)]
    batcher = DynamicBatcher(rec.top_k, max_batch=64, max_wait_ms=50)
    results = asyncio.run(_gather(batcher, jobs))
    assert batcher.stats.batches == 1 and batcher.stats.sessions == 4
    for (sessions, k), got in zip(jobs, results, strict=True):
        want = rec.top_k(sessions, k)
        assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in want]
    off = DynamicBatcher(rec.top_k, max_batch=1)
    asyncio.run(_gather(off, jobs))
    assert off.stats.batches == 3  # a job is never split; batching off means one per job
    inline = DynamicBatcher(rec.top_k, max_batch=64, max_wait_ms=50, threaded=False)
    assert asyncio.run(_gather(inline, jobs)) == results and inline.stats.batches == 1


def test_batcher_isolates_a_failing_request(stamp_run):
    import asyncio

    rec = SessionRecommender.load(stamp_run)
    batcher = DynamicBatcher(rec.top_k, max_batch=64, max_wait_ms=50)

    async def go():
        await batcher.start()
        try:
            good = batcher.submit([[3]], 2)
            bad = batcher.submit([[10_000]], 2)  # out of range: the merged pass fails
            return await asyncio.gather(good, bad, return_exceptions=True)
        finally:
            await batcher.stop()

    good, bad = asyncio.run(go())
    assert len(good[0]) == 2 and isinstance(bad, IndexError)
