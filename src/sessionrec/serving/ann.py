"""Top-k for dot-product models without scoring every float32 item vector: a FAISS
inner-product index (approximate), or an int8 copy of the table (exact, `Int8Index`).

`AnnIndex.build(model, AnnConfig.parse("ivf"))` indexes the model's item vectors (items
1..N, never the padding row 0; FOCOL's precomputed E^g) and `search(session_vectors, k,
exclude)` answers with (item, score) pairs like the exact path: scores are inner products
hₛᵀVᵢ, best first. Exclusions are handled by fetching k + |exclude| candidates and dropping
the excluded ones. Only models whose scores are such an inner product have item vectors
(`Recommender.item_vectors`); others get one clear error. FAISS is optional
(`pip install 'sessionrec[ann]'` or `pip install faiss-cpu`) and imported only here; the
int8 index needs only numba (serving/int8_kernels.py; docs/serving.md#int8-item-table).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from math import inf
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sessionrec.errors import ConfigError
from sessionrec.io import atomic_write
from sessionrec.models.base import Recommender

log = logging.getLogger(__name__)
KINDS = ("hnsw", "ivf", "flat", "int8")
# Beyond this many sessions per call the int8 index scores with one float32 matrix product,
# which is faster there (docs/serving.md#int8-item-table).
INT8_MAX_BATCH = 2
# Which options each index kind takes (the rest of AnnConfig's fields).
OPTIONS = {
    "hnsw": ("m", "ef_construction", "ef_search"),
    "ivf": ("nlist", "nprobe"),
    "flat": (),
    "int8": (),
}


@dataclass
class AnnConfig:
    """Index kind and parameters; `AnnConfig.parse("hnsw,ef_search=256")` reads a flag."""

    # ivf (inverted lists, k-means), hnsw (graph), flat (exact, for checks), int8 (exact)
    kind: str = "ivf"
    m: int = 32  # HNSW: links per node
    ef_construction: int = 64  # HNSW: candidate list while building
    ef_search: int = 128  # HNSW: candidate list per query (raised to the fetched count)
    nlist: int = 0  # IVF: lists; 0 picks 4·√N (at most N / 39, at least 1)
    nprobe: int = 32  # IVF: lists visited per query

    @classmethod
    def parse(cls, spec: str | AnnConfig) -> AnnConfig:
        """`KIND[,OPTION=INT,...]`, e.g. `hnsw`, `hnsw,ef_search=256`, `ivf,nprobe=64`."""
        if isinstance(spec, AnnConfig):
            spec.check()
            return spec
        kind, *pairs = [part.strip() for part in str(spec).split(",")]
        kind = kind.lower()
        if kind not in KINDS:
            raise ConfigError(f"--ann: unknown index '{kind}' (choose {', '.join(KINDS)})")
        values: dict[str, Any] = {}
        for pair in pairs:
            name, eq, value = pair.partition("=")
            name = name.strip()
            if not eq:
                raise ConfigError(f"--ann: '{pair}' is not OPTION=INTEGER")
            if name not in OPTIONS[kind]:
                allowed = ", ".join(OPTIONS[kind]) or "none"
                raise ConfigError(
                    f"--ann: '{pair}' is not an option of {kind} (options: {allowed})"
                )
            try:
                values[name] = int(value)
            except ValueError:
                raise ConfigError(f"--ann: {name} must be an integer, got '{value}'") from None
        config = cls(kind, **values)
        config.check()
        return config

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"--ann: unknown index '{self.kind}' (choose {', '.join(KINDS)})")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "kind" and (value < 0 or (value == 0 and f.name != "nlist")):
                raise ConfigError(f"--ann: {f.name} must be at least 1, got {value}")

    def spec(self) -> str:
        """The flag form of this configuration (round-trips through `parse`)."""
        return ",".join([self.kind] + [f"{k}={getattr(self, k)}" for k in OPTIONS[self.kind]])

    def describe(self) -> dict[str, Any]:
        """The kind and its own options (what `GET /model` reports)."""
        return {k: v for k, v in asdict(self).items() if k == "kind" or k in OPTIONS[self.kind]}


def import_faiss() -> Any:
    """The `faiss` module, or one clear error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise ConfigError(
            "approximate top-k needs FAISS: pip install faiss-cpu (or 'sessionrec[ann]')"
        ) from None
    return faiss


