"""`SessionRecommender`: a trained run answering live sessions in the user's own item ids.

`SessionRecommender.load(run_dir)` rebuilds the model once (`Recommender.load`, safetensors),
so whatever a model precomputes is done at load time and a request runs only the session
encoder and the scoring: FOCOL's global embeddings E^g are saved with its weights and a loaded
FOCOL has no graph, so FOGCN never runs while serving. The CLI `recommend` command, the HTTP
service and the load benchmark all answer through this class.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sessionrec.data.batching import Batch
from sessionrec.errors import ConfigError
from sessionrec.models.base import NeuralRecommender, Recommender, not_online
from sessionrec.models.params import params_dict
from sessionrec.serving.live import SessionLog, check_sessions, fold, to_sessions
from sessionrec.serving.vocab import ItemId, ItemVocabulary, load_vocabulary

if TYPE_CHECKING:
    from sessionrec.serving.ann import AnnConfig, AnnIndex
    from sessionrec.serving.onnx import OnnxScorer

DEFAULT_MAX_LEN = 200  # kept clicks for models that set no maximum of their own
BACKENDS = ("torch", "onnx")  # what runs a neural model's forward pass (serving/onnx.py)


class UnknownItemsError(ConfigError):
    """No item of a session is known to the model (HTTP 422)."""


@dataclass
class Recommendation:
    """Top-k items (original ids) with their scores, best first, and the ids that were dropped."""

    items: list[ItemId]
    scores: list[float]
    unknown_items: list[ItemId] = field(default_factory=list)

    def pairs(self) -> list[tuple[ItemId, float]]:
        return list(zip(self.items, self.scores, strict=True))


@dataclass
class PreparedSession:
    """A session in internal ids, cut to the model's maximum, with what was dropped."""

    items: list[int]
    unknown_items: list[ItemId]


