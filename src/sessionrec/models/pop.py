"""Popularity: every session gets the items most often clicked next in training.

Spec: docs/baselines-knn-mf.md#popularity
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.models.base import Recommender
from sessionrec.models.registry import register

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset
    from sessionrec.training.config import TrainConfig


@register
class Pop(Recommender):
    name = "pop"
    description = "Popularity: the most frequent next items in training, whatever the session"

    def __init__(self, num_items: int, params: object = None) -> None:
        super().__init__(num_items, params)
        self.counts = torch.zeros(num_items + 1)

    def learn(self, dataset: SessionDataset, config: TrainConfig | None) -> None:
        self.counts = torch.as_tensor(
            dataset.item_counts()[: self.num_items + 1], dtype=torch.float32
        )

    learns_online = True

    def add_sessions(self, sessions: Sessions) -> None:
        """Count every click but each session's first, as `fit` counts next items."""
        first = np.zeros(len(sessions.items), dtype=bool)
        first[sessions.offsets[:-1][sessions.lengths > 0]] = True
        more = np.bincount(sessions.items[~first], minlength=self.num_items + 1)
        self.counts += torch.from_numpy(more[: self.num_items + 1]).float()

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return self.counts.to(self.device).expand(len(batch.lengths), -1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        from sessionrec.errors import RunError

        counts = tensors.get("counts")
        if counts is None or counts.shape != (self.num_items + 1,):
            raise RunError(f"weights do not fit model 'pop' with {self.num_items} items")
        self.counts = counts.float()
