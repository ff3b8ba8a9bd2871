"""LINet (Chen & Wong, "Session-based Recommendation with Local Invariance", ICDM 2019).

A local encoder of Gaussian-weighted self-attention groups (Eq. 2–7), a GRU with attention
over its states (Eq. 8–10) and a linear predictor (Eq. 11–12). No public code exists; the
paper is the spec, and the choices it leaves open are ours. The ablations of Table II are
registered models of their own.

Spec: docs/linet.md#choices-the-paper-leaves-open
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from sessionrec.errors import ConfigError
from sessionrec.graph.fogcn import numba_available
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import (
    AttentionReadout,
    DotProductScorer,
    ItemEmbedding,
    gather_last,
    masked_mean,
)
from sessionrec.models.registry import register


@dataclass
class LINetParams:
    embedding_dim: int = 100  # d; paper: not given (100 as STAMP/SR-GNN, its baselines)
    hidden_size: int = 100  # GRU and attention size; paper: not given
    m: int = 2  # context size for σ_i² (Eq. 7); paper suggests 1–3
    k_init: float = 4.0  # k in Eq. 7 at initialisation; paper: "a parameter", no value
    learn_k: bool = True  # k is learned end to end (as "all parameters", Sec. II-F)
    # σ_i² = k·s̄_i (Eq. 7) floored at min_variance; softplus(k·s̄_i) + min_variance measured
    # the same (docs/linet.md), so the paper's form is the default
    variance: Literal["softplus", "clamp"] = "clamp"
    min_variance: float = 1e-3  # floor (clamp) or added (softplus)
    emb_init_std: float = 0.1  # item embeddings N(0, 0.1²) ≈ 1/√d; paper: not given
    emb_dropout: float = 0.25  # paper: not given (NARM's value)
    c_dropout: float = 0.5  # dropout on c = [c_h ; x_t]; paper: not given (NARM's value)
    # Ablation switches (Table II); each ablation is a registered model with its own default.
    local_encoder: bool = True  # False: LINet-No-LE
    global_encoder: bool = True  # False: LINet-No-GE (mean of group features)
    attention_weights: bool = True  # False: LINet-No-AW (w ∝ f_i)
    gaussian_weights: bool = True  # False: LINet-No-GW (w = α)

    def validate(self) -> None:
        if self.embedding_dim < 1 or self.hidden_size < 1 or self.m < 1:
            raise ConfigError("embedding_dim, hidden_size and m must be at least 1")
        if self.k_init <= 0 or self.min_variance <= 0 or self.emb_init_std <= 0:
            raise ConfigError("k_init, min_variance and emb_init_std must be positive")
        if not 0 <= self.emb_dropout < 1 or not 0 <= self.c_dropout < 1:
            raise ConfigError("dropout rates must be in [0, 1)")
        if self.local_encoder and not (self.attention_weights or self.gaussian_weights):
            raise ConfigError("the local encoder needs attention_weights or gaussian_weights")


def neighbour_similarity(x: torch.Tensor, mask: torch.Tensor, m: int) -> torch.Tensor:
    """s̄_i: mean cosine of x_i with the real clicks l, 0 < |i − l| ≤ m (0 if none) (B, T)."""
    xn = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    cos = xn @ xn.transpose(1, 2)  # (B, T, T)
    pos = torch.arange(x.shape[1], device=x.device)
    dist = (pos[:, None] - pos[None, :]).abs()
    band = ((dist > 0) & (dist <= m)).unsqueeze(0) & mask.unsqueeze(1) & mask.unsqueeze(2)
    band = band.to(x.dtype)
    return (cos * band).sum(-1) / band.sum(-1).clamp(min=1.0)


def gaussian_variance(
    sim: torch.Tensor, k: torch.Tensor | float, kind: str = "softplus", min_variance: float = 1e-3
) -> torch.Tensor:
    """σ_i² = k·s̄_i (Eq. 7), kept positive by softplus(·) + min_variance or a floor."""
    linear = k * sim
    if kind == "softplus":
        return F.softplus(linear) + min_variance
    if kind == "clamp":
        return linear.clamp(min=min_variance)
    raise ConfigError(f"unknown variance kind '{kind}' (softplus or clamp)")


def additive_logits(
    a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """e_ij = vᵀ tanh(a_i + b_j) (B, T, T) for real clicks i and j (Eq. 5; other pairs are
    masked later). "auto": fused numba kernels for float32/float64 CPU tensors when numba is
    installed (docs/linet.md#cost-on-cpu), else the (B, T, T, H) torch form."""
    if _use_kernels(a, backend):
        from sessionrec.models.additive_kernels import AdditiveScores

        return AdditiveScores.apply(a, b, v, mask)
    return torch.tanh(a.unsqueeze(2) + b.unsqueeze(1)) @ v


def _use_kernels(a: torch.Tensor, backend: str) -> bool:
    if backend not in ("auto", "numba", "torch"):
        raise ConfigError(f"unknown attention backend {backend!r}; choose auto, numba or torch")
    fits = a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64)
    fits = fits and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())
    fits = fits and not torch.compiler.is_compiling()
    if backend == "numba" and not (fits and numba_available()):
        raise ConfigError("the numba attention backend needs numba and float32/float64 CPU tensors")
    return backend != "torch" and fits and numba_available()


