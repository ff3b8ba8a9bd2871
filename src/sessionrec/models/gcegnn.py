"""GCE-GNN (Wang et al., SIGIR 2020): global-context enhanced graph neural networks.

Session-level attention over each session's graph plus session-aware attention over a global
ε-neighbourhood graph of the fitting sessions, sum-pooled and read out by position-aware
attention. Details follow the authors' code (CCIIPLab/GCE-GNN) where the paper is silent.

Spec: docs/baselines-graph.md#gce-gnn-gcegnn
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import (
    ItemEmbedding,
    PositionAwareReadout,
    by_length,
    linear_cross_entropy,
    masked_mean,
    one_gradient,
    score_all_items,
)
from sessionrec.models.registry import register
from sessionrec.progress import status

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset

NONE, SELF, IN, OUT, IN_OUT = 0, 1, 2, 3, 4  # session-graph edge types r_ij (Sec. 3.2.2)


@dataclass
class GCEGNNParams:
    embedding_dim: int = 100  # paper Sec. 4.1.3: 100
    epsilon: int = 3  # ε-neighbourhood; authors' build_graph.py counts distances 1..3
    num_neighbors: int = 12  # paper / code: 12 neighbours per item
    hops: int = 1  # code default n_iter = 1 (per-dataset values: dataset_presets)
    dropout_global: float = 0.5  # code default, dropout on h^g in Eq. 10
    dropout_local: float = 0.0  # code default
    dropout_gcn: float = 0.0  # code default (per-dataset values: dataset_presets), Eq. 5 input
    leaky_slope: float = 0.2  # code: LeakyReLU α = 0.2
    max_position: int = 200  # code: 200 reverse-position embeddings
    # items with fewer neighbours than slots: "mask" attends to each real neighbour once (the
    # paper's softmax over N_ε(v)); "sample" fills the slots as the code's utils.handle_adj
    # does, drawing the real neighbours with replacement once at start-up
    neighbor_fill: Literal["mask", "sample"] = "mask"
    # the code's item table has no padding row: row 0 is learned (under L2, from its uniform
    # init) and an item without global neighbours aggregates 12 copies of it (h_n = e_0, Eq. 4),
    # where the paper's softmax over an empty N_ε(v) gives h_n = 0
    learned_padding: bool = False
    readout_bias: bool = True  # b_3 of Eq. 11 (paper); the code's z-transform w_1 has none

    def validate(self) -> None:
        if min(self.embedding_dim, self.epsilon, self.num_neighbors, self.hops) < 1:
            raise ConfigError("embedding_dim, epsilon, num_neighbors and hops must be >= 1")
        for name in ("dropout_global", "dropout_local", "dropout_gcn"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.neighbor_fill not in ("mask", "sample"):
            raise ConfigError(f"neighbor_fill must be mask or sample, got {self.neighbor_fill!r}")


def build_global_graph(
    sessions: Sessions, num_items: int, epsilon: int, num_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`num_neighbors` ε-neighbours of each item and their counts, (N+1, S) each; 0 pads."""
    lengths = sessions.lengths
    sid = np.repeat(np.arange(len(sessions), dtype=np.int64), lengths)
    pos = np.arange(len(sessions.items), dtype=np.int64) - sessions.offsets[sid]
    max_len = int(lengths.max(initial=1))
    src, dst, rank = [], [], []
    for k in range(1, epsilon + 1):
        p = np.flatnonzero(pos + k < lengths[sid])
        a, b = sessions.items[p], sessions.items[p + k]
        # order of the code's relation list: session, distance, position, direction
        r = ((sid[p] * epsilon + (k - 1)) * max_len + pos[p]) * 2
        src += [a, b]
        dst += [b, a]
        rank += [r, r + 1]
    u, v, r = (np.concatenate(x) for x in (src, dst, rank))
    width = int(r.max(initial=0)) + 1
    key = np.sort((u * (num_items + 1) + v) * width + r)  # by pair, then first occurrence
    pair = key // width
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    count = np.diff(np.r_[first, len(pair)])
    pu, pv, first_rank = (
        pair[first] // (num_items + 1),
        pair[first] % (num_items + 1),
        key[first] % width,
    )
    # per item: heaviest first, ties by first occurrence (one int64 sort beats np.lexsort)
    top = int(count.max(initial=0)) + 1
    if (num_items + 1) * top * width < 2**62:
        order = np.argsort((pu * top + (top - 1 - count)) * width + first_rank)
    else:
        order = np.lexsort((first_rank, -count, pu))
    pu, pv, count = pu[order], pv[order], count[order]
    start = np.flatnonzero(np.r_[True, pu[1:] != pu[:-1]])
    slot = np.arange(len(pu)) - np.repeat(start, np.diff(np.r_[start, len(pu)]))
    keep = slot < num_neighbors
    neighbors = np.zeros((num_items + 1, num_neighbors), dtype=np.int64)
    weights = np.zeros((num_items + 1, num_neighbors), dtype=np.float32)
    neighbors[pu[keep], slot[keep]] = pv[keep]
    weights[pu[keep], slot[keep]] = count[keep]
    return neighbors, weights


