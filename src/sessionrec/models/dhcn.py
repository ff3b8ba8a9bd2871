"""DHCN (Xia et al., AAAI 2021): self-supervised hypergraph convolutional networks.

A hypergraph channel (each fitting session a hyperedge) and a line-graph channel over the
batch's sessions, tied by a contrastive loss. Details follow the authors' code
(xiaxin1998/DHCN) where the paper is silent.

Spec: docs/baselines-graph.md#dhcn-dhcn
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.graph.locality import locality_order, permute
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import (
    PositionAwareReadout,
    linear_cross_entropy,
    score_all_items,
    weights_key,
)
from sessionrec.models.registry import register

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset


@dataclass
class DHCNParams:
    embedding_dim: int = 100  # paper: 100
    layers: int = 3  # authors' main.py default (--layer 3)
    beta: float = 0.01  # authors' README: best β on Diginetica 0.01 (Tmall 0.02)
    use_position: bool = True  # code: reverse positions except on Tmall
    max_position: int = 200  # code: 200 position embeddings
    # What a hyperedge is: "sessions" (the paper: each fitting session) or "prefixes" (the
    # code: each training input, i.e. every prefix without its last click, nested).
    hyperedges: str = "sessions"
    # The batch β was tuned at: the code sums L_S over its batches of 100, so each example's
    # SSL weight is β·100/B at any batch B, as in the code at 100. None: the sum at any batch
    # (each example weighs β; models saved before this option).
    ssl_batch: int | None = 100
    ADDED_SINCE: ClassVar[dict[str, Any]] = {"ssl_batch": None}

    def validate(self) -> None:
        if self.embedding_dim < 1 or self.layers < 0 or self.beta < 0:
            raise ConfigError("embedding_dim must be >= 1, layers >= 0 and beta >= 0")
        if self.ssl_batch is not None and self.ssl_batch < 1:
            raise ConfigError(f"ssl_batch must be >= 1 or none, got {self.ssl_batch}")
        if self.hyperedges not in ("sessions", "prefixes"):
            raise ConfigError(
                f"hyperedges must be 'sessions' or 'prefixes', got '{self.hyperedges}'"
            )


def hypergraph_incidence(sessions: Sessions) -> np.ndarray:
    """(2, nnz) [item; hyperedge] pairs: each session's distinct items, sessions in order."""
    sid = np.repeat(np.arange(len(sessions), dtype=np.int64), sessions.lengths)
    width = int(sessions.items.max(initial=0)) + 1
    key = np.sort(sid * width + sessions.items)  # (np.unique is ~80x slower in numpy 2.4)
    key = key[np.r_[True, key[1:] != key[:-1]]]
    return np.stack([key % width, key // width])


def training_prefixes(sessions: Sessions) -> Sessions:
    """Every training input of `sessions` as a session of its own: s₁..s_k for k < n (the
    authors' code builds its hypergraph from these)."""
    n = sessions.lengths
    count = np.maximum(n - 1, 0)  # prefixes per session
    lengths = np.arange(1, int(count.sum()) + 1) - np.repeat(np.cumsum(count) - count, count)
    starts = np.repeat(sessions.offsets[:-1], count)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    within = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], lengths)
    return Sessions(sessions.items[np.repeat(starts, lengths) + within], offsets)


def hypergraph_adjacency(incidence: np.ndarray, num_items: int) -> sp.csr_matrix:
    """D⁻¹ H W B⁻¹ Hᵀ over items 0..num_items (W = I; rows of unseen items are empty)."""
    item, edge = incidence
    num_edges = int(edge.max(initial=-1)) + 1
    h = sp.csr_matrix(
        (np.ones(len(item), np.float64), (item, edge)), shape=(num_items + 1, num_edges)
    )
    d = np.asarray(h.sum(1)).ravel()  # item degrees
    b = np.asarray(h.sum(0)).ravel()  # hyperedge degrees
    d_inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    b_inv = np.divide(1.0, b, out=np.zeros_like(b), where=b > 0)
    adj = sp.diags(d_inv) @ h @ sp.diags(b_inv) @ h.T
    return adj.astype(np.float32).tocsr()


_MEASURED_NNZ = 100_000  # A with fewer non-zeros keeps torch's product (DHCN._products)


def _to_torch_csr(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    m.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int32)),
            torch.from_numpy(m.indices.astype(np.int32)),
            torch.from_numpy(m.data),
            m.shape,
            device=device,
            check_invariants=False,
        )


