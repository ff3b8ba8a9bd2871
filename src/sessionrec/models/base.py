"""The contract every model shares: `fit`, `score_batch`, `recommend`, `save`, `load`.

Neural models wrap a plain `nn.Module` (which knows nothing about training) and are fitted by
their `trainer_class` (the shared `Trainer`, or a subclass for a model that trains
differently); non-neural models implement `learn` (no gradient steps). The evaluator and the service
treat both as black boxes through `score_batch`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from sessionrec.data.batching import Batch, collate
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, RunError
from sessionrec.io import atomic_write_json
from sessionrec.models.params import as_recorded, build_params, params_dict
from sessionrec.rundir import MODEL_FILE, WEIGHTS_FILE, read_weights, write_weights
from sessionrec.training import distributed
from sessionrec.training.config import TrainConfig
from sessionrec.training.trainer import Trainer

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset


# Every registered model by name; filled by `models.registry.register`, read by `load`.
REGISTRY: dict[str, type[Recommender]] = {}


@dataclass
class NoParams:
    """A model without hyper-parameters."""


def not_online(name: str) -> ConfigError:
    """The error for a model that cannot take new sessions without training."""
    return ConfigError(
        f"{name} learns new sessions only by training again (`sessionrec train {name} "
        "--dataset NEW`); pop, itemknn, sknn, vsknn and stan take them live"
    )


class Recommender(ABC):
    """A next-item recommender over items 1..num_items (0 is padding)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    # Training settings the model sets through its own hyper-parameters (its own steps).
    own_train_settings: ClassVar[tuple[str, ...]] = ()
    # The authors' training settings (TrainConfig field -> value) and where they come from:
    # below the user's own, above TrainConfig's defaults (models.registry.train_config).
    train_defaults: ClassVar[dict[str, Any]] = {}
    train_source: ClassVar[str] = ""
    # The authors' settings for a named benchmark (dataset name -> hyper-parameters and
    # training settings): above the defaults, below the user's own (registry.dataset_preset).
    dataset_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    presets_source: ClassVar[str] = ""
    # Named recipes (`train --recipe NAME` -> hyper-parameters and training settings), e.g. a
    # time-budgeted CPU one: above the dataset preset, below the user's own; what each is for
    # and what it measured is in the model's doc (registry.recipe_settings).
    recipes: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, num_items: int, params: Any = None) -> None:
        if num_items < 1:
            raise ConfigError(f"num_items must be at least 1, got {num_items}")
        self.num_items = num_items
        self.params = params if params is not None else self.Params()
        self.device = torch.device("cpu")

    # --- training and scoring -------------------------------------------------------------
    def fit(
        self,
        dataset: SessionDataset,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = False,
        resume: bool = False,
    ) -> Recommender:
        """Learn from `dataset.train` (selecting on `dataset.valid`); returns self.

        Models without training steps learn in one pass (`learn`), so they have no checkpoints
        (`run_dir`, `resume`) and no progress bar; `NeuralRecommender` trains in steps instead.
        """
        self.learn(dataset, config)
        return self

    def learn(self, dataset: SessionDataset, config: TrainConfig | None) -> None:
        """Learn everything in one pass over `dataset` (models without training steps)."""
        raise NotImplementedError(f"model '{self.name}' defines neither `fit` nor `learn`")

    @abstractmethod
    def score_batch(self, batch: Batch) -> torch.Tensor:
        """Scores (B, num_items + 1) for a batch of sessions; higher is better."""

    @abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything learned, as named tensors (saved with safetensors)."""

    @abstractmethod
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...

    def to(self, device: str | torch.device) -> Recommender:
        self.device = torch.device(device)
        return self

    # --- learning from new sessions without retraining (serving/live.py) ------------------
    learns_online: ClassVar[bool] = False

    def add_sessions(self, sessions: Sessions) -> None:
        """Fold completed sessions (internal ids) into what the model knows, at once."""
        raise not_online(self.name)

    # --- dot-product scoring (approximate top-k, see serving/ann.py) -----------------------
    def item_vectors(self) -> torch.Tensor | None:
        """Item table V (num_items + 1, d) if `score_batch` is hₛᵀVᵢ for items 1..N, else None."""
        return None

    def session_vectors(self, batch: Batch) -> torch.Tensor:
        """hₛ (B, d) such that `score_batch(batch)[:, 1:]` equals hₛ @ item_vectors()[1:]ᵀ."""
        raise ConfigError(f"model '{self.name}' does not score items by a dot product")

    # --- recommending ----------------------------------------------------------------------
    def _check_session(self, session: Sequence[int]) -> list[int]:
        items = [int(i) for i in session]
        if not items:
            raise ConfigError("session is empty: give at least one item id")
        bad = [i for i in items if not 1 <= i <= self.num_items]
        if bad:
            raise ConfigError(f"item id {bad[0]} out of range 1..{self.num_items}")
        return items

    @torch.no_grad()
    def recommend_batch(
        self,
        sessions: Sequence[Sequence[int]],
        k: int = 20,
        exclude: Iterable[Iterable[int]] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-k (item, score) for each session; items in `exclude[i]` are left out."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        checked = Sessions.from_lists([self._check_session(s) for s in sessions])
        examples = checked.as_examples(np.zeros(len(checked), dtype=np.int64))
        scores = self.score_batch(collate(examples, np.arange(len(checked)))).float().cpu().clone()
        scores[:, 0] = -torch.inf
        for row, items in zip(scores, exclude or [], strict=False):
            idx = [i for i in items if 0 < int(i) <= self.num_items]
            row[idx] = -torch.inf
        top = scores.topk(min(k, self.num_items), dim=1)
        return [
            [(int(i), float(s)) for i, s in zip(ti, ts, strict=True) if s > -torch.inf]
            for ti, ts in zip(top.indices, top.values, strict=True)
        ]

    def recommend(
        self, session: Sequence[int], k: int = 20, exclude: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (item, score) pairs for one session given as item ids in click order."""
        return self.recommend_batch([session], k, None if exclude is None else [exclude])[0]

    # --- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write `model.json` and `model.safetensors` (atomically) into `directory`."""
        directory = Path(directory)
        write_weights(directory, self.state_tensors())
        atomic_write_json(
            directory / MODEL_FILE,
            {"model": self.name, "num_items": self.num_items, "params": params_dict(self.params)},
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Recommender:
        """Rebuild a saved model; weights are read with safetensors (no code can run)."""
        directory = Path(directory)
        meta_path = directory / MODEL_FILE
        try:
            meta = json.loads(meta_path.read_text())
            name, num_items, params = meta["model"], int(meta["num_items"]), dict(meta["params"])
        except FileNotFoundError:
            raise RunError(
                f"{directory}: no {MODEL_FILE}; not a saved model or run directory"
            ) from None
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"{meta_path}: corrupted model description ({e})") from None
        model_cls = REGISTRY.get(name)
        if model_cls is None:
            raise RunError(
                f"{meta_path}: unknown model '{name}' (available: {', '.join(sorted(REGISTRY))})"
            )
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise RunError(f"{directory}: holds a '{name}' model, not '{cls.name}'")
        if num_items < 1:
            raise RunError(f"{meta_path}: corrupted model description (num_items={num_items})")
        hparams = build_params(model_cls.Params, as_recorded(model_cls.Params, params), name)
        try:
            model = model_cls(num_items, hparams).to(device)
        except (RuntimeError, MemoryError, ValueError, OverflowError) as e:
            raise RunError(
                f"{meta_path}: cannot build a '{name}' model with {num_items:,} items "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        tensors = read_weights(directory)
        try:
            model.load_state_tensors(tensors)
        except (RuntimeError, KeyError, ValueError) as e:
            raise RunError(
                f"{directory / WEIGHTS_FILE}: weights do not fit model '{name}': {_one_line(e)}"
            ) from None
        except RunError as e:
            raise RunError(f"{directory / WEIGHTS_FILE}: {e}") from None
        return model


class NeuralRecommender(Recommender):
    """A recommender around an `nn.Module` whose forward maps (items, lengths) to logits."""

    Module: ClassVar[type[nn.Module]]
    trainer_class: ClassVar[type[Trainer]] = Trainer

    def __init__(self, num_items: int, params: Any = None) -> None:
        super().__init__(num_items, params)
        self.net = self.Module(num_items, self.params)

    def to(self, device: str | torch.device) -> NeuralRecommender:
        super().to(device)
        self.net.to(self.device)
        return self

    def fit(
        self,
        dataset: SessionDataset,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = False,
        resume: bool = False,
    ) -> NeuralRecommender:
        """Train with `trainer_class`, on this process or, under torchrun, on every rank.

        Each node's local rank 0 prepares first, so a cached derivation (FOCOL's FOG) is built
        once per node and loaded by the other ranks.
        """
        config = config or TrainConfig(**type(self).train_defaults)
        self.to(distributed.rank_device(config.device))
        with distributed.local_main_first():
            self.prepare(dataset)
        trainer = self.trainer_class(self, config, run_dir, progress)
        trainer.fit(dataset, resume=resume)
        self.best_epoch, self.fit_history = trainer.best_epoch, trainer.history
        self.prior_fit_seconds = trainer.prior_seconds  # a resumed run's time before resuming
        return self

    def prepare(self, dataset: SessionDataset) -> None:
        """Give the module what it derives from training data (a global graph, say) before training.

        Modules define `prepare(dataset)` and keep what they derive as buffers, so it is saved
        with the weights; a resumed run calls it again before loading its checkpoint.
        """
        hook = getattr(self.net, "prepare", None)
        if hook is not None:
            hook(dataset)
            self.net.to(self.device)

    @torch.no_grad()
    def score_batch(self, batch: Batch) -> torch.Tensor:
        batch = batch.to(self.device)
        with evaluating(self.net):
            return self.net(batch.items, batch.lengths)

    def _dot_product(self) -> bool:
        """The module scores by hₛᵀVᵢ (it defines `session_vectors` and `item_vectors`)."""
        net = self.net
        return (
            type(self).score_batch is NeuralRecommender.score_batch
            and callable(getattr(net, "session_vectors", None))
            and callable(getattr(net, "item_vectors", None))
        )

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor | None:
        if not self._dot_product():
            return None
        with evaluating(self.net):
            return self.net.item_vectors()

    @torch.no_grad()
    def session_vectors(self, batch: Batch) -> torch.Tensor:
        if not self._dot_product():
            return super().session_vectors(batch)
        batch = batch.to(self.device)
        with evaluating(self.net):
            return self.net.session_vectors(batch.items, batch.lengths)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.net.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        # Buffers and parameters whose shape depends on the training data (a graph, a
        # distance range) take the saved shape before loading.
        for name, buf in list(self.net.named_buffers()):
            saved = tensors.get(name)
            if saved is not None and buf is not None and saved.shape != buf.shape:
                owner, _, attr = name.rpartition(".")
                module = self.net.get_submodule(owner) if owner else self.net
                module.register_buffer(attr, torch.empty_like(saved, device=buf.device))
        for name, param in self.net.named_parameters():
            saved = tensors.get(name)
            if saved is not None and saved.shape != param.shape:
                param.data = torch.empty(saved.shape, dtype=param.dtype, device=param.device)
        try:
            self.net.load_state_dict(tensors)
        except RuntimeError as e:
            raise RunError(f"weights do not fit model '{self.name}': {_one_line(e)}") from None


@contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """Run the body with `net` in eval mode and give it back in the mode it was in, so scoring
    in the middle of training leaves training as it was (dropout on, gradients to FOCOL's E^g)."""
    was_training = net.training
    if was_training:
        net.eval()
    try:
        yield
    finally:
        if was_training:
            net.train()


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to `limit` characters (for error lines)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