def sample_neighbors(
    neighbors: torch.Tensor, weights: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The code's slot filling (utils.handle_adj): an item with 0 < n < S neighbours (its first
    n slots) gets S draws of them with replacement, with their counts; full and empty rows stay.
    The attention's softmax then weighs each neighbour by its number of copies."""
    s = neighbors.shape[1]
    n = (neighbors > 0).sum(1, keepdim=True)
    draw = (torch.rand(neighbors.shape, generator=generator) * n).long()  # < n
    partial = (n > 0) & (n < s)
    idx = torch.where(partial, draw, torch.arange(s).expand_as(neighbors))
    return neighbors.gather(1, idx), weights.gather(1, idx)


def session_graph(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct items per session (B, N), each click's node (B, T) and edge types (B, N, N).

    types[b, i, j] is the relation of node j to node i: OUT if i→j was clicked, IN if j→i,
    IN_OUT if both, SELF on the diagonal, NONE otherwise. Nodes are sorted by item id.
    """
    mask = items > 0
    vals, order = items.masked_fill(~mask, torch.iinfo(items.dtype).max).sort(dim=1)
    real = vals != torch.iinfo(items.dtype).max
    new = real.clone()
    new[:, 1:] &= vals[:, 1:] != vals[:, :-1]
    rank = new.long().cumsum(1) - 1  # node index of each sorted click
    alias = torch.zeros_like(items).scatter_(1, order, rank.clamp(min=0))
    alias = alias.masked_fill(~mask, 0)
    n = max(int(new.sum(1).max()), 1)
    nodes = torch.zeros(items.shape[0], n, dtype=items.dtype, device=items.device)
    b, t = new.nonzero(as_tuple=True)
    nodes[b, rank[b, t]] = vals[b, t]
    out = torch.zeros(items.shape[0], n, n, dtype=torch.bool, device=items.device)
    b, t = mask[:, 1:].nonzero(as_tuple=True)  # click t -> click t + 1
    out[b, alias[b, t], alias[b, t + 1]] = True
    inn = out.transpose(1, 2)
    types = torch.full_like(out, NONE, dtype=torch.long)
    types = types.masked_fill(inn, IN).masked_fill(out, OUT).masked_fill(out & inn, IN_OUT)
    eye = torch.eye(n, dtype=torch.bool, device=items.device).unsqueeze(0)
    return nodes, alias, types.masked_fill(eye, SELF)  # padding nodes get SELF: no empty rows


class GlobalAggregator(nn.Module):
    """One hop of session-aware attention over global neighbours (Eqs. 1-5)."""

    def __init__(self, dim: int, dropout: float, slope: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim + 1, dim, bias=False)  # W1 in Eq. 1
        self.q_1 = nn.Linear(dim, 1, bias=False)  # q1 in Eq. 1
        self.w_2 = nn.Linear(2 * dim, dim, bias=False)  # W2 in Eq. 5
        self.dropout = nn.Dropout(dropout)
        self.slope = slope

    def forward(
        self,
        self_vec: torch.Tensor,  # (B, M, d)
        neigh_vec: torch.Tensor,  # (B, M, S, d)
        weight: torch.Tensor,  # (B, M, S) co-occurrence counts w_ij
        mask: torch.Tensor,  # (B, M, S) real neighbours
        session: torch.Tensor,  # (B, d) s of Eq. 2
    ) -> torch.Tensor:
        # W1 [s ⊙ h_vj ; w_ij] = h_vj (W1ₛ diag(s))ᵀ + w_ij W1_w: one product per session,
        # without the (B, M, S, d + 1) concatenation (Eq. 1)
        w_s, w_w = self.w_1.weight[:, :-1], self.w_1.weight[:, -1]
        per_session = (w_s * session[:, None, :]).transpose(1, 2)  # (B, d, d)
        z = (neigh_vec.flatten(1, 2) @ per_session).view_as(neigh_vec)
        z = z + weight.unsqueeze(-1) * w_w
        pi = self.q_1(F.leaky_relu(z, self.slope)).squeeze(-1)  # Eq. 1
        pi = pi.masked_fill(~mask, -1e9).softmax(-1) * mask  # Eq. 3; no neighbours -> 0
        h_n = (pi.unsqueeze(-2) @ neigh_vec).squeeze(-2)  # Eq. 4
        return torch.relu(self.w_2(self.dropout(torch.cat([self_vec, h_n], -1))))  # Eq. 5


class GCEGNN(nn.Module):
    length_groups = True  # session_vectors does not depend on the padding (right, masked)

    def __init__(self, num_items: int, p: GCEGNNParams) -> None:
        super().__init__()
        d, self.p = p.embedding_dim, p
        self.item_emb = ItemEmbedding(
            num_items + 1, d, padding_idx=None if p.learned_padding else 0
        )
        self.a = nn.Parameter(torch.empty(4, d))  # a_self, a_in, a_out, a_in-out (Eq. 7)
        self.global_agg = nn.ModuleList(
            GlobalAggregator(d, p.dropout_gcn, p.leaky_slope) for _ in range(p.hops)
        )
        self.readout = PositionAwareReadout(d, p.max_position, z_bias=p.readout_bias)
        shape = (num_items + 1, p.num_neighbors)
        self.register_buffer("neighbors", torch.zeros(shape, dtype=torch.long))
        self.register_buffer("neighbor_weights", torch.zeros(shape))
        bound = d**-0.5
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)
        if not p.learned_padding:
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

    def prepare(self, dataset: SessionDataset) -> None:
        """Build the global graph from the training sessions into buffers."""
        with status("building GCE-GNN's global item graph"):
            nb, w = build_global_graph(
                dataset.fit_sessions(), dataset.num_items, self.p.epsilon, self.p.num_neighbors
            )
        nb, w = torch.from_numpy(nb), torch.from_numpy(w)
        if self.p.neighbor_fill == "sample":
            nb, w = sample_neighbors(nb, w)
        self.neighbors = nb.to(self.neighbors.device)
        self.neighbor_weights = w.to(self.neighbor_weights.device)

    def session_level(self, h: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Attention over the session graph with one vector a_r per edge type (Eqs. 7-9)."""
        e = (h.unsqueeze(1) * self.a[None, :, None, :]) @ h.transpose(1, 2).unsqueeze(1)
        e = F.leaky_relu(e, self.p.leaky_slope)  # (B, 4, N, N): a_rᵀ(h_i ⊙ h_j) per type
        e = e.gather(1, (types - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        alpha = e.masked_fill(types == NONE, float("-inf")).softmax(-1)  # Eq. 8
        return alpha @ h  # Eq. 9

    def global_level(
        self, ids: list[torch.Tensor], vecs: list[torch.Tensor], session: torch.Tensor
    ) -> torch.Tensor:
        """Multi-hop session-aware aggregation over the global neighbours (Eqs. 1-6).

        ids[h] (B, M_h) are the items at hop h (ids[0] = the session's nodes, ids[h + 1] their
        neighbours), vecs[h] their embeddings.
        """
        bsz, s, d = ids[0].shape[0], self.p.num_neighbors, vecs[0].shape[-1]
        weights = [self.neighbor_weights[i] for i in ids[:-1]]
        masks = [i.view(bsz, -1, s) > 0 for i in ids[1:]]
        if self.p.learned_padding:  # an empty neighbour list attends to S copies of e_0
            masks = [m | ~m.any(-1, keepdim=True) for m in masks]
        for agg in self.global_agg:  # hop k combines level h with level h + 1 (Eq. 6)
            vecs = [
                agg(
                    vecs[h],
                    vecs[h + 1].view(bsz, -1, s, d),
                    weights[h],
                    masks[h],
                    session,
                )
                for h in range(len(vecs) - 1)
            ]
        return vecs[0]

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """S (B, d), the position-aware session embedding (Eqs. 11-14)."""
        mask = items > 0
        nodes, alias, types = session_graph(items)
        ids = [nodes]
        for _ in range(self.p.hops):
            ids.append(self.neighbors[ids[-1]].reshape(nodes.shape[0], -1))
        # one lookup for clicks, nodes and neighbours: one dense gradient for the table
        flat = self.item_emb(torch.cat([items.reshape(-1)] + [i.reshape(-1) for i in ids]))
        x, *vecs = flat.split([items.numel()] + [i.numel() for i in ids])
        vecs = [v.view(*i.shape, -1) for v, i in zip(vecs, ids, strict=True)]
        session = masked_mean(x.view(*items.shape, -1), mask)  # s (Eq. 2)
        h_local = F.dropout(self.session_level(vecs[0], types), self.p.dropout_local, self.training)
        h_global = F.dropout(
            self.global_level(ids, vecs, session), self.p.dropout_global, self.training
        )
        h_node = h_local + h_global  # sum pooling (Eq. 10)
        h_click = h_node.gather(1, alias.unsqueeze(-1).expand(-1, -1, h_node.shape[-1]))
        return self.readout(h_click, lengths, mask)  # S (Eqs. 11-14)

    def encode(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """S for a batch: a training batch by length groups (`by_length`), since every hop
        multiplies the padded nodes by 12 neighbours (docs/performance.md#length-groups)."""
        if self.training and self.length_groups:
            with one_gradient(self.item_emb):
                return by_length(self.session_vectors, items, lengths)
        return self.session_vectors(items, lengths)

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        s_final = self.encode(items, lengths)
        logits = score_all_items(s_final, self.item_vectors())  # ẑ_i = Sᵀ h_vi (Eq. 15)
        return logits.index_fill_(
            1, torch.zeros(1, dtype=torch.long, device=items.device), -torch.inf
        )

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """Cross-entropy of `forward`'s logits (Eq. 16), without holding them."""
        s_final = self.encode(batch.items, batch.lengths)
        return linear_cross_entropy(s_final, self.item_vectors(), batch.targets, skip_padding=True)


@register
class GCEGNNRecommender(NeuralRecommender):
    name = "gcegnn"
    description = (
        "GCE-GNN (Wang et al. 2020): session-graph and global-graph attention, position readout"
    )
    Params = GCEGNNParams
    Module = GCEGNN
    train_defaults = {
        "lr": 1e-3,
        "batch_size": 100,
        "weight_decay": 1e-5,
        "lr_decay": 0.1,
        "lr_decay_every": 3,
    }
    train_source = "GCE-GNN code, main.py and model.py: batch 100, lr 1e-3, l2 1e-5, StepLR(3, 0.1)"
    dataset_presets = {
        "diginetica": {"hops": 2, "dropout_gcn": 0.2, "dropout_local": 0.0},
        "tmall": {"hops": 1, "dropout_gcn": 0.6, "dropout_local": 0.5},
    }
    presets_source = "GCE-GNN code, main.py: n_iter, dropout_gcn, dropout_local per dataset"
