"""Building blocks shared by several models (each lives here once)."""

from __future__ import annotations

import torch
from torch import nn


def score_all_items(h: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
    """Full-softmax logits: inner product of each session vector with every item row (B, N+1)."""
    return h @ item_table.t()


def gather_last(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The state at each sequence's last real position from right-padded (B, T, D)."""
    idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, h.shape[-1])
    return h.gather(1, idx).squeeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real positions of (B, T, D) given a (B, T) boolean mask."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def reverse_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Position counted from the end: 0 for the last click, 1 for the one before (B, T)."""
    pos = lengths.unsqueeze(1) - 1 - torch.arange(width, device=lengths.device).unsqueeze(0)
    return pos.clamp(min=0)


class DotProductScorer(nn.Module):
    """A session encoder that scores every item i by hₛᵀvᵢ, vᵢ a row of its `item_emb` table.

    Subclasses define `session_vectors` (hₛ, (B, d)); `forward` gives the logits (B, N+1).
    """

    item_emb: nn.Embedding

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        table = self.item_vectors()  # v_i, (N+1, d)
        return score_all_items(self.session_vectors(items, lengths), table)


class ReversePositionEmbedding(nn.Module):
    """Learnable embedding of the reverse position (distance from the last click)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.table = nn.Embedding(max_len, dim)

    def forward(self, lengths: torch.Tensor, width: int) -> torch.Tensor:
        return self.table(reverse_positions(lengths, width).clamp(max=self.max_len - 1))


class AttentionReadout(nn.Module):
    """Additive attention pooling: e_j = vᵀ act(W_k k_j + W_q q + b), out = Σ_j a_j k_j.

    `normalize=False` keeps the raw weights (NARM, STAMP, SR-GNN); `True` applies a masked
    softmax over positions.
    """

    def __init__(
        self,
        key_dim: int,
        query_dim: int,
        hidden_dim: int,
        activation: str = "sigmoid",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.w_key = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_query = nn.Linear(query_dim, hidden_dim, bias=True)
        self.v = nn.Linear(hidden_dim, 1, bias=False)
        self.act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation]
        self.normalize = normalize

    def forward(self, keys: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.v(self.act(self.w_key(keys) + self.w_query(query).unsqueeze(1))).squeeze(-1)
        if self.normalize:
            a = e.masked_fill(~mask, float("-inf")).softmax(dim=1)
        else:
            a = e * mask.to(e.dtype)
        return (a.unsqueeze(-1) * keys).sum(1)


class PositionAwareReadout(nn.Module):
    """Soft attention with reverse positions (GCE-GNN Eqs. 11-14; DHCN's session embedding).

    z_i = tanh(W_z [h_i ; p_i] + b_z), β_i = qᵀ σ(W_1 z_i + W_2 mean(h) + b_1) (unnormalised),
    out = Σ_i β_i h_i; p_i embeds the distance from the last click. `use_position=False`
    gives z_i = tanh(h_i) (DHCN's Tmall variant).
    """

    def __init__(self, dim: int, max_len: int = 200, use_position: bool = True) -> None:
        super().__init__()
        self.positions = ReversePositionEmbedding(max_len, dim) if use_position else None
        self.w_z = nn.Linear(2 * dim, dim) if use_position else None
        self.w_1 = nn.Linear(dim, dim, bias=True)
        self.w_2 = nn.Linear(dim, dim, bias=False)
        self.q = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.positions is not None and self.w_z is not None:
            z = torch.tanh(self.w_z(torch.cat([h, self.positions(lengths, h.shape[1])], -1)))
        else:
            z = torch.tanh(h)
        mean = masked_mean(h, mask)
        beta = self.q(torch.sigmoid(self.w_1(z) + self.w_2(mean).unsqueeze(1)))
        return (beta * mask.unsqueeze(-1).to(h.dtype) * h).sum(1)