class SparseMM(torch.autograd.Function):
    """A·X with a constant sparse A; the gradient is Aᵀ·G with a precomputed Aᵀ. A and Aᵀ are
    torch CSR tensors or `graph.spmm.CSRMatrix`es (the numba kernel).

    Both products run in A's dtype (float32): torch has no bf16 sparse CSR product, so under
    bf16 autocast X and G are cast up and the gradient back to X's dtype.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t, ctx.x_dtype = a_t, x.dtype
        with torch.autocast(x.device.type, enabled=False):
            return a @ x.to(a.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        with torch.autocast(grad.device.type, enabled=False):
            return None, None, (ctx.a_t @ grad.to(ctx.a_t.dtype)).to(ctx.x_dtype)


def line_graph(items: torch.Tensor) -> torch.Tensor:
    """D̂⁻¹(A + I) for the sessions of a batch: A_pq = |S_p ∩ S_q| / |S_p ∪ S_q| (B, B)."""
    uniq, inv = torch.unique(items, return_inverse=True)
    m = torch.zeros(items.shape[0], len(uniq), device=items.device)
    m.scatter_(1, inv, 1.0)
    m[:, uniq == 0] = 0.0  # padding is no item
    inter = m @ m.t()
    size = m.sum(1)
    a = inter / (size[:, None] + size[None, :] - inter)
    a.fill_diagonal_(1.0)  # A + I (the overlap of a session with itself is not counted)
    return a / a.sum(1, keepdim=True)


def ssl_loss(
    theta_h: torch.Tensor,
    theta_l: torch.Tensor,
    row_perm: torch.Tensor | None = None,
    col_perm: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contrast θ_h with θ_l (positive) and θ_l with row- then column-shuffled θ_h (negative)."""
    if row_perm is None:
        row_perm = torch.randperm(theta_h.shape[0], device=theta_h.device)
    if col_perm is None:
        col_perm = torch.randperm(theta_h.shape[1], device=theta_h.device)
    pos = (theta_h * theta_l).sum(1)  # f_D = inner product
    neg = (theta_l * theta_h[row_perm][:, col_perm]).sum(1)
    return (_neg_log_eps_sigmoid(pos) + _neg_log_eps_sigmoid(-neg)).sum()


