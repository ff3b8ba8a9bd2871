"""Approximate top-k (serving/ann.py): the dot-product contract of every model, index answers
against exact scoring, exclusions, the one-line errors, and the `--ann` flag of the CLI and HTTP.
"""

from __future__ import annotations

import re
import shutil
import sys
from functools import partial
from importlib.util import find_spec

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import helpers
from helpers import small_hparams
from sessionrec.commands.serve import serve
from sessionrec.data.batching import collate
from sessionrec.errors import ConfigError
from sessionrec.models import NeuralRecommender, available, create
from sessionrec.serving import SessionRecommender
from sessionrec.serving.ann import AnnConfig, AnnIndex, default_nlist
from sessionrec.serving.app import create_app

needs_faiss = pytest.mark.skipif(
    find_spec("faiss") is None, reason="faiss-cpu is not installed (pip install faiss-cpu)"
)
# Models whose scores are not hₛᵀVᵢ: they must refuse --ann; every other model must pass it.
NOT_DOT_PRODUCT = {"itemknn", "pop", "repeatnet", "sknn", "stan", "vsknn"}
# FAISS indexes on the 300-item test catalogue: flat and IVF visiting every list are exact;
# HNSW over inner products is not, even with a candidate list the size of the catalogue
# (items with small norms can be unreachable in its graph), so it is held to a high recall.
EXACT_INDEXES = ["flat", "ivf,nlist=4,nprobe=4"]
INDEXES = [*EXACT_INDEXES, "hnsw,ef_search=300"]


def check_against_exact(spec: str, want, got, k: int) -> float:
    """`got` answers like `want` (exact); returns the share of the exact top-k it found.

    Exact indexes must give the same top-k; HNSW must give k items, sorted, with the exact
    scores (the callers hold its mean recall to ≥ 90 %).
    """
    assert len(got.items) == k == len(set(got.items))
    if spec in EXACT_INDEXES:
        assert got.items == want.items
        assert got.scores == pytest.approx(want.scores, rel=1e-4, abs=1e-5)
    assert got.scores == sorted(got.scores, reverse=True)
    exact_scores = dict(want.pairs())
    found = [(s, exact_scores[i]) for i, s in got.pairs() if i in exact_scores]
    assert [a for a, _ in found] == pytest.approx([b for _, b in found], rel=1e-4, abs=1e-5)
    return len(found) / k


def sessions_of(tiny, n: int = 40) -> list[list[int]]:
    return [tiny.test.sequence(i).tolist() for i in range(n)]


@pytest.mark.parametrize("name", list(available()))
def test_dot_product_models_score_with_their_vectors(name, tiny):
    model = create(name, tiny.num_items, seed=0, **small_hparams(name))
    if isinstance(model, NeuralRecommender):
        model.prepare(tiny)  # graphs and tables the module derives from the training data
    batch = collate(tiny.test, np.arange(16))
    table = model.item_vectors()
    if name in NOT_DOT_PRODUCT:
        assert table is None
        with pytest.raises(ConfigError, match=f"model '{name}' does not score items by a dot"):
            model.session_vectors(batch)
        return
    assert table is not None and table.shape[0] == tiny.num_items + 1
    h = model.session_vectors(batch)
    assert h.shape == (16, table.shape[1])
    scores = model.score_batch(batch)[:, 1:]
    torch.testing.assert_close(h @ table[1:].t(), scores, rtol=1e-4, atol=1e-5)


def test_ann_config_flags():
    assert AnnConfig.parse("ivf") == AnnConfig() and AnnConfig.parse("hnsw").ef_search == 128
    c = AnnConfig.parse(" IVF, nprobe=64 ,nlist=100")
    assert (c.kind, c.nprobe, c.nlist) == ("ivf", 64, 100)
    assert AnnConfig.parse(c.spec()) == c and c.describe() == {
        "kind": "ivf",
        "nlist": 100,
        "nprobe": 64,
    }
    assert AnnConfig.parse("flat").spec() == "flat"
    bad = [
        ("annoy", "unknown index 'annoy' (choose hnsw, ivf, flat, int8)"),
        ("hnsw,nprobe=3", "'nprobe=3' is not an option of hnsw (options: m, ef_construction"),
        ("flat,m=3", "'m=3' is not an option of flat (options: none)"),
        ("hnsw,ef_search", "'ef_search' is not OPTION=INTEGER"),
        ("hnsw,ef_search=lots", "ef_search must be an integer, got 'lots'"),
        ("hnsw,m=0", "m must be at least 1, got 0"),
        ("ivf,nprobe=-1", "nprobe must be at least 1, got -1"),
    ]
    for spec, message in bad:
        with pytest.raises(ConfigError, match="^" + re.escape(f"--ann: {message}")):
            AnnConfig.parse(spec)
    assert default_nlist(1_000_000) == 4000 and default_nlist(300) == 7 and default_nlist(5) == 1


