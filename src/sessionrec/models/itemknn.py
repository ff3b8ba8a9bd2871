"""Item-kNN (the item-to-item baseline of Hidasi et al., ICLR 2016): neighbours of the last click.

Regularised cosine over training sessions, the top-M neighbours of every item kept as (N+1, M)
index and value tensors, never a dense N x N matrix.

Spec: docs/baselines-knn-mf.md#item-knn
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, RunError
from sessionrec.models.base import Recommender
from sessionrec.models.registry import register
from sessionrec.progress import status
from sessionrec.training.config import use_threads

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset
    from sessionrec.training.config import TrainConfig


def saved_sessions(tensors: dict[str, torch.Tensor], num_items: int) -> Sessions | None:
    """The `session_items`/`session_offsets` of a saved state, checked; None if absent or bad."""
    items, offsets = tensors.get("session_items"), tensors.get("session_offsets")
    if items is None or offsets is None or offsets.dim() != 1 or len(offsets) < 1:
        return None
    items, offsets = items.long().numpy(), offsets.long().numpy()
    if (
        offsets[0] != 0
        or offsets[-1] != len(items)
        or (np.diff(offsets) < 0).any()
        or (len(items) and (items.min() < 1 or items.max() > num_items))
    ):
        return None
    return Sessions(items, offsets)


def incidence(sessions: Sessions, num_items: int, binary: bool = True) -> sp.csr_matrix:
    """Session x item matrix (S, N+1): 1 where the session holds the item, or click counts."""
    rows = np.repeat(np.arange(len(sessions)), sessions.lengths)
    x = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, sessions.items)),
        shape=(len(sessions), num_items + 1),
    )
    x.sum_duplicates()
    if binary:
        x.data[:] = 1.0
    return x


def top_per_row(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row as (rows, k) index and value arrays (0-padded).

    Ties go to the smaller column index, so the result does not depend on storage order.
    """
    m = m.tocoo()
    order = np.lexsort((m.col, -m.data, m.row))
    row, col, val = m.row[order], m.col[order], m.data[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    keep = rank < k
    idx = np.zeros((m.shape[0], k), dtype=np.int64)
    values = np.zeros((m.shape[0], k), dtype=np.float64)
    idx[row[keep], rank[keep]] = col[keep]
    values[row[keep], rank[keep]] = val[keep]
    return idx, values


@dataclass
class ItemKNNParams:
    num_neighbors: int = 100  # reference code: n_sims = 100
    regularization: float = 20.0  # λ; reference code: lmbd = 20
    alpha: float = 0.5  # 0.5 = cosine (paper); 1.0 = confidence as in association rules
    count_clicks: bool = False  # paper: sessions; True = the reference code's click counts

    def validate(self) -> None:
        if self.num_neighbors < 1 or self.regularization < 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("itemknn: need num_neighbors >= 1, regularization >= 0, 0<=alpha<=1")


def item_similarities(x: sp.csr_matrix, p: ItemKNNParams) -> sp.csr_matrix:
    """Regularised cosine between item columns of the incidence matrix, diagonal removed."""
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    supp = np.asarray(x.sum(axis=0)).ravel()
    c = c.tocoo()
    lam, a = p.regularization, p.alpha
    norm = (supp[c.row] + lam) ** a * (supp[c.col] + lam) ** (1.0 - a)
    return sp.csr_matrix((c.data / np.where(norm > 0, norm, 1.0), (c.row, c.col)), shape=c.shape)


@register
class ItemKNN(Recommender):
    name = "itemknn"
    description = "Item-kNN (Hidasi et al. 2016): the items most similar (cosine) to the last click"
    Params = ItemKNNParams

    def __init__(self, num_items: int, params: ItemKNNParams | None = None) -> None:
        super().__init__(num_items, params)
        m = self.params.num_neighbors
        self.neighbors = torch.zeros(num_items + 1, m, dtype=torch.int64)
        self.weights = torch.zeros(num_items + 1, m)
        self.sessions: Sessions | None = None  # what the similarities come from (live updates)

    def learn(self, dataset: SessionDataset, config: TrainConfig | None) -> None:
        use_threads(config)
        self._neighbours_from(dataset.fit_sessions())

    def _neighbours_from(self, sessions: Sessions) -> None:
        """Each item's most similar items in `sessions` (kept, for live updates)."""
        self.sessions = sessions
        with status(f"item similarities from {len(sessions):,} sessions"):
            x = incidence(sessions, self.num_items, binary=not self.params.count_clicks)
            idx, val = top_per_row(item_similarities(x, self.params), self.params.num_neighbors)
        self.neighbors = torch.from_numpy(idx)
        self.weights = torch.from_numpy(val).float()

    learns_online = True

    def add_sessions(self, sessions: Sessions) -> None:
        """Recompute the similarities with the new sessions added (cosine needs every count)."""
        if self.sessions is None:
            raise RunError(
                "this itemknn run predates live updates (no sessions saved): train again"
            )
        self._neighbours_from(self.sessions.concat(sessions))

    def score_batch(self, batch: Batch) -> torch.Tensor:
        last = batch.items.gather(1, (batch.lengths - 1).clamp(min=0).view(-1, 1)).squeeze(1).cpu()
        scores = torch.zeros(len(last), self.num_items + 1)
        scores.scatter_(1, self.neighbors[last], self.weights[last])  # padding writes 0 to column 0
        scores[:, 0] = 0.0
        return scores.to(self.device)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        state = {"neighbors": self.neighbors, "weights": self.weights}
        if self.sessions is not None:
            state["session_items"] = torch.from_numpy(self.sessions.items)
            state["session_offsets"] = torch.from_numpy(self.sessions.offsets)
        return state

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        shape = (self.num_items + 1, self.params.num_neighbors)
        idx, val = tensors.get("neighbors"), tensors.get("weights")
        if idx is None or val is None or idx.shape != shape or val.shape != shape:
            raise RunError(f"weights do not fit model 'itemknn' with {self.num_items} items")
        self.neighbors, self.weights = idx.long(), val.float()
        self.sessions = saved_sessions(tensors, self.num_items)
        if self.sessions is None and "session_items" in tensors:
            raise RunError(f"weights do not fit model 'itemknn' with {self.num_items} items")
