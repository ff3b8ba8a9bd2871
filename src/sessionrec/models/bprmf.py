"""BPR-MF (Rendle et al., UAI 2009) with sessions as users, as in Hidasi et al. (ICLR 2016).

A new session is the mean of its items' factors. `BPRMFTrainer` gives the shared Trainer its
(session, item) steps and SparseAdam, and checkpoints the session factors and the sampler.

Spec: docs/baselines-knn-mf.md#bpr-mf
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sessionrec.models.base import NeuralRecommender
from sessionrec.models.fpmc import bpr_loss, sample_negatives
from sessionrec.models.layers import DotProductScorer, masked_mean
from sessionrec.models.registry import register
from sessionrec.training.trainer import Step, Trainer, epoch_seed

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset


@dataclass
class BPRMFParams:
    embedding_dim: int = 100  # GRU4Rec BPRMF baseline: n_factors = 100
    init_range: float = 0.05  # GRU4Rec BPRMF baseline: uniform(-σ, σ), σ = 0.05


class BPRMF(DotProductScorer):
    """Scores items by x̂_si = <w_s, h_i>."""

    def __init__(self, num_items: int, p: BPRMFParams) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(num_items + 1, p.embedding_dim, padding_idx=0, sparse=True)
        nn.init.uniform_(self.item_emb.weight, -p.init_range, p.init_range)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.item_emb(items), items > 0)  # a new session: mean item factor


class BPRMFTrainer(Trainer):
    """Steps over (session, click) pairs; the session factors live here, not in the model."""

    multi_process = False  # the sparse session factors are not sharded

    def setup(self, dataset: SessionDataset) -> torch.optim.Optimizer:
        cfg, p, device = self.config, self.model.params, self.model.device
        sessions = dataset.fit_sessions()
        self.user_of = torch.from_numpy(np.repeat(np.arange(len(sessions)), sessions.lengths))
        self.item_of = torch.from_numpy(sessions.items)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.users = nn.Embedding(len(sessions), p.embedding_dim, sparse=True)
            nn.init.uniform_(self.users.weight, -p.init_range, p.init_range)
        self.users.to(device)
        self.negatives = torch.Generator().manual_seed(cfg.seed)
        params = [self.users.weight, self.model.net.item_emb.weight]
        return torch.optim.SparseAdam(params, lr=cfg.lr)

    def train_steps(self, dataset: SessionDataset, epoch: int, start: int) -> Iterator[Step]:
        cfg, model = self.config, self.model
        rng = np.random.default_rng(epoch_seed(cfg.seed, epoch))
        chunks = torch.from_numpy(rng.permutation(len(self.item_of))).split(cfg.batch_size)
        for k in range(start, len(chunks)):
            u, pos = self.user_of[chunks[k]].to(model.device), self.item_of[chunks[k]]
            neg = sample_negatives(pos, model.num_items, self.negatives).to(model.device)
            loss = model.pair_loss(self.users(u), pos.to(model.device), neg, cfg.weight_decay)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            yield Step(k + 1, len(chunks), len(pos), loss.item(), len(pos))

    def extra_state(self) -> dict[str, Any]:
        return {
            "session_factors": self.users.weight.detach().cpu(),
            "negatives": self.negatives.get_state(),
        }

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        with torch.no_grad():
            self.users.weight.copy_(checkpoint.pop("session_factors"))
        self.negatives.set_state(checkpoint.pop("negatives"))


@register
class BPRMFRecommender(NeuralRecommender):
    name = "bprmf"
    description = "BPR-MF (Rendle et al. 2009): sessions as users, a new session = mean item factor"
    Params = BPRMFParams
    Module = BPRMF
    trainer_class = BPRMFTrainer

    def pair_loss(
        self, w_u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float
    ) -> torch.Tensor:
        """BPR loss of (session, positive, negative) triples plus λ/2 ‖θ‖² on the rows used."""
        h_pos, h_neg = self.net.item_emb(pos), self.net.item_emb(neg)
        loss = bpr_loss((w_u * h_pos).sum(1), (w_u * h_neg).sum(1))
        if reg > 0:
            loss = loss + reg / 2 * (w_u.square() + h_pos.square() + h_neg.square()).sum(1).mean()
        return loss
