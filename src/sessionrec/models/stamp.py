"""STAMP (Liu et al., KDD 2018): short-term attention/memory priority over item embeddings.

Spec: docs/baselines-neural.md#stamp--liu-et-al-kdd-2018
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import AttentionReadout, DotProductScorer, gather_last, masked_mean
from sessionrec.models.registry import register


@dataclass
class STAMPParams:
    embedding_dim: int = 100  # paper: 100
    emb_init_std: float = 0.002  # paper: N(0, 0.002) for embeddings
    weight_init_std: float = 0.05  # paper: N(0, 0.05) for the other weights
    # The authors' code adds m_s to the attention output (m_a = Σ α_i x_i + m_s) and looks
    # the session's items up with max_norm 1.5 (STAMP_cikm.py; 1 in STAMP_rsc.py for
    # YooChoose); the paper's Eq. 8 has neither.
    add_ms: bool = True
    input_max_norm: float | None = 1.5


class STAMP(DotProductScorer):
    """Scores items by the trilinear <h_s, h_t, x_i> (Eq. 11)."""

    def __init__(self, num_items: int, p: STAMPParams) -> None:
        super().__init__()
        self.p = p
        d = p.embedding_dim
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        # α_i = W0 σ(W1 x_i + W2 x_t + W3 m_s + b_a): the query is [x_t ; m_s] (Eq. 7)
        self.attention = AttentionReadout(d, 2 * d, d, "sigmoid")
        self.mlp_s = nn.Linear(d, d)  # MLP cell A (Eq. 9)
        self.mlp_t = nn.Linear(d, d)  # MLP cell B (Eq. 10)
        for name, w in self.named_parameters():
            if name == "item_emb.weight":
                nn.init.normal_(w, std=p.emb_init_std)
            elif w.dim() > 1:
                nn.init.normal_(w, std=p.weight_init_std)
            else:
                nn.init.zeros_(w)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """h_s ⊙ h_t (B, d): the trilinear score is its inner product with x_i."""
        mask = items > 0
        x = self.item_emb(items)
        if self.p.input_max_norm is not None:  # rows longer than max_norm scaled down (code)
            x = x * (self.p.input_max_norm / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(
                max=1.0
            )
        x_t = gather_last(x, lengths)  # last click: short-term memory m_t (Eq. 3)
        m_s = masked_mean(x, mask)  # general interest (Eq. 2)
        m_a = self.attention(x, torch.cat([x_t, m_s], dim=1), mask)  # m_a = Σ α_i x_i (Eq. 8)
        if self.p.add_ms:
            m_a = m_a + m_s  # the code's `attout + pool_out`
        h_s = torch.tanh(self.mlp_s(m_a))  # (Eq. 9)
        h_t = torch.tanh(self.mlp_t(x_t))  # (Eq. 10)
        return h_s * h_t


@register
class STAMPRecommender(NeuralRecommender):
    name = "stamp"
    description = "STAMP (Liu et al. 2018): attention over the session with last-click priority"
    Params = STAMPParams
    Module = STAMP
    train_defaults = {"lr": 3e-3, "batch_size": 512, "weight_decay": 0.0}
    train_source = (
        "STAMP code, config/nn_param.conf [stamp_cikm]: lr 0.003, batch 512, no L2 (its batches, "
        "summed loss and per-variable clipping: --recipe code)"
    )
    dataset_presets = {
        "yoochoose1_64": {"input_max_norm": 1.0},
        "yoochoose1_4": {"input_max_norm": 1.0},
    }
    presets_source = "STAMP code: max_norm 1.5 in STAMP_cikm.py (Diginetica), 1 in STAMP_rsc.py"
    # `--recipe code`: the code's training too (docs/baselines-neural.md#stamp--liu-et-al-kdd-2018)
    recipes = {
        "code": {
            "batching": "sessions",
            "loss_reduction": "sum",
            "grad_clip": 110.0,
            "grad_clip_per_param": True,
        }
    }
