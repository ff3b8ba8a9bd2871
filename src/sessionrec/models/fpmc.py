"""FPMC (Rendle et al., WWW 2010) without the user term: a factorised first-order Markov chain.

Spec: docs/baselines-knn-mf.md#fpmc
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sessionrec.data.batching import Batch
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import (
    gather_last,
    linear_cross_entropy,
    masked_mean,
    score_all_items,
)
from sessionrec.models.registry import register


@dataclass
class FPMCParams:
    embedding_dim: int = 100  # paper tunes k; 100 as the neural models it is compared with
    init_std: float = 0.01  # LearnSBPR draws Θ ~ N(0, σ²); σ is a choice
    session_repr: Literal["last", "mean"] = "last"  # B_{t-1}: the last click, or the prefix
    loss: Literal["ce", "bpr"] = "ce"  # full cross-entropy (default) or S-BPR


def sample_negatives(
    targets: torch.Tensor, num_items: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One item per target drawn uniformly from 1..num_items without the target itself."""
    if num_items < 2:
        return targets.clone()
    shift = torch.randint(1, num_items, targets.shape, generator=generator).to(targets.device)
    return (targets - 1 + shift) % num_items + 1


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-ln σ(x_pos - x_neg), averaged (Rendle et al. 2009, BPR-Opt without the prior)."""
    return -nn.functional.logsigmoid(pos - neg).mean()


class FPMC(nn.Module):
    def __init__(self, num_items: int, p: FPMCParams) -> None:
        super().__init__()
        self.num_items, self.p = num_items, p
        self.item_next = nn.Embedding(num_items + 1, p.embedding_dim, padding_idx=0)  # V^{I,L}
        self.item_prev = nn.Embedding(num_items + 1, p.embedding_dim, padding_idx=0)  # V^{L,I}
        for emb in (self.item_next, self.item_prev):
            nn.init.normal_(emb.weight, std=p.init_std)
            with torch.no_grad():
                emb.weight[0].zero_()

    def basket(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(1/|B_{t-1}|) Σ_{l ∈ B_{t-1}} v_l^{L,I}: the last click's factor or the prefix mean."""
        v = self.item_prev(items)
        if self.p.session_repr == "last":
            return gather_last(v, lengths)
        return masked_mean(v, items > 0)

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.basket(items, lengths)

    def item_vectors(self) -> torch.Tensor:
        return self.item_next.weight

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x̂(i | B_{t-1}) = <v_i^{I,L}, mean_{l ∈ B_{t-1}} v_l^{L,I}>: FPMC's FMC term, no user term
        return score_all_items(self.basket(items, lengths), self.item_next.weight)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        items, lengths, targets = batch.items, batch.lengths, batch.targets
        if self.p.loss == "ce":
            return linear_cross_entropy(self.basket(items, lengths), self.item_next.weight, targets)
        h = self.basket(items, lengths)
        neg = sample_negatives(targets, self.num_items)
        return bpr_loss((h * self.item_next(targets)).sum(1), (h * self.item_next(neg)).sum(1))


@register
class FPMCRecommender(NeuralRecommender):
    name = "fpmc"
    description = (
        "FPMC (Rendle et al. 2010) without the user term: factorised Markov chain on clicks"
    )
    Params = FPMCParams
    Module = FPMC