def test_unsupported_model_gives_one_clear_error(pop_run):
    with pytest.raises(ConfigError, match="model 'pop' does not score items by a dot product"):
        SessionRecommender.load(pop_run, ann="hnsw")


def test_missing_faiss_gives_one_clear_error(stamp_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    with pytest.raises(ConfigError, match=r"needs FAISS: pip install faiss-cpu"):
        SessionRecommender.load(stamp_run, ann="hnsw")


@needs_faiss
@pytest.mark.parametrize("spec", INDEXES)
@pytest.mark.parametrize("which", ["stamp_run", "focol_run"])
def test_indexes_give_the_exact_top_k(which, spec, request, tiny):
    run_dir = request.getfixturevalue(which)
    exact = SessionRecommender.load(run_dir)
    approx = SessionRecommender.load(run_dir, ann=spec)
    assert approx.ann is not None and approx.info()["ann"]["kind"] == spec.split(",")[0]
    sessions = sessions_of(tiny)
    want, got = exact.recommend_batch(sessions, k=20), approx.recommend_batch(sessions, k=20)
    recall = [check_against_exact(spec, w, g, 20) for w, g in zip(want, got, strict=True)]
    assert np.mean(recall) >= 0.9, recall
    single = exact.recommend(sessions[3], k=7), approx.recommend(sessions[3], k=7)
    assert check_against_exact(spec, *single, 7) >= 6 / 7


@needs_faiss
@pytest.mark.parametrize("spec", INDEXES)
def test_exclusions_are_respected(stamp_run, spec, tiny):
    exact = SessionRecommender.load(stamp_run)
    approx = SessionRecommender.load(stamp_run, ann=spec)
    sessions = sessions_of(tiny, 9)
    top = exact.recommend_batch(sessions, k=60)
    # per session: its 3 best items, or its 50 best (more than k), or nothing
    exclude = [r.items[: (3, 50, 0)[i % 3]] for i, r in enumerate(top)]
    want = exact.recommend_batch(sessions, k=20, exclude=exclude)
    got = approx.recommend_batch(sessions, k=20, exclude=exclude)
    recall = []
    for w, g, e in zip(want, got, exclude, strict=True):
        assert not set(g.items) & set(e)
        recall.append(check_against_exact(spec, w, g, 20))
    assert np.mean(recall) >= 0.9, recall


@needs_faiss
def test_approximate_index_finds_most_of_the_exact_top_k():
    """A real approximate setting on 20,000 clustered vectors: recall@20 well above chance."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(50, 32, generator=gen)
    items = centres[torch.randint(0, 50, (20_000,), generator=gen)]
    items = items + 0.5 * torch.randn(20_000, 32, generator=gen)
    queries = centres[:20] + 0.5 * torch.randn(20, 32, generator=gen)
    exact = (queries @ items.t()).topk(20).indices + 1
    for spec in ("hnsw,ef_search=64", "ivf,nprobe=8"):
        index = AnnIndex.from_vectors(items, spec)
        got = index.search(queries, 20)
        assert all(len(row) == 20 for row in got)
        recall = np.mean(
            [
                len({i for i, _ in row} & set(e.tolist())) / 20
                for row, e in zip(got, exact, strict=True)
            ]
        )
        assert recall >= 0.8, (spec, recall)
        scores = [s for _, s in got[0]]
        assert scores == sorted(scores, reverse=True)
        want = {i: float(queries[0] @ items[i - 1]) for i, _ in got[0]}
        assert scores == pytest.approx([want[i] for i, _ in got[0]], rel=1e-4)


@needs_faiss
def test_index_is_cached_in_the_run_directory(stamp_run, tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    shutil.copytree(stamp_run, run, ignore=shutil.ignore_patterns("ann-*"))
    session = [3, 17, 5]
    want = SessionRecommender.load(run, ann="hnsw,ef_search=300").recommend(session, 20).items
    [cached] = run.glob("ann-hnsw-m32-ef_construction64-*.faiss")

    def no_build(*args, **kwargs):
        raise AssertionError("the index was built again")

    with monkeypatch.context() as m:  # search options do not change the cached index
        m.setattr(AnnIndex, "from_vectors", no_build)
        again = SessionRecommender.load(run, ann="hnsw,ef_search=300")
        assert again.recommend(session, 20).items == want
        assert SessionRecommender.load(run, ann="hnsw,ef_search=50").ann.config.ef_search == 50
    assert list(run.glob("ann-*")) == [cached]

    cached.write_bytes(b"not an index")  # unreadable: rebuilt, with a warning
    with caplog.at_level("WARNING", logger="sessionrec.serving.ann"):
        assert SessionRecommender.load(run, ann="hnsw,ef_search=300").recommend(session, 20).items
    assert "rebuilding the ANN index: cannot read" in caplog.text
    assert cached.stat().st_size > 1000

    ivf = SessionRecommender.load(run, ann="ivf,nprobe=4")
    assert ivf.info()["ann"] == {"kind": "ivf", "nlist": 7, "nprobe": 4}
    assert len(list(run.glob("ann-ivf-nlist7-*.faiss"))) == 1
    with monkeypatch.context() as m:
        m.setattr(AnnIndex, "from_vectors", no_build)
        assert SessionRecommender.load(run, ann="ivf").info()["ann"]["nlist"] == 7

    model = ivf.model  # other item vectors: another file, never the stale index
    with torch.no_grad():
        model.net.item_emb.weight[5] += 1.0
    AnnIndex.build(model, "ivf", cache_dir=run)
    assert len(list(run.glob("ann-ivf-nlist7-*.faiss"))) == 2


# --- the --ann flag over HTTP and in the CLI ---------------------------------------------------
run_cli = partial(helpers.run_cli, timeout=120)


def cli_items(stdout: str) -> list[str]:
    rows = [line.strip("│ ").split("│") for line in stdout.splitlines()]
    return [r[1].strip() for r in rows if len(r) == 3 and r[0].strip().isdigit()]


@needs_faiss
def test_http_answers_with_the_index(stamp_run):
    exact = SessionRecommender.load(stamp_run)
    with TestClient(create_app(SessionRecommender.load(stamp_run, ann="flat"))) as c:
        r = c.post("/recommend", json={"session": [3, 17, 5], "k": 10, "exclude": [17]})
        assert r.status_code == 200, r.text
        assert r.json()["items"] == exact.recommend([3, 17, 5], k=10, exclude=[17]).items
        r = c.post("/recommend/batch", json={"sessions": [[3], [42, 7]], "k": 5})
        assert [x["items"] for x in r.json()["results"]] == [
            x.items for x in exact.recommend_batch([[3], [42, 7]], k=5)
        ]
        assert c.get("/model").json()["ann"] == {"kind": "flat"}
    with TestClient(create_app(exact)) as c:
        assert c.get("/model").json()["ann"] is None


@needs_faiss
def test_cli_recommend_with_ann(stamp_run, pop_run):
    session = "3,17,5"
    exact = run_cli("recommend", stamp_run, "--session", session, "--k", 10)
    approx = run_cli("recommend", stamp_run, "--session", session, "--k", 10, "--ann", "flat")
    assert exact.returncode == 0 == approx.returncode, approx.stderr
    assert cli_items(approx.stdout) == cli_items(exact.stdout) and len(cli_items(exact.stdout))
    for run_dir, flag, message in [
        (stamp_run, "annoy", "--ann: unknown index 'annoy'"),
        (pop_run, "hnsw", "--ann: model 'pop' does not score items by a dot product"),
    ]:
        proc = run_cli("recommend", run_dir, "--session", session, "--ann", flag)
        assert proc.returncode == 1 and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_serve_refuses_bad_ann_before_binding(stamp_run, pop_run):
    with pytest.raises(ConfigError, match="unknown index 'annoy'"):
        serve(stamp_run, ann="annoy")
    with pytest.raises(ConfigError, match="model 'pop' does not score items by a dot product"):
        serve(pop_run, ann="hnsw")
    with pytest.raises(ConfigError, match="model 'pop' does not score items by a dot product"):
        serve(pop_run, ann="ivf", workers=2)


@needs_faiss
def test_serve_command_with_ann(stamp_run, serve_cli):
    with serve_cli(stamp_run, "--ann", "hnsw,ef_search=300") as url:
        info = httpx.get(f"{url}/model").json()
        assert info["ann"] == {"kind": "hnsw", "m": 32, "ef_construction": 64, "ef_search": 300}
        r = httpx.post(f"{url}/recommend", json={"session": [3, 17, 5], "k": 10})
        # the same index, in process (recall against exact scoring is tested above)
        rec = SessionRecommender.load(stamp_run, ann="hnsw,ef_search=300")
        want = rec.recommend([3, 17, 5], k=10).items
        assert r.status_code == 200 and r.json()["items"] == want