def cache_name(vectors: torch.Tensor, config: AnnConfig) -> str:
    """File name of a cached index: its build options and a hash of the indexed vectors."""
    build = {"hnsw": ("m", "ef_construction"), "ivf": ("nlist",)}.get(config.kind, ())
    n = vectors.shape[0]
    values = {**asdict(config), "nlist": config.nlist or default_nlist(n)}
    options = "".join(f"-{k}{values[k]}" for k in build)
    digest = hashlib.sha256(vectors.numpy().tobytes()).hexdigest()[:16]
    return f"ann-{config.kind}{options}-{digest}.faiss"


def default_nlist(n: int) -> int:
    """4·√N inverted lists, with at least 39 training points per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def item_vectors(model: Recommender) -> torch.Tensor:
    """The model's item table (N + 1, d), or one clear error for a model that has none."""
    table = model.item_vectors()
    if table is None:
        raise ConfigError(
            f"--ann: model '{model.name}' does not score items by a dot product of a "
            "session vector and an item table, so it has no top-k index (drop --ann)"
        )
    return table


class AnnIndex:
    """A FAISS inner-product index over items 1..N of a dot-product model."""

    def __init__(self, index: Any, num_items: int, config: AnnConfig) -> None:
        self.index, self.num_items, self.config = index, num_items, config

    @classmethod
    def build(
        cls,
        model: Recommender,
        config: AnnConfig | str = "ivf",
        cache_dir: str | Path | None = None,
    ) -> AnnIndex:
        """Index `model.item_vectors()` (rows 1..N) with FAISS's threads = torch's.

        With `cache_dir` (the run directory when serving) the built index is saved there as
        `ann-<build options>-<hash of the item vectors>.faiss` and read back next time, so a
        large catalogue's index is built once per model, not at every start.
        """
        config = AnnConfig.parse(config)
        vectors = item_vectors(model)[1:].detach().cpu().float().contiguous()
        if cache_dir is None or config.kind == "int8":  # int8 quantises in milliseconds
            return cls.from_vectors(vectors, config)
        path = Path(cache_dir) / cache_name(vectors, config)
        cached = cls.read(path, vectors.shape, config)
        if cached is not None:
            return cached
        index = cls.from_vectors(vectors, config)
        faiss = import_faiss()
        try:
            atomic_write(path, lambda tmp: faiss.write_index(index.index, tmp))
        except (OSError, RuntimeError) as e:  # a read-only run directory still serves
            log.warning("could not save the ANN index to %s: %s", path, e)
        return index

    @classmethod
    def read(cls, path: Path, shape: tuple[int, ...], config: AnnConfig) -> AnnIndex | None:
        """A cached index for `shape` (N, d) items, or None if absent or unreadable."""
        if not path.is_file():
            return None
        faiss = import_faiss()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:
            log.warning("rebuilding the ANN index: cannot read %s (%s)", path, e)
            return None
        if (index.ntotal, index.d) != tuple(shape):
            log.warning("rebuilding the ANN index: %s does not match the model", path)
            return None
        if config.kind == "ivf":
            config = replace(config, nlist=index.nlist)
        return cls(index, index.ntotal, config)

    @classmethod
    def from_vectors(cls, vectors: torch.Tensor, config: AnnConfig | str = "ivf") -> AnnIndex:
        """Index the rows of `vectors` (N, d) as items 1..N."""
        config = AnnConfig.parse(config)
        if config.kind == "int8":
            return Int8Index(vectors, config)
        faiss = import_faiss()
        faiss.omp_set_num_threads(torch.get_num_threads())
        data = np.ascontiguousarray(vectors.detach().cpu().float().numpy())
        n, d = data.shape
        if config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, config.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
        elif config.kind == "ivf":
            config = replace(config, nlist=config.nlist or default_nlist(n))
            if config.nlist > n:
                raise ConfigError(f"--ann: nlist={config.nlist} is more than the {n:,} items")
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, config.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.max_points_per_centroid = 64  # k-means on at most 64 points per list
            index.train(data)
        else:
            index = faiss.IndexFlatIP(d)
        index.add(data)
        return cls(index, n, config)

    def search(
        self, queries: torch.Tensor, k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k (item, inner product) per row of `queries` (B, d); `exclude[i]` left out."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        excluded = [set(e) for e in exclude or []]
        excluded += [set() for _ in range(len(queries) - len(excluded))]
        fetch = min(self.num_items, k + max((len(e) for e in excluded), default=0))
        q = np.ascontiguousarray(queries.detach().cpu().float().numpy())
        scores, labels = self.index.search(q, fetch, params=self._params(fetch))
        out = []
        for row_scores, row_labels, skip in zip(
            scores.tolist(), labels.tolist(), excluded, strict=True
        ):
            row = [
                (label + 1, s)
                for label, s in zip(row_labels, row_scores, strict=True)
                if label >= 0 and label + 1 not in skip
            ]
            out.append(row[:k])
        return out

    def _params(self, fetch: int) -> Any:
        faiss = import_faiss()
        c = self.config
        if c.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(c.ef_search, fetch))
        if c.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=c.nprobe)
        return None


