"""Approximate top-k (FAISS) against exact scoring on a synthetic 1M-item catalogue.

Usage:
    python benchmarks/ann.py [--items 1000000] [--dim 100] [--queries 1000] [--k 20]
        [--index hnsw ivf] [--ef-search 64,128,256] [--nprobe 16,32,64]
        [--models bprmf,focol] [--catalogue clustered|gaussian] [--threads 1] [--build-threads 2]
        [--cache DIR]
    python benchmarks/ann.py --run RUN_DIR [--queries 1024] ...
        (a trained dot-product run: its own item vectors and test prefixes)

The catalogue is `--items` vectors of `--dim` floats. `clustered` (default) mimics trained item
embeddings: 5,000 category centres, items = centre + noise, norms varying log-normally
(popularity); `gaussian` is isotropic noise, the hard case for any index. The catalogue is put
into real models of that size, served through `SessionRecommender` exactly as `sessionrec serve`
does (exact: every item scored; ANN: `ann=` an index over the same table):
- `bprmf`: the session vector is the mean of the session's item vectors (sessions of 1-10 items
  drawn from one category), so queries lie near the catalogue's categories as a trained
  model's do;
- `focol`: FOCOL's Transformer with random weights over E^g = the catalogue: queries in
  directions unrelated to the categories.
Each index is built once (`--build-threads`) and searched with several `ef_search`/`nprobe`
values. Reported per path: build time and memory, latency p50/p99 of one session per call and
of batches of 64 sessions (`--threads`), and recall@k: the share of the exact top-k the index
returns, over `--queries` sessions; with `--run`, also HR@k of each path's answers against
the test targets (the next item of each prefix). `--cache DIR` keeps built indexes (named as
the service names them) so a rerun with other search options does not build again.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sessionrec.models import create
from sessionrec.serving import SessionRecommender
from sessionrec.serving.ann import AnnConfig, AnnIndex, cache_name, import_faiss

CATEGORIES = 5000


def rss_mb() -> float:
    """Resident memory of this process (MB), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def catalogue(n: int, d: int, kind: str, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Item vectors (n + 1, d) with a zero padding row 0, and each item's category."""
    gen = torch.Generator().manual_seed(seed)
    category = torch.randint(0, CATEGORIES, (n,), generator=gen)
    if kind == "gaussian":
        table = torch.randn(n, d, generator=gen) * 0.1
    else:
        centres = torch.randn(CATEGORIES, d, generator=gen) * 0.1
        table = centres[category] + 0.07 * torch.randn(n, d, generator=gen)
        table *= torch.exp(0.3 * torch.randn(n, 1, generator=gen))  # popularity-like norms
    return torch.cat([torch.zeros(1, d), table]), category.numpy()


def sessions_for(category: np.ndarray, count: int, seed: int = 1) -> list[list[int]]:
    """`count` sessions of 1-10 items (mean ≈ 4), each from one category; ids 1..N."""
    rng = random.Random(seed)
    order = np.argsort(category, kind="stable")
    starts = np.searchsorted(category[order], np.arange(CATEGORIES + 1))
    out = []
    for _ in range(count):
        c = category[rng.randrange(len(category))]  # the category of a random item
        members = order[starts[c] : starts[c + 1]]
        length = min(rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10]), len(members))
        out.append([int(i) + 1 for i in rng.sample(list(members), length)])
    return out


def model_with_table(name: str, full: torch.Tensor):
    """Model `name` whose item vectors are `full` (N + 1, d; row 0 is padding), not copied."""
    model = create(name, full.shape[0] - 1, seed=0, embedding_dim=full.shape[1])
    net = model.net
    with torch.no_grad():
        net.item_emb.weight = torch.nn.Parameter(full, requires_grad=False)
        if hasattr(net, "global_emb"):  # FOCOL: E^g as if precomputed at load time
            net.global_emb = full
            net._stale = False
    return model