def model_max_len(model: Recommender, config: dict[str, Any] | None) -> int:
    """Clicks a session keeps: the run's `max_len`, else the model's position table, else 200."""
    train_max = ((config or {}).get("train") or {}).get("max_len")
    if train_max:
        return int(train_max)
    for name in ("max_len", "max_position"):
        value = getattr(model.params, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_LEN


def load_options(spec: dict[str, Any]) -> dict[str, Any]:
    """`SessionRecommender.load`'s keywords from `sessionrec serve`'s settings (serve.py)."""
    keys = ("max_len", "ann", "backend", "onnx_file")
    return {key: spec[key] for key in keys if spec.get(key) is not None}


def check_backend(backend: str) -> None:
    """Refuse an unknown backend."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)})")


def _show(items: Sequence[ItemId], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


class SessionRecommender:
    """Recommend next items for sessions given as original item ids in click order."""

    def __init__(
        self,
        model: Recommender,
        vocab: ItemVocabulary | None = None,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        max_len: int | None = None,
        ann: AnnIndex | AnnConfig | str | None = None,
        live: SessionLog | None = None,
    ) -> None:
        self.model = model
        # Sessions ingested live (serving/live.py): followed before each forward pass, under
        # a lock shared with the pass, so scoring never sees a half-updated model.
        self.live = live
        self.live_sessions = 0
        self.run_dir: Path | None = None  # set by `load`, with how it loaded (for reloads)
        self.load_options: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.vocab = vocab or ItemVocabulary(model.num_items)
        self.config = config or {}
        self.metrics = metrics or {}
        self.max_len = max_len if max_len is not None else model_max_len(model, self.config)
        if self.max_len < 1:
            raise ConfigError(f"max_len must be at least 1, got {self.max_len}")
        # Neural models score with their module directly, put in eval mode once here
        # (`score_batch` would call eval() on every request); others go through score_batch.
        self._net: torch.nn.Module | None = None
        if isinstance(model, NeuralRecommender) and (
            type(model).score_batch is NeuralRecommender.score_batch
        ):
            self._net = model.net.eval()
        # Approximate top-k (serving/ann.py): an index over the item vectors, built once.
        self.ann: AnnIndex | None = None
        if ann is not None:
            from sessionrec.serving.ann import AnnIndex

            self.ann = ann if isinstance(ann, AnnIndex) else AnnIndex.build(model, ann)
        # ONNX Runtime instead of the torch module for the scores (`use_onnx`); None: torch.
        self.onnx: OnnxScorer | None = None

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        device: str = "cpu",
        max_len: int | None = None,
        ann: AnnConfig | str | None = None,
        backend: str = "torch",
        onnx_file: str | Path | None = None,
    ) -> SessionRecommender:
        """Load a run directory (weights, config, vocabulary, metrics) ready to serve.

        `ann` (e.g. "int8", "hnsw", "ivf,nprobe=64") answers through a top-k index over the
        item vectors of a dot-product model instead of scoring every item (serving/ann.py);
        the index is saved in the run directory and reused while the item vectors are the same.
        `backend="onnx"` scores with ONNX Runtime: `onnx_file` (from `sessionrec export`,
        checked to be this run's), else an export made now (serving/onnx.py).
        """
        check_backend(backend)
        from sessionrec.models.registry import load_run
        from sessionrec.rundir import METRICS_FILE, read_metrics

        model, config = load_run(run_dir)
        model.to(device)
        vocab = load_vocabulary(run_dir, config, model.num_items)
        finished = (Path(run_dir) / METRICS_FILE).is_file()
        metrics = read_metrics(run_dir, required=()) if finished else {}
        index = None
        if ann is not None:
            from sessionrec.serving.ann import AnnIndex

            index = AnnIndex.build(model, ann, cache_dir=run_dir)
        live = SessionLog(run_dir) if model.learns_online else None
        rec = cls(model, vocab, config, metrics, max_len, index, live)
        rec.catch_up()  # replay what earlier services ingested
        if backend == "onnx":
            rec.use_onnx(run_dir, onnx_file)
        rec.run_dir, rec.load_options = Path(run_dir), {"device": device, "max_len": max_len}
        rec.load_options.update(ann=ann, backend=backend, onnx_file=onnx_file)
        return rec

    def use_onnx(self, run_dir: str | Path, onnx_file: str | Path | None = None) -> None:
        """Score with ONNX Runtime (as many intra-op threads as torch has) instead of torch;
        with a top-k index, ONNX Runtime runs the session encoder and the index scores."""
        from sessionrec.serving.onnx import OnnxScorer

        threads = torch.get_num_threads()
        computes = "scores" if self.ann is None else "session_vectors"
        self.onnx = OnnxScorer.for_run(run_dir, self.model, onnx_file, threads, computes)

    def reloaded(self, run_dir: str | Path) -> SessionRecommender:
        """Another run (or this one, retrained) loaded as this one was, warmed up; an ONNX
        file given for this run is not the other's, so the other is exported at load."""
        options = dict(self.load_options)
        if Path(run_dir).resolve() != (self.run_dir or Path()).resolve():
            options["onnx_file"] = None
        rec = SessionRecommender.load(run_dir, **options)
        rec.warmup()
        return rec

    # --- sessions that update the model live (serving/live.py) ----------------------------
    def catch_up(self) -> int:
        """Fold the log's sessions this process has not seen yet; how many."""
        if self.live is None:
            return 0
        with self._lock:
            folded = fold(self.model, self.live, self.vocab)
            self.live_sessions += folded
        return folded

    def ingest(self, sessions: Any) -> dict[str, Any]:
        """Log completed sessions (original ids) and fold them in before answering."""
        if self.live is None:
            raise not_online(self.model.name)
        sessions = check_sessions(sessions)
        internal, unknown = to_sessions(sessions, self.vocab)
        self.live.append(sessions)
        self.catch_up()
        return {
            "sessions": len(sessions),
            "clicks": int(internal.offsets[-1]),
            "unknown_items": unknown,
            "live_sessions": self.live_sessions,
        }

    # --- requests in original ids --------------------------------------------------------
    def prepare(self, session: Sequence[ItemId], where: str = "session") -> PreparedSession:
        """Map a session to internal ids, drop unknown ids and keep the most recent clicks."""
        if isinstance(session, str | bytes | dict) or not hasattr(session, "__iter__"):
            raise ConfigError(f"{where} must be a list of item ids, got {type(session).__name__}")
        session = list(session)
        if not session:
            raise ConfigError(f"{where} is empty: give at least one item id")
        known, unknown = self.vocab.to_internal(session)
        if not known:
            raise UnknownItemsError(
                f"{where}: none of its items is known to the model: {_show(unknown)}"
            )
        return PreparedSession(known[-self.max_len :], unknown)

    def exclusions(self, exclude: Iterable[ItemId] | None) -> list[int]:
        """Internal ids of the items to leave out; unknown ids are ignored."""
        if exclude is None:
            return []
        known, _ = self.vocab.to_internal(exclude)
        return known

    def recommend(
        self, session: Sequence[ItemId], k: int = 20, exclude: Iterable[ItemId] | None = None
    ) -> Recommendation:
        """Top-k next items for one session of original item ids in click order."""
        return self.recommend_batch([session], k, None if exclude is None else [exclude])[0]

    def recommend_batch(
        self,
        sessions: Sequence[Sequence[ItemId]],
        k: int = 20,
        exclude: Sequence[Iterable[ItemId] | None] | None = None,
    ) -> list[Recommendation]:
        """Top-k for each session in one forward pass; `exclude[i]` applies to session i."""
        if len(sessions) == 0:
            return []
        many = len(sessions) > 1
        prepared = [
            self.prepare(s, f"sessions[{i}]" if many else "session") for i, s in enumerate(sessions)
        ]
        excl = [self.exclusions(e) for e in (exclude or [])]
        top = self.top_k([p.items for p in prepared], k, excl)
        return [self.to_original(t, p.unknown_items) for t, p in zip(top, prepared, strict=True)]

    def to_original(
        self, top: list[tuple[int, float]], unknown: list[ItemId] | None = None
    ) -> Recommendation:
        """A `Recommendation` from internal (item, score) pairs."""
        orig = self.vocab.to_original
        return Recommendation([orig(i) for i, _ in top], [s for _, s in top], unknown or [])

    # --- the forward pass in internal ids ------------------------------------------------
    @torch.no_grad()
    def top_k(
        self, sessions: list[list[int]], k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k internal (item, score) per session; sessions must be prepared (non-empty)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if self.live is not None:
            self.catch_up()
            with self._lock:
                return self._top_k(sessions, k, exclude)
        return self._top_k(sessions, k, exclude)

    def _top_k(
        self, sessions: list[list[int]], k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]:
        width = max(len(s) for s in sessions)
        items = torch.tensor([s + [0] * (width - len(s)) for s in sessions], dtype=torch.long)
        lengths = torch.tensor([len(s) for s in sessions], dtype=torch.long)
        if self.ann is not None:
            return self.ann.search(self._session_vectors(items, lengths), k, exclude)
        if self.onnx is not None:  # a fresh array from ONNX Runtime
            scores = self.onnx.scores(items, lengths)
        elif self._net is not None:  # a fresh tensor from the module itself
            scores = self._net(items.to(self.model.device), lengths.to(self.model.device))
            scores = scores.float().cpu()
        else:
            batch = Batch(items, lengths, torch.zeros(len(sessions), dtype=torch.long))
            scores = self.model.score_batch(batch).float().cpu().clone()
        scores[:, 0] = -torch.inf
        for row, excluded in zip(scores, exclude or [], strict=False):
            if excluded:
                row[list(excluded)] = -torch.inf
        values, indices = scores.topk(min(k, self.model.num_items), dim=1)
        return [
            [(i, s) for i, s in zip(ri, rv, strict=True) if s != -float("inf")]
            for ri, rv in zip(indices.tolist(), values.tolist(), strict=True)
        ]

    def _session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """hₛ (B, d) of a dot-product model, for a top-k index."""
        if self.onnx is not None:
            return self.onnx.scores(items, lengths)
        device = self.model.device
        if self._net is not None:
            return self._net.session_vectors(items.to(device), lengths.to(device))
        return self.model.session_vectors(Batch(items, lengths, torch.zeros_like(lengths)))

    def warmup(self) -> None:
        """One forward pass so the first request does not pay for lazy initialisation."""
        self.top_k([[1]], 1)

    def info(self) -> dict[str, Any]:
        """What `GET /model` reports: name, hyper-parameters, item count, metrics."""
        model = self.model
        metrics = {s: self.metrics[s] for s in ("valid", "test") if s in self.metrics}
        return {
            "model": model.name,
            "description": model.description,
            "params": params_dict(model.params),
            "num_items": model.num_items,
            "item_ids": self.vocab.kind,
            "max_session_length": self.max_len,
            "dataset": self.metrics.get("dataset")
            or Path(str((self.config.get("dataset") or {}).get("dataset", ""))).name,
            "metrics": metrics,
            "ann": None if self.ann is None else self.ann.config.describe(),
            "backend": "torch" if self.onnx is None else f"onnx ({self.onnx.source})",
            "learns_online": model.learns_online,
            "live_sessions": self.live_sessions,
        }