class Int8Index(AnnIndex):
    """Exact top-k from an int8 copy of the item vectors (serving/int8_kernels.py).

    Every item gets an upper bound of its float32 score from the int8 copy, a quarter of the
    float32 table's bytes; only the items whose bound reaches the k-th best float32 score are
    scored in float32. So answers are float32's top-k, scores included, up to the order of
    scores equal within float32 rounding.
    """

    def __init__(self, vectors: torch.Tensor, config: AnnConfig) -> None:
        from sessionrec.serving.int8_kernels import error_factor, quantize_rows

        self.vectors = vectors.detach().cpu().float().contiguous()  # rows are items 1..N
        n, d = self.vectors.shape
        super().__init__(None, n, config)
        self.codes, self.scale = quantize_rows(self.vectors.numpy())
        self.factor = error_factor(d)
        self.rescored = 0  # items scored in float32 by the last call, over all its sessions

    def search(
        self, queries: torch.Tensor, k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k (item, float32 inner product) per row of `queries` (B, d); `exclude[i]` left
        out. Exact: see the class docstring."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        q = queries.detach().cpu().float().contiguous()
        k = min(k, self.num_items)
        if len(q) > INT8_MAX_BATCH:  # one float32 matrix product is the faster pass here
            values, labels = _masked(q @ self.vectors.T, exclude).topk(k, dim=1)
            self.rescored = q.shape[0] * self.num_items
            rows = zip(labels.tolist(), values.tolist(), strict=True)
        else:
            rows = self._int8_top_k(q.numpy(), k, exclude)
        return [
            [(label + 1, s) for label, s in zip(row_labels, row_values, strict=True) if s != -inf]
            for row_labels, row_values in rows
        ]

    def _int8_top_k(
        self, q: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None
    ) -> list[tuple[list[int], list[float]]]:
        from sessionrec.serving.int8_kernels import exact_top_k, int8_upper_bounds

        slack = (np.abs(q).sum(axis=1) * self.factor).astype(np.float32)
        bounds = np.empty((len(q), self.num_items), dtype=np.float32)
        int8_upper_bounds(self.codes, self.scale, q, slack, bounds)
        _masked(torch.from_numpy(bounds), exclude)  # in place: the tensor shares the array
        vectors = self.vectors.numpy()
        values, labels = np.empty(k, dtype=np.float32), np.empty(k, dtype=np.int64)
        rows, self.rescored = [], 0
        for bound, query in zip(bounds, q, strict=True):
            self.rescored += exact_top_k(vectors, bound, query, values, labels)
            rows.append((labels.tolist(), values.tolist()))
        return rows


def _masked(scores: torch.Tensor, exclude: Sequence[Sequence[int]] | None) -> torch.Tensor:
    """`scores` (B, N) over items 1..N with each row's excluded items set to −inf, in place."""
    for row, skip in zip(scores, exclude or [], strict=False):
        ids = [i - 1 for i in skip if 1 <= i <= len(row)]
        if ids:
            row[ids] = -inf
    return scores