def timed(fn, calls: list, warm: int = 3) -> tuple[list[float], list]:
    for args in calls[:warm]:
        fn(*args)
    lat, out = [], []
    for args in calls:
        t = time.perf_counter()
        out.append(fn(*args))
        lat.append(time.perf_counter() - t)
    return lat, out


def pct(lat: list[float], q: int) -> float:
    return 1e3 * statistics.quantiles(lat, n=100, method="inclusive")[q - 1]


def run_path(rec: SessionRecommender, sessions: list[list[int]], k: int, single: int):
    """Latencies at batch 1 (first `single` sessions) and 64 (all), and the batch-64 answers."""
    prepared = [rec.prepare(s).items for s in sessions]
    lat1, _ = timed(rec.top_k, [([s], k) for s in prepared[:single]])
    batches = [prepared[i : i + 64] for i in range(0, len(prepared), 64)]
    lat64, answers = timed(rec.top_k, [(b, k) for b in batches], warm=1)
    return lat1, lat64, [[i for i, _ in row] for a in answers for row in a]


def report(label: str, lat1, lat64, recall: float | None, top: list, targets) -> None:
    r = "  exact" if recall is None else f"{100 * recall:6.2f} %"
    rate = len(top) / sum(lat64)
    hit = "" if targets is None else f"  HR@k {100 * hit_rate(top, targets):.2f} %"
    print(
        f"  {label:<26} recall@k {r}   batch 1: p50 {pct(lat1, 50):8.3f} p99 {pct(lat1, 99):8.3f}"
        f" ms   batch 64: p50 {pct(lat64, 50):8.2f} p99 {pct(lat64, 99):8.2f} ms"
        f" ({rate:,.0f} sessions/s){hit}",
        flush=True,
    )


def hit_rate(top: list[list[int]], targets: list[int]) -> float:
    """Share of sessions whose next item is in their top-k (HR@k of these answers)."""
    return float(np.mean([t in row for row, t in zip(top, targets, strict=True)]))


def index_bytes(index) -> int:
    """Bytes held by a FAISS HNSW-flat, IVF-flat or flat index (vectors, links, lists)."""
    faiss = import_faiss()
    n, d = index.ntotal, index.d
    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        return n * d * 4 + h.neighbors.size() * 4 + h.levels.size() * 4 + h.offsets.size() * 8
    if isinstance(index, faiss.IndexIVF):
        return n * (d * 4 + 8) + index.nlist * d * 4
    return n * d * 4


def trained_run(run_dir: str, count: int) -> tuple[torch.Tensor, dict, list[list[int]], list]:
    """A trained run's item vectors, its model, up to `count` test prefixes and their targets."""
    from sessionrec.data.sources import reload_dataset
    from sessionrec.models import Recommender

    model = Recommender.load(run_dir)
    config = json.loads((Path(run_dir) / "config.json").read_text())
    test = reload_dataset(config["dataset"]).test
    idx = random.Random(0).sample(range(len(test)), min(count, len(test)))
    table = model.item_vectors()
    if table is None:
        raise SystemExit(f"{run_dir}: model '{model.name}' does not score by a dot product")
    sessions = [test.sequence(i).tolist() for i in idx]
    return table[1:].detach(), {model.name: model}, sessions, [int(test.target[i]) for i in idx]


