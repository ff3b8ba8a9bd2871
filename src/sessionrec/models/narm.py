"""NARM (Li et al., CIKM 2017): a GRU encoder with a global and an attentive local summary.

Spec: docs/baselines-neural.md#narm--li-et-al-cikm-2017
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import AttentionReadout, DotProductScorer, ItemEmbedding, gather_last
from sessionrec.models.registry import register


@dataclass
class NARMParams:
    embedding_dim: int = 50  # paper: 50
    hidden_size: int = 100  # paper: 100
    num_layers: int = 1
    emb_dropout: float = 0.25  # paper: 0.25 between embedding and GRU
    ct_dropout: float = 0.5  # paper: 0.5 before the bilinear decoder
    # Item table N(0, std²); None is √(2 / rows), the authors' Theano code (NARM.py), and 1.0
    # PyTorch's default (the PyTorch port's). 0.1 learned far faster than both here
    # (docs/baselines-neural.md#narm--li-et-al-cikm-2017).
    emb_init_std: float | None = 0.1


class NARM(DotProductScorer):
    """Scores items by S_i = embᵢᵀ B c_t (Eq. 9)."""

    length_groups = True  # the GRU's steps over padding: docs/performance.md#length-groups

    def __init__(self, num_items: int, p: NARMParams) -> None:
        super().__init__()
        self.item_emb = ItemEmbedding(num_items + 1, p.embedding_dim, padding_idx=0)
        std = p.emb_init_std if p.emb_init_std is not None else (2 / (num_items + 1)) ** 0.5
        with torch.no_grad():
            self.item_emb.weight.normal_(0.0, std)
            self.item_emb.weight[0].zero_()
        self.emb_dropout = nn.Dropout(p.emb_dropout)
        self.gru = nn.GRU(p.embedding_dim, p.hidden_size, p.num_layers, batch_first=True)
        # α_tj = vᵀ σ(A1 h_t + A2 h_j), unnormalised as in the paper (Eq. 7)
        self.attention = AttentionReadout(p.hidden_size, p.hidden_size, p.hidden_size, "sigmoid")
        self.ct_dropout = nn.Dropout(p.ct_dropout)
        self.bilinear = nn.Linear(2 * p.hidden_size, p.embedding_dim, bias=False)  # B in Eq. 9

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """B c_t (B, embedding_dim): the bilinear decoder's session side."""
        mask = items > 0
        h, _ = self.gru(
            self.emb_dropout(self.item_emb(items))
        )  # GRU is causal: padding on the right is harmless
        c_global = gather_last(h, lengths)  # c_g = h_t (Eq. 5)
        c_local = self.attention(h, c_global, mask)  # c_l = Σ_j α_tj h_j (Eq. 6)
        c = self.ct_dropout(torch.cat([c_global, c_local], dim=1))  # c_t = [c_g; c_l] (Eq. 8)
        return self.bilinear(c)


@register
class NARMRecommender(NeuralRecommender):
    name = "narm"
    description = (
        "NARM (Li et al. 2017): GRU with global and attention-based local session encoders"
    )
    Params = NARMParams
    Module = NARM
    train_defaults = {"lr": 1e-3, "batch_size": 512, "weight_decay": 0.0}
    train_source = "NARM code (Theano), NARM.py: batch 512, Adam lr 1e-3, no L2 term"
