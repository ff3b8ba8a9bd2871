"""Local-invariance experiment of the LINet paper (Sec. III-E, Eq. 14, Fig. 1).

Item similarity (Eq. 14) from the training sessions, pairs of test cases whose inputs match
under it, and per model the share of pairs where both cases hit.

Spec: docs/linet.md#local-invariance-experiment-sec-iii-e-fig-1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec.errors import ConfigError

if TYPE_CHECKING:
    from sessionrec.data.sessions import Examples, Sessions
    from sessionrec.evaluation import Scorer

DEFAULT_THETAS = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
CHUNK_CELLS = 2_000_000  # pairs × L² similarity cells held at once


@dataclass(frozen=True)
class ItemSimilarity:
    """Eq. 14 as a sorted sparse table: `keys` = u·(N+1) + v for every stored (u, v)."""

    keys: np.ndarray
    values: np.ndarray
    num_items: int

    @classmethod
    def from_table(cls, table: dict[tuple[int, int], float], num_items: int) -> ItemSimilarity:
        """From {(u, v): sim}; symmetric (v, u) entries are added."""
        pairs = {**{(v, u): s for (u, v), s in table.items()}, **table}
        keys = np.array([u * (num_items + 1) + v for u, v in pairs], dtype=np.int64)
        order = np.argsort(keys)
        return cls(keys[order], np.array(list(pairs.values()), dtype=np.float64)[order], num_items)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """sim(u, v) elementwise (1 where u == v, 0 for items never in one session)."""
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        out = np.where(u == v, 1.0, 0.0)
        if len(self.keys):
            query = u * (self.num_items + 1) + v
            pos = np.searchsorted(self.keys, query).clip(max=len(self.keys) - 1)
            out = np.where((self.keys[pos] == query) & (u != v), self.values[pos], out)
        return out


def item_similarity(sessions: Sessions, num_items: int) -> ItemSimilarity:
    """Eq. 14 from training sessions; each session counts once per item pair (minimum distance)."""
    lengths = sessions.lengths
    n = len(sessions.items)
    sess = np.repeat(np.arange(len(sessions)), lengths)
    later = sessions.offsets[1:][sess] - np.arange(n) - 1  # positions after p in its session
    p = np.repeat(np.arange(n), later)
    first = np.cumsum(later) - later
    q = p + 1 + np.arange(len(p)) - np.repeat(first, later)
    u, v = sessions.items[p], sessions.items[q]
    keep = u != v
    s, a, b, dist = sess[p][keep], np.minimum(u, v)[keep], np.maximum(u, v)[keep], (q - p)[keep]
    order = np.lexsort((dist, b, a, s))
    s, a, b, dist = s[order], a[order], b[order], dist[order]
    head = np.ones(len(s), bool)
    head[1:] = (s[1:] != s[:-1]) | (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, dist = a[head], b[head], dist[head]  # one (session, pair) with its smallest distance
    pair = a * (num_items + 1) + b
    uniq, inverse, n_sessions = np.unique(pair, return_inverse=True, return_counts=True)
    total = np.bincount(inverse, weights=1.0 / np.log2(dist + 1.0), minlength=len(uniq))
    sim = total / n_sessions
    ua, ub = uniq // (num_items + 1), uniq % (num_items + 1)
    keys = np.concatenate([uniq, ub * (num_items + 1) + ua])
    order = np.argsort(keys, kind="stable")
    return ItemSimilarity(keys[order], np.concatenate([sim, sim])[order], num_items)


def candidate_pairs(lengths: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """All (i, j), i < j in a group, of cases with equal input length and next item (P, 2)."""
    order = np.lexsort((np.arange(len(lengths)), targets, lengths))
    sl, st = lengths[order], targets[order]
    new = np.ones(len(order), bool)
    new[1:] = (sl[1:] != sl[:-1]) | (st[1:] != st[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(order))
    pos = np.arange(len(order))
    later = ends[np.cumsum(new) - 1] - pos - 1  # group members after this one
    a = np.repeat(pos, later)
    first = np.cumsum(later) - later
    b = a + 1 + np.arange(len(a)) - np.repeat(first, later)
    return np.stack([order[a], order[b]], axis=1).astype(np.int64)


def has_perfect_matching(adj: np.ndarray) -> np.ndarray:
    """For a stack of square bipartite graphs (P, L, L) bool: is there a perfect matching?

    Cheap tests first (every row and column has an edge; the identity matching); the rest go
    to scipy's Hopcroft–Karp on one block-diagonal graph of all remaining pairs.
    """
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_bipartite_matching

    n_pairs, size, _ = adj.shape
    covered = adj.any(2).all(1) & adj.any(1).all(1)
    diag = adj[:, np.arange(size), np.arange(size)].all(1)
    result = covered & diag
    rest = np.flatnonzero(covered & ~diag)
    if len(rest):
        blk, r, c = np.nonzero(adj[rest])
        dim = len(rest) * size
        graph = csr_array(
            (np.ones(len(blk), np.int8), (blk * size + r, blk * size + c)), shape=(dim, dim)
        )
        match = maximum_bipartite_matching(graph, perm_type="column")
        result[rest] = (match >= 0).reshape(len(rest), size).all(1)
    return result


def find_pairs(
    test: Examples,
    sim: ItemSimilarity,
    thetas: Sequence[float],
    beta: int | None = 3,
    exclude_identical: bool = False,
) -> dict[float, np.ndarray]:
    """Pairs (P, 2) of test-case indices meeting conditions 1–3 of Sec. III-E for each θ.

    `beta=None` drops the index condition |p − q| < β. Pairs of cases with identical inputs
    qualify (sim(v, v) = 1) unless `exclude_identical`.
    """
    thetas = sorted(float(t) for t in thetas)
    cand = candidate_pairs(test.length, test.target)
    found: dict[float, list[np.ndarray]] = {t: [] for t in thetas}
    for size in np.unique(test.length[cand[:, 0]]):
        group = cand[test.length[cand[:, 0]] == size]
        cols = np.arange(size)
        band = np.abs(cols[:, None] - cols[None, :]) < (beta if beta is not None else size + 1)
        step = max(1, CHUNK_CELLS // (size * size))
        for s in range(0, len(group), step):
            chunk = group[s : s + step]
            left = test.items[test.start[chunk[:, 0]][:, None] + cols]  # (P, L)
            right = test.items[test.start[chunk[:, 1]][:, None] + cols]
            if exclude_identical:
                distinct = (left != right).any(1)
                chunk, left, right = chunk[distinct], left[distinct], right[distinct]
            weights = sim(left[:, :, None], right[:, None, :])  # (P, L, L)
            alive = np.arange(len(chunk))
            for theta in thetas:  # a larger θ keeps a subset of the pairs of a smaller one
                ok = has_perfect_matching((weights[alive] > theta) & band)
                alive = alive[ok]
                found[theta].append(chunk[alive])
    return {t: np.concatenate(v) if v else np.zeros((0, 2), np.int64) for t, v in found.items()}


def identical_inputs(test: Examples, pairs: np.ndarray) -> np.ndarray:
    """Per pair (P, 2) of equal-length cases: are the two inputs the same sequence?"""
    same = np.zeros(len(pairs), bool)
    for size in np.unique(test.length[pairs[:, 0]]):
        rows = np.flatnonzero(test.length[pairs[:, 0]] == size)
        cols = np.arange(size)
        left = test.items[test.start[pairs[rows, 0]][:, None] + cols]
        right = test.items[test.start[pairs[rows, 1]][:, None] + cols]
        same[rows] = (left == right).all(1)
    return same


def case_hits(
    model: Scorer,
    examples: Examples,
    k: int = 20,
    batch_size: int = 500,
    max_len: int | None = None,
) -> np.ndarray:
    """Per case: probability that the true next item is in the model's top k (expected ties)."""
    from sessionrec.evaluation import evaluate

    if len(examples) == 0:
        return np.zeros(0)
    return evaluate(model, examples, (k,), batch_size, max_len=max_len).per_case[f"hr@{k}"]