def _neg_log_eps_sigmoid(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """−log(ε + σ(x)) as the code writes it, computed in log space.

    The code's −log(1e-8 + 1 − σ(neg)) is +inf in float32 once σ(neg) rounds to 1 (neg ≳ 17:
    1 + 1e-8 == 1), which ended DHCN runs on Tmall; 1 − σ(neg) = σ(−neg), and log-space keeps
    each term's value and its cap −log ε ≈ 18.4.
    """
    return -torch.logaddexp(torch.full_like(x, math.log(eps)), F.logsigmoid(x))


class DHCN(nn.Module):
    def __init__(self, num_items: int, p: DHCNParams) -> None:
        super().__init__()
        self.p, self.num_items = p, num_items
        d = p.embedding_dim
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.readout = PositionAwareReadout(d, p.max_position, p.use_position)
        self.register_buffer("incidence", torch.zeros(2, 0, dtype=torch.long))
        bound = d**-0.5
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self._adj: tuple[Any, ...] | None = None
        self.product = "torch"  # A·X on torch's CSR product or "numba" (graph/spmm.py)
        self._table: tuple[Any, torch.Tensor] | None = None

    def prepare(self, dataset: SessionDataset) -> None:
        """Each fitting session (or training input) becomes a hyperedge; the incidence is
        kept as a buffer."""
        sessions = dataset.fit_sessions()
        if self.p.hyperedges == "prefixes":
            sessions = training_prefixes(sessions)
        inc = hypergraph_incidence(sessions)
        self.incidence = torch.from_numpy(inc).to(self.incidence.device)
        self._adj = self._table = None

    def train(self, mode: bool = True) -> DHCN:
        if mode:
            self._table = None  # the cached item table is only for frozen weights
        return super().train(mode)

    def adjacency(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A, Aᵀ in locality order (graph/locality.py), the order and its inverse; built once
        per incidence."""
        inc = self.incidence
        key = (inc.data_ptr(), inc._version, tuple(inc.shape), inc.device)
        if self._adj is None or self._adj[0] != key:
            adj = hypergraph_adjacency(inc.cpu().numpy(), self.num_items)
            perm = locality_order(adj)
            adj = permute(adj, perm)
            inv = np.argsort(perm)  # the inverse permutation
            a, a_t = self._products(adj, inc.device)
            self._adj = (
                key,
                a,
                a_t,
                torch.from_numpy(perm).to(inc.device),
                torch.from_numpy(inv).to(inc.device),
            )
        return self._adj[1:]

    def _products(self, adj: sp.csr_matrix, device: torch.device) -> tuple[Any, Any]:
        """A and Aᵀ as torch's CSR tensors or, on a CPU where it multiplies A faster, as the
        numba kernel's matrices (graph/spmm.py); `self.product` says which. Small matrices
        keep torch's: there timing noise would decide, and a resumed run could switch."""
        adj_t = adj.T.tocsr()
        a = _to_torch_csr(adj, device)
        self.product = "torch"
        if device.type == "cpu" and adj.nnz >= _MEASURED_NNZ:
            try:
                from sessionrec.graph.spmm import CSRMatrix, faster_product
            except ImportError:  # numba missing: torch's product
                pass
            else:
                numba_a = CSRMatrix(adj)
                rng = np.random.default_rng(0)  # a probe that leaves torch's RNG alone
                probe = rng.standard_normal((adj.shape[1], self.p.embedding_dim), np.float32)
                self.product = faster_product(numba_a, a, torch.from_numpy(probe))
                if self.product == "numba":
                    return numba_a, CSRMatrix(adj_t)
        return a, _to_torch_csr(adj_t, device)

    def item_table(self) -> torch.Tensor:
        """X_h = 1/(L+1) Σ_l (D⁻¹HWB⁻¹Hᵀ)^l X⁽⁰⁾ over all items; cached in eval mode."""
        w = self.item_emb.weight
        key = weights_key(w, self.incidence)  # fused Adam steps too (they keep _version)
        frozen = not self.training and not torch.is_grad_enabled()
        if frozen and self._table is not None and self._table[0] == key:
            return self._table[1]
        a, a_t, perm, inv = self.adjacency()
        x = w.index_select(0, perm)  # rows in locality order for the products
        total = x
        for _ in range(self.p.layers):
            x = SparseMM.apply(a, a_t, x)
            total = total + x
        table = total.index_select(0, inv) / (self.p.layers + 1)
        if frozen:
            self._table = (key, table)
        return table

    def session_embedding(
        self, table: torch.Tensor, items: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """θ_h: reverse-position soft attention over the clicks' hypergraph embeddings."""
        return self.readout(F.embedding(items, table), lengths, items > 0)

    def line_channel(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """θ_l: L layers of D̂⁻¹(A+I) over the batch's sessions, averaged with layer 0."""
        theta = self.item_emb(items).sum(1) / lengths.unsqueeze(1).to(self.item_emb.weight.dtype)
        prop, total = line_graph(items), theta
        for _ in range(self.p.layers):
            theta = prop @ theta
            total = total + theta
        return total / (self.p.layers + 1)

    def _scores(self, theta_h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        logits = score_all_items(theta_h, table)  # ẑ = θ_hᵀ X_h over all items
        zero = torch.zeros(1, dtype=torch.long, device=logits.device)
        return logits.index_fill_(1, zero, -torch.inf)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        table = self.item_table()
        return self._scores(self.session_embedding(table, items, lengths), table)

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.session_embedding(self.item_table(), items, lengths)

    def export_module(self) -> nn.Module:
        """This scoring with X_h computed now and held as a constant (serving/onnx.py: the
        exporters cannot trace the sparse CSR product)."""
        return FrozenDHCN(self)

    def item_vectors(self) -> torch.Tensor:
        return self.item_table()

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """Cross-entropy over all items + β · SSL between the two channels (L_S summed over the
        batch, as the code, and scaled by ssl_batch / B)."""
        items, lengths, targets = batch.items, batch.lengths, batch.targets
        table = self.item_table()
        theta_h = self.session_embedding(table, items, lengths)
        loss = linear_cross_entropy(theta_h, table, targets, skip_padding=True)  # as _scores
        if self.p.beta > 0:
            beta = self.p.beta
            if self.p.ssl_batch is not None:
                beta *= self.p.ssl_batch / len(lengths)
            loss = loss + beta * ssl_loss(theta_h, self.line_channel(items, lengths))
        return loss


@register
class DHCNRecommender(NeuralRecommender):
    name = "dhcn"
    description = (
        "DHCN (Xia et al. 2021): hypergraph and line-graph convolution with self-supervision"
    )
    Params = DHCNParams
    Module = DHCN
    train_defaults = {"lr": 1e-3, "batch_size": 100, "weight_decay": 0.0}
    train_source = "DHCN code, main.py and model.py: batch 100, Adam lr 1e-3 without weight decay"
    dataset_presets = {"tmall": {"beta": 0.02, "use_position": False}}
    presets_source = (
        "DHCN code: model.py's Tmall branch (no position embeddings); README: best β 0.02 on Tmall"
    )
    # What each setting rests on: docs/baselines-graph.md, "CPU recipe".
    recipes = {
        "cpu": {
            "batch_size": 512,
            "lr": 2e-3,
            "amp": "auto",
            "max_minutes": 150.0,
        }
    }


class FrozenDHCN(nn.Module):
    """DHCN's forward for frozen weights: X_h is a buffer, so only the readout and the
    scoring remain (the same scores as DHCN.forward in eval mode)."""

    def __init__(self, net: DHCN) -> None:
        super().__init__()
        self.net = net.eval()
        with torch.no_grad():
            self.register_buffer("table", net.item_table().detach().clone())

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        table = self.table
        return self.net._scores(self.session_vectors(items, lengths), table)

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.session_embedding(self.table, items, lengths)