def local_weights(
    e: torch.Tensor | None, variance: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """w_ij ∝ α_ij f_i(|i−j|), Σ_j w_ij = 1 over real j (Eq. 3–4); padded rows are 0.

    `e` (B, T, T) are the attention logits e_ij (None: no attention weights), `variance`
    (B, T) the σ_i² (None: no Gaussian weights). In log space the softmax normaliser of α and
    the 1/√(2πσ²) of f_i cancel: w_i = softmax_j(e_ij − |i−j|² / 2σ_i²).
    """
    b, t = mask.shape
    logits = torch.zeros(b, t, t, device=mask.device)
    if e is not None:
        logits = logits + e
    if variance is not None:
        pos = torch.arange(t, device=mask.device, dtype=logits.dtype)
        dist2 = (pos[:, None] - pos[None, :]) ** 2
        logits = logits - dist2.unsqueeze(0) / (2 * variance.unsqueeze(-1))
    logits = logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return logits.softmax(-1) * mask.unsqueeze(-1).to(logits.dtype)


class LocalEncoder(nn.Module):
    """Group features x'_i = Σ_j w_ij x_j (Eq. 2) with attention and Gaussian weights."""

    def __init__(self, p: LINetParams) -> None:
        super().__init__()
        d = p.embedding_dim
        self.p = p
        # e_ij = v_lᵀ tanh(W_l [x_i ; x_j]) = v_lᵀ tanh(W_a x_i + W_b x_j) (Eq. 5)
        self.w_i = nn.Linear(d, p.hidden_size, bias=False)
        self.w_j = nn.Linear(d, p.hidden_size, bias=False)
        self.v = nn.Linear(p.hidden_size, 1, bias=False)
        self.backend = "auto"  # additive_logits' kernels: "torch" forces the torch form
        rho = math.log(math.expm1(p.k_init))  # k = softplus(ρ) > 0
        if p.learn_k:
            self.rho = nn.Parameter(torch.tensor(rho))
        else:
            self.register_buffer("rho", torch.tensor(rho))

    @property
    def k(self) -> torch.Tensor:
        return F.softplus(self.rho)

    def attention_logits(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """e_ij (B, T, T) of Eq. 5 for real clicks i and j."""
        return additive_logits(self.w_i(x), self.w_j(x), self.v.weight[0], mask, self.backend)

    def variance(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """σ_i² (B, T) of Eq. 7."""
        sim = neighbour_similarity(x, mask, self.p.m)
        return gaussian_variance(sim, self.k, self.p.variance, self.p.min_variance)

    def weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """w (B, T, T) of Eq. 3–4 (or of an ablation)."""
        e = self.attention_logits(x, mask) if self.p.attention_weights else None
        var = self.variance(x, mask) if self.p.gaussian_weights else None
        return local_weights(e, var, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.weights(x, mask) @ x  # x'_i = Σ_j w_ij x_j (Eq. 2)


class LINet(DotProductScorer):
    """Scores items by z_i = v_iᵀ g(c) (Eq. 11)."""

    length_groups = True  # the local attention's T² over padding: docs/linet.md#cost-on-cpu

    def __init__(self, num_items: int, p: LINetParams) -> None:
        super().__init__()
        d = p.embedding_dim
        self.p = p
        self.item_emb = ItemEmbedding(num_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=p.emb_init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.emb_dropout = nn.Dropout(p.emb_dropout)
        self.local = LocalEncoder(p) if p.local_encoder else None
        if p.global_encoder:
            self.gru = nn.GRU(d, p.hidden_size, batch_first=True)
            # e_i = v_gᵀ tanh(W_g [h_i ; h_t]), α = masked softmax (Eq. 9–10)
            self.attention = AttentionReadout(
                p.hidden_size, p.hidden_size, p.hidden_size, "tanh", True
            )
        c_dim = (p.hidden_size if p.global_encoder else d) + d
        self.c_dropout = nn.Dropout(p.c_dropout)
        self.g = nn.Linear(c_dim, d, bias=False)  # g in Eq. 11

    def session_representation(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """c = [c_h ; x_t] (B, c_dim), before dropout and g."""
        mask = items > 0
        x = self.emb_dropout(self.item_emb(items))
        groups = self.local(x, mask) if self.local is not None else x  # x'_i (Eq. 2)
        if self.p.global_encoder:
            h, _ = self.gru(groups)  # causal: right padding is harmless
            c_h = self.attention(h, gather_last(h, lengths), mask)  # Σ α_i h_i (Eq. 8)
        else:
            c_h = masked_mean(groups, mask)  # LINet-No-GE
        return torch.cat([c_h, gather_last(x, lengths)], dim=1)  # c = [c_h ; m_t = x_t]

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """g(c) (B, d)."""
        return self.g(self.c_dropout(self.session_representation(items, lengths)))


class _LINetBase(NeuralRecommender):
    """Shared by LINet and its ablations (each registered on its own; not subclasses)."""

    Params = LINetParams
    Module = LINet
    # docs/linet.md#choices-the-paper-leaves-open (training): measured on all of Diginetica.
    train_defaults = {"batch_size": 512, "weight_decay": 0.0}
    train_source = "not given in the LINet paper: NARM's code's batch 512 and no L2, measured best"


@register
class LINetRecommender(_LINetBase):
    name = "linet"
    description = (
        "LINet (Chen & Wong 2019): Gaussian-weighted local self-attention, then GRU with attention"
    )


@dataclass
class LINetNoLEParams(LINetParams):
    local_encoder: bool = False


@dataclass
class LINetNoGEParams(LINetParams):
    global_encoder: bool = False


@dataclass
class LINetNoAWParams(LINetParams):
    attention_weights: bool = False


@dataclass
class LINetNoGWParams(LINetParams):
    gaussian_weights: bool = False


@register
class LINetNoLERecommender(_LINetBase):
    name = "linet-no-le"
    description = "LINet ablation (Table II): no local encoder, GRU+attention on item embeddings"
    Params = LINetNoLEParams


@register
class LINetNoGERecommender(_LINetBase):
    name = "linet-no-ge"
    description = "LINet ablation (Table II): mean of the group features instead of the GRU"
    Params = LINetNoGEParams


@register
class LINetNoAWRecommender(_LINetBase):
    name = "linet-no-aw"
    description = "LINet ablation (Table II): local weights from the Gaussian only, w ∝ f_i"
    Params = LINetNoAWParams


@register
class LINetNoGWRecommender(_LINetBase):
    name = "linet-no-gw"
    description = "LINet ablation (Table II): local weights from self-attention only, w = α"
    Params = LINetNoGWParams