def pair_share(hits: np.ndarray, pairs: np.ndarray) -> float | None:
    """Share of pairs whose two cases both hit (None when there are no pairs)."""
    if len(pairs) == 0:
        return None
    return float((hits[pairs[:, 0]] * hits[pairs[:, 1]]).mean())


def parse_thetas(text: str) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2]; each θ in [0, 1)."""
    try:
        values = sorted({float(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"--theta must be comma-separated numbers, got '{text}'") from None
    if not values or any(not 0 <= t < 1 for t in values):
        raise ConfigError(f"--theta values must lie in [0, 1), got '{text}'")
    return values


def local_invariance(
    run_dirs: Sequence[str | Path],
    thetas: Sequence[float],
    beta: int | None = 3,
    k: int = 20,
    exclude_identical: bool = False,
) -> dict[str, Any]:
    """Pairs per θ and each run's share of pairs predicted correctly in both cases."""
    from sessionrec.analysis.runs import runs_on_one_dataset
    from sessionrec.models.params import build_params
    from sessionrec.models.registry import load_run
    from sessionrec.training.config import TrainConfig

    configs, dataset = runs_on_one_dataset(run_dirs)
    source = configs[0]["dataset"]
    sim = item_similarity(dataset.train_sessions, dataset.num_items)
    thetas = sorted(float(t) for t in thetas)
    pairs = find_pairs(dataset.test, sim, thetas, beta, exclude_identical)
    involved = np.unique(np.concatenate([p.ravel() for p in pairs.values()]))
    test = dataset.test
    result: dict[str, Any] = {
        "dataset": source,
        "k": k,
        "beta": beta,
        "exclude_identical": exclude_identical,
        "theta": thetas,
        "pairs": [len(pairs[t]) for t in thetas],
        "identical_pairs": [int(identical_inputs(test, pairs[t]).sum()) for t in thetas],
        "mean_length": [  # l of the paper: input length + the next item
            float(test.length[pairs[t][:, 0]].mean() + 1) if len(pairs[t]) else None for t in thetas
        ],
        "models": {},
    }
    for run_dir, config in zip(run_dirs, configs, strict=True):
        model, _ = load_run(run_dir)
        train = build_params(TrainConfig, config["train"], "training")
        hits = np.zeros(len(test))
        hits[involved] = case_hits(
            model, test.subset(involved), k, train.eval_batch_size, train.max_len
        )
        label = model.name
        if label in result["models"]:
            label = f"{model.name} ({Path(run_dir).name})"
        result["models"][label] = {
            "run": str(run_dir),
            "model": model.name,
            "share": [pair_share(hits, pairs[t]) for t in thetas],
        }
    return result


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Fig. 1: one line per model, share of pairs (%) against θ; written as PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    thetas = result["theta"]
    for label, entry in result["models"].items():
        ys = [np.nan if v is None else 100 * v for v in entry["share"]]
        ax.plot(thetas, ys, marker="o", label=label)
    ax.set_xticks(thetas, [f"{t:g}\n{n}" for t, n in zip(thetas, result["pairs"], strict=True)])
    ax.set_xlabel("θ (second line: number of pairs)")
    ax.set_ylabel(f"pairs with both next items in top {result['k']} (%)")
    ax.set_title(f"local invariance (β = {result['beta'] or '∞'})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
