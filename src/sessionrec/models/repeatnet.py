"""RepeatNet (Ren et al., AAAI 2019): a repeat-explore mixture over a GRU session encoder.

"RepeatNet: A Repeat Aware Neural Recommendation Machine for Session-based Recommendation",
checked against the authors' Chainer code. `forward` returns log P(i), exact because the
repeat and explore distributions have disjoint supports.

Spec: docs/baselines-neural.md#repeatnet--ren-et-al-aaai-2019
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from sessionrec.data.batching import Batch
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import AttentionReadout, by_length, gather_last, score_all_items
from sessionrec.models.registry import register


@dataclass
class RepeatNetParams:
    embedding_dim: int = 100  # paper: 100
    hidden_size: int = 100  # paper: 100
    dropout: float = 0.5  # code: 0.5 on h_t and on the GRU states (decoder.py:84-85)
    # Code: none. Its NStepGRU(1, 100, 100, 0.5) drops only the inputs of stacked layers
    # above the first (Chainer's n_step_rnn and cuDNN), so a 1-layer GRU gets no dropout.
    # The PyTorch port drops 0.5 of the embeddings (its Model.py:67).
    embedding_dropout: float = 0.0
    # "glorot": item table, every Linear and each GRU gate matrix Glorot-normal with zero
    # GRU biases, as the code's GlorotNormal initialisers; "torch": PyTorch's defaults
    # (item table N(0, 1)).
    init: Literal["glorot", "torch"] = "glorot"
    # b in the three attentions' vᵀ tanh(W h_t + U h_τ + b): none in Eqs. 3, 5 and 7 nor in the
    # code (attention.py); models saved before this option had one (ADDED_SINCE).
    attention_bias: bool = False
    ADDED_SINCE: ClassVar[dict[str, Any]] = {"attention_bias": True}


class AdditiveScores(nn.Module):
    """Attention logits e_τ = vᵀ tanh(W q + U k_τ [+ b]) with padding at -∞ (B, T)."""

    def __init__(self, dim: int, bias: bool = False) -> None:
        super().__init__()
        self.w_key = nn.Linear(dim, dim, bias=False)
        self.w_query = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, 1, bias=False)

    def forward(self, keys: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.v(torch.tanh(self.w_key(keys) + self.w_query(query).unsqueeze(1))).squeeze(-1)
        return e.masked_fill(~mask, float("-inf"))


class RepeatNet(nn.Module):
    def __init__(self, num_items: int, p: RepeatNetParams) -> None:
        super().__init__()
        d = p.hidden_size
        self.item_emb = nn.Embedding(num_items + 1, p.embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(p.dropout)
        self.embedding_dropout = nn.Dropout(p.embedding_dropout)
        self.gru = nn.GRU(p.embedding_dim, d, batch_first=True)
        b = p.attention_bias
        self.mode_attention = AttentionReadout(d, d, d, "tanh", True, bias=b)  # α^c (Eq. 3)
        self.mode = nn.Linear(d, 2, bias=False)  # W^re (Eq. 4)
        self.repeat_attention = AdditiveScores(d, bias=b)  # α^r (Eq. 5)
        self.explore_attention = AttentionReadout(d, d, d, "tanh", True, bias=b)  # α^e (Eq. 7)
        self.explore = nn.Linear(2 * d, num_items + 1, bias=False)  # W^e (Eq. 9)
        if p.init == "glorot":
            for module in (self.item_emb, *(m for m in self.modules() if isinstance(m, nn.Linear))):
                nn.init.xavier_normal_(module.weight)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()
                for name, w in self.gru.named_parameters():  # per gate, as NStepGRU's w0..w5
                    if name.startswith("bias"):
                        w.zero_()
                    else:
                        for gate in w.chunk(3):  # (d, in) views: std √(2 / (d + in)) each
                            nn.init.xavier_normal_(gate)

    def heads(
        self, items: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """log [P(r), P(e)] (B, 2), log α^r (B, T), masked explore logits (B, N+1), their lse."""
        mask = items > 0
        states, _ = self.gru(self.embedding_dropout(self.item_emb(items)))  # causal: right padding
        h_t = self.dropout(gather_last(states, lengths))  # (Eq. 2); own dropout mask, as the code
        h_all = self.dropout(states)
        log_mode = torch.log_softmax(self.mode(self.mode_attention(h_all, h_t, mask)), dim=1)
        log_alpha = torch.log_softmax(self.repeat_attention(h_all, h_t, mask), dim=1)  # (Eq. 5)
        c_e = self.explore_attention(h_all, h_t, mask)  # (Eq. 8)
        logits = score_all_items(torch.cat([h_t, c_e], dim=1), self.explore.weight)  # Eq. 9
        seen = torch.cat([items, torch.zeros_like(items[:, :1])], dim=1)  # session items + pad
        logits = logits.scatter(1, seen, float("-inf"))  # f_i = -∞ in the session (Eq. 9)
        return log_mode, log_alpha, logits, logits.logsumexp(1, keepdim=True)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(i) for every item (Eq. 1); column 0 (padding) is -∞."""
        log_mode, log_alpha, logits, lse = self.heads(items, lengths)
        out = logits - (lse - log_mode[:, 1:])  # log P(e) + log P(i|e); -∞ on session items
        # P(i|r) = Σ_{τ: x_τ = i} α^r_τ, scattered onto item ids (Eq. 6), relative to the row max
        top = log_alpha.max(dim=1, keepdim=True).values
        mass = torch.zeros_like(out).scatter_add_(1, items, (log_alpha - top).exp())
        tiny = torch.finfo(out.dtype).tiny  # an item of the session never gets log 0
        rep = mass.gather(1, items).clamp(min=tiny).log() + top + log_mode[:, :1]
        return out.scatter(1, items, rep.masked_fill(items == 0, float("-inf")))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """-log P(target) (Eq. 11), computed for the targets only: no dense mixture is built.

        Encoded by length groups (`by_length`: the same loss, the GRU not run over padding).
        """
        return -by_length(self._log_p_target, batch.items, batch.lengths, batch.targets).mean()

    def _log_p_target(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """log P(target) (B,) of each session."""
        log_mode, log_alpha, logits, lse = self.heads(items, lengths)
        hit = (items == targets.unsqueeze(1)) & (items > 0)
        repeat = hit.any(dim=1)
        first = torch.zeros_like(hit)
        first[:, 0] = True  # a finite stand-in for rows whose target is not in the session
        pick = torch.where(repeat.unsqueeze(1), hit, first)
        log_rep = log_alpha.masked_fill(~pick, float("-inf")).logsumexp(1)  # log Σ α^r (Eq. 6)
        log_exp = logits.gather(1, targets.unsqueeze(1)).squeeze(1) - lse.squeeze(1)
        return torch.where(repeat, log_mode[:, 0] + log_rep, log_mode[:, 1] + log_exp)

    @torch.no_grad()
    def components(
        self, items: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[P(r), P(e)] (B, 2), P(i|r) and P(i|e) (B, N+1) each, for inspection and tests."""
        log_mode, log_alpha, logits, lse = self.heads(items, lengths)
        repeat = torch.zeros_like(logits).scatter_add_(1, items, log_alpha.exp())
        return log_mode.exp(), repeat, (logits - lse).exp()


@register
class RepeatNetRecommender(NeuralRecommender):
    name = "repeatnet"
    description = "RepeatNet (Ren et al. 2019): GRU encoder, mixture of repeat and explore decoders"
    Params = RepeatNetParams
    Module = RepeatNet
    train_defaults = {
        "lr": 1e-3,
        "batch_size": 1024,
        "weight_decay": 0.0,
        "grad_clip": 5.0,
        "lr_decay": 0.5,
        "lr_decay_every": 3,
    }
    train_source = (
        "RepeatNet code, train.py: batch 1024, Adam lr 1e-3, no L2, gradient norm clipped at 5, "
        "lr × 0.5 every 3 epochs"
    )
