"""SR-GNN (Wu et al., AAAI 2019): a gated GNN over each session's item graph.

"Session-based Recommendation with Graph Neural Networks", checked against the authors'
PyTorch code. `session_graphs` builds a whole batch's graphs with dense tensor ops.

Spec: docs/baselines-neural.md#srgnn--wu-et-al-aaai-2019
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sessionrec.errors import ConfigError
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import AttentionReadout, DotProductScorer, gather_last
from sessionrec.models.registry import register


@dataclass
class SRGNNParams:
    hidden_size: int = 100  # paper: d = 100
    step: int = 1  # code default: 1 GGNN propagation step
    nonhybrid: bool = False  # code: --nonhybrid scores with s_g only

    def validate(self) -> None:
        if self.hidden_size < 1 or self.step < 1:
            raise ConfigError("hidden_size and step must be at least 1")


@dataclass
class SessionGraphs:
    """A batch of session graphs, one node slot per click position (B, T nodes).

    A session's node for item v sits at the position of v's first click; the other slots
    (repeats, padding) hold item 0 and have no edges, so they never reach a real node.
    """

    nodes: torch.Tensor  # (B, T) item id of each node, 0 in slots that are no node
    alias: torch.Tensor  # (B, T) node index of each click (0 at padding)
    a_in: torch.Tensor  # (B, T, T) a_in[b, v, u] = 1/indeg(v) for an edge u→v
    a_out: torch.Tensor  # (B, T, T) a_out[b, u, v] = 1/outdeg(u) for an edge u→v


def session_graphs(items: torch.Tensor, lengths: torch.Tensor) -> SessionGraphs:
    """Normalised in/out adjacency of every session in a right-padded batch.

    Dense comparisons only (no unique, bincount or data-dependent sizes), so the same code
    trains, serves and exports to ONNX.
    """
    width = items.shape[1]
    pos = torch.arange(width, device=items.device)
    mask = pos.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T) real clicks
    same = (items.unsqueeze(2) == items.unsqueeze(1)) & mask.unsqueeze(1)  # (B, T, T)
    alias = same.to(torch.uint8).argmax(2) * mask  # first click of the same item; 0 at padding
    is_node = (alias == pos) & mask
    nodes = items * is_node
    slot = (alias.unsqueeze(2) == pos).to(torch.float32)  # (B, T, T) one-hot of each click's node
    edge = (mask[:, 1:] & mask[:, :-1]).unsqueeze(2)  # consecutive real clicks t → t+1
    src, dst = slot[:, :-1] * edge, slot[:, 1:]
    adj = (src.transpose(1, 2) @ dst).clamp(max=1.0)  # binary edges u→v
    a_in = (adj / adj.sum(1, keepdim=True).clamp(min=1.0)).transpose(1, 2)
    a_out = adj / adj.sum(2, keepdim=True).clamp(min=1.0)
    return SessionGraphs(nodes, alias, a_in, a_out)


class GatedGraphCell(nn.Module):
    """One GGNN propagation step over in- and out-edges (Eqs. 1-5)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.edge_in = nn.Linear(d, d)
        self.edge_out = nn.Linear(d, d)
        self.b_iah = nn.Parameter(torch.zeros(d))
        self.b_oah = nn.Parameter(torch.zeros(d))
        self.gru = nn.GRUCell(2 * d, d)

    def forward(self, a_in: torch.Tensor, a_out: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        msg_in = a_in @ self.edge_in(h) + self.b_iah
        msg_out = a_out @ self.edge_out(h) + self.b_oah
        a = torch.cat([msg_in, msg_out], dim=2)  # a_{s,i} (Eq. 1)
        d = h.shape[-1]
        return self.gru(a.reshape(-1, 2 * d), h.reshape(-1, d)).view_as(h)  # Eqs. 2-5


class SRGNN(DotProductScorer):
    """Scores items by ŷ_i = s_hᵀ v_i (Eq. 8)."""

    def __init__(self, num_items: int, p: SRGNNParams) -> None:
        super().__init__()
        d = p.hidden_size
        self.step, self.nonhybrid = p.step, p.nonhybrid
        self.item_emb = nn.Embedding(num_items + 1, d)
        self.ggnn = GatedGraphCell(d)
        # α_i = qᵀ σ(W1 v_n + W2 v_i + c), unnormalised (Eq. 6)
        self.attention = AttentionReadout(d, d, d, "sigmoid", normalize=False)
        self.hybrid = nn.Linear(2 * d, d)  # W3 (Eq. 7)
        bound = 1.0 / math.sqrt(d)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """s_h (B, d), the hybrid session embedding (Eq. 7)."""
        g = session_graphs(items, lengths)
        h = self.item_emb(g.nodes)
        for _ in range(self.step):
            h = self.ggnn(g.a_in, g.a_out, h)
        seq = h.gather(1, g.alias.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # node per click
        s_l = gather_last(seq, lengths)  # local: the last click's node (Eq. 6)
        s_g = self.attention(seq, s_l, items > 0)  # global: Σ α_i v_i (Eq. 6)
        return s_g if self.nonhybrid else self.hybrid(torch.cat([s_l, s_g], dim=1))  # (Eq. 7)


@register
class SRGNNRecommender(NeuralRecommender):
    name = "srgnn"
    description = "SR-GNN (Wu et al. 2019): gated GNN over each session graph, attention readout"
    Params = SRGNNParams
    Module = SRGNN
    train_defaults = {
        "lr": 1e-3,
        "batch_size": 100,
        "weight_decay": 1e-5,
        "lr_decay": 0.1,
        "lr_decay_every": 3,
    }
    train_source = (
        "SR-GNN code, pytorch_code/main.py: batch 100, lr 1e-3, l2 1e-5, lr × 0.1 every 3 epochs"
    )