def build_index(table: torch.Tensor, config: AnnConfig, cache: str | None) -> AnnIndex:
    """Build (or read from `cache`) an index; print build time, memory and cached-start cost."""
    faiss = import_faiss()
    path = Path(cache) / cache_name(table, config) if cache else None
    if path is not None and path.is_file():
        t = time.perf_counter()
        index = AnnIndex.read(path, table.shape, config)
        if index is not None:
            print(f"{index.config.spec()}: read from {path} in {time.perf_counter() - t:.1f} s")
            return index
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    index = AnnIndex.from_vectors(table, config)
    build = time.perf_counter() - t
    gc.collect()
    size = index_bytes(index.index) / 2**20
    print(
        f"{index.config.spec()}: built in {build:.1f} s; index {size:,.0f} MB "
        f"(RSS +{rss_mb() - before:,.0f} MB; the exact path keeps only the model's "
        f"{table.numel() * 4 / 2**20:,.0f} MB table)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:  # what a cached start costs (serving/ann.py)
        target = path or Path(tmp) / "index.faiss"
        target.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        faiss.write_index(index.index, str(target))
        written = time.perf_counter() - t
        t = time.perf_counter()
        faiss.read_index(str(target))
        size, read = target.stat().st_size / 2**20, time.perf_counter() - t
        print(
            f"  cached: {size:,.0f} MB file, written in {written:.1f} s, read in {read:.1f} s",
            flush=True,
        )
    return index


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1024, help="Sessions for recall@k.")
    parser.add_argument("--single", type=int, default=300, help="Sessions timed at batch 1.")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--catalogue", choices=["clustered", "gaussian"], default="clustered")
    parser.add_argument("--models", default="bprmf,focol")
    parser.add_argument("--index", nargs="+", default=["hnsw", "ivf"], help="hnsw, ivf, flat")
    parser.add_argument("--m", type=int, default=AnnConfig.m)
    parser.add_argument("--ef-construction", type=int, default=AnnConfig.ef_construction)
    parser.add_argument("--ef-search", type=ints, default=[64, 128, 256])
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists (0: 4·√N).")
    parser.add_argument("--nprobe", type=ints, default=[16, 32, 64])
    parser.add_argument("--threads", type=int, default=1, help="Torch/FAISS threads for queries.")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--cache", help="Directory to keep built indexes in and reuse them from.")
    parser.add_argument("--run", help="A trained run: its item vectors and test prefixes instead.")
    args = parser.parse_args()
    faiss = import_faiss()

    t0 = time.perf_counter()
    if args.run:
        table, models, sessions, targets = trained_run(args.run, args.queries)
        what = f"{args.run}: {table.shape[0]:,} items x {table.shape[1]}"
    else:
        full, category = catalogue(args.items, args.dim, args.catalogue)
        table = full[1:]  # a view: items 1..N
        sessions, targets = sessions_for(category, args.queries), None
        models = {name: model_with_table(name, full) for name in args.models.split(",")}
        what = f"catalogue: {args.items:,} items x {args.dim} ({args.catalogue})"
    lengths = [len(s) for s in sessions]
    print(
        f"{what}, {len(sessions)} sessions (mean length {statistics.mean(lengths):.1f}), "
        f"k={args.k}, query threads {args.threads}, build threads {args.build_threads}, "
        f"faiss {faiss.__version__}, torch {torch.__version__} "
        f"({time.perf_counter() - t0:.1f} s to set up)",
        flush=True,
    )
    indexes = {}
    for kind in args.index:
        config = AnnConfig(kind, args.m, args.ef_construction, nlist=args.nlist)
        torch.set_num_threads(args.build_threads)
        indexes[kind] = build_index(table, config, args.cache)

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    for name, model in models.items():
        print(f"\n{name} (session vectors from its encoder):", flush=True)
        exact = SessionRecommender(model)
        lat1, lat64, want = run_path(exact, sessions, args.k, args.single)
        report("exact", lat1, lat64, None, want, targets)
        for kind, index in indexes.items():
            values = {"hnsw": args.ef_search, "ivf": args.nprobe}.get(kind, [0])
            option = {"hnsw": "ef_search", "ivf": "nprobe"}.get(kind)
            for v in values:
                config = replace(index.config, **({option: v} if option else {}))
                rec = SessionRecommender(model, ann=AnnIndex(index.index, index.num_items, config))
                lat1, lat64, got = run_path(rec, sessions, args.k, args.single)
                recall = np.mean(
                    [len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]
                )
                report(config.spec(), lat1, lat64, float(recall), got, targets)


if __name__ == "__main__":
    main()
