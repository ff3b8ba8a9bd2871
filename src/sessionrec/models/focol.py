"""FOCOL (fine-grained co-occurrence graph + contrastive session representation learning).

Global item embeddings from FOGCN over the FOG of the fitting sessions (Sec. 3.2), a
Transformer session encoder with reverse positions (Sec. 3.3.1, Eq. 5-10) and CSRL, the
contrastive loss (Sec. 3.3.2, Eq. 11-13); the paper-vs-code choices are options.

Spec: docs/focol.md (choices: docs/focol.md#csrl-sec-332-eq-1113,
docs/focol.md#hyper-parameters-and-variants)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sessionrec.data.batching import Batch
from sessionrec.errors import ConfigError
from sessionrec.graph.fog import load_or_build_fog
from sessionrec.graph.fogcn import FOGOperator, fogcn
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.layers import (
    ReversePositionEmbedding,
    by_length,
    gather_last,
    gradient_sum,
    linear_cross_entropy,
    lookup_rows,
    score_all_items,
    weights_key,
)
from sessionrec.models.registry import register

AUGMENTATIONS = ("corrupt", "dropout", "insert", "identity")


@dataclass
class FOCOLParams:
    embedding_dim: int = 100  # paper: d = 100
    fogcn_layers: int = 3  # L_G; paper: 3
    transformer_layers: int = 3  # L_T; released code: 3 (the paper's study fixes 2)
    heads: int = 1  # code: 1
    feedforward_dim: int = 200  # code: 2d
    dropout: float = 0.1  # code: 0.1 inside the Transformer
    alpha: Literal["normalized", "softmax"] = "normalized"
    max_distance: int | None = None  # L; None = longest training session − 1
    max_len: int = 300  # reverse positions kept (longer inputs share the last one)
    use_fogcn: bool = True  # False: FOCOL-NG (E^g = E^(0))
    learn_distance_weights: bool = True  # False: FOCOL-SG (every distance weighs 1)
    beta: float = 0.03  # weight of the CSRL loss; 0 disables it (FOCOL-NCL)
    negatives: int = 32  # K_ns
    temperature: float = 0.5  # τ (code)
    similarity: Literal["cosine", "dot"] = "cosine"
    corrupt_std: float = 0.1  # σ
    augment_dropout: float = 0.1  # r
    augmentations: tuple[str, ...] = AUGMENTATIONS
    augment_policy: Literal["batch", "sample"] = "batch"
    # True: a batch whose augmentation is Dropout also drops the anchors' item embeddings,
    # for both losses (the released code); False: only the sampled sessions' (the paper).
    augment_anchors: bool = False
    init: Literal["code", "paper"] = "code"
    # Std of E^(0)'s N(0, σ²) init, overriding `init` for the item table only (None: as
    # `init` says: code N(0, 1), paper N(0, 0.1)); a training choice, as STAMP's
    emb_init_std: float | None = None
    # E^(0)'s Adam learning rate as a multiple of the run's (1: the paper's one lr for all);
    # a training choice for the rare items' rows (docs/focol.md, "Tmall: where the 6 missing")
    item_lr_scale: float = 1.0

    def validate(self) -> None:
        unknown = set(self.augmentations) - set(AUGMENTATIONS)
        if unknown:
            raise ConfigError(
                f"unknown augmentation(s) {sorted(unknown)}; choose from {AUGMENTATIONS}"
            )
        if self.embedding_dim % self.heads:
            raise ConfigError("embedding_dim must be divisible by heads")
        if self.max_distance is not None and self.max_distance < 1:
            raise ConfigError("max_distance must be at least 1")
        if self.emb_init_std is not None and self.emb_init_std <= 0:
            raise ConfigError(f"emb_init_std must be > 0 or none, got {self.emb_init_std}")
        if self.item_lr_scale <= 0:
            raise ConfigError(f"item_lr_scale must be > 0, got {self.item_lr_scale}")
        if self.augment_anchors and self.augment_policy != "batch":
            raise ConfigError("augment_anchors needs augment_policy=batch (one operation a batch)")


class FOCOL(nn.Module):
    def __init__(self, num_items: int, p: FOCOLParams) -> None:
        super().__init__()
        self.p, d = p, p.embedding_dim
        self.item_emb = nn.Embedding(num_items + 1, d)  # E^(0); row 0: padding / Insert mask
        width = 2 * (p.max_distance or 1)  # resized in prepare() once L is known
        self.importance = nn.ParameterList(
            [
                nn.Parameter(torch.ones(width, d), requires_grad=p.learn_distance_weights)
                for _ in range(p.fogcn_layers if p.use_fogcn else 0)
            ]
        )
        self.positions = ReversePositionEmbedding(p.max_len + 1, d)  # +1: Insert lengthens
        layer = nn.TransformerEncoderLayer(
            d, p.heads, p.feedforward_dim, p.dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, p.transformer_layers, enable_nested_tensor=False
        )
        self.register_buffer("global_emb", torch.zeros(num_items + 1, d))  # E^g for inference
        if p.init == "paper":
            for param in self.parameters():
                if param.requires_grad:
                    nn.init.normal_(param, std=0.1)
        if p.emb_init_std is not None:
            nn.init.normal_(self.item_emb.weight, std=p.emb_init_std)
        self.graph: FOGOperator | None = None
        self.examples: Any = None  # training examples, for CSRL sampling
        self._stale = True
        self._eg_key: tuple[int, ...] = ()

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """Adam's parameter groups: E^(0) at `item_lr_scale` × lr, the rest at lr (one group at
        scale 1, so that checkpoints from before the option still resume)."""
        if self.p.item_lr_scale == 1.0:
            return [{"params": list(self.parameters())}]
        table = self.item_emb.weight
        rest = [q for q in self.parameters() if q is not table]
        return [{"params": [table], "lr": lr * self.p.item_lr_scale}, {"params": rest, "lr": lr}]

    # --- global item embeddings (Sec. 3.2) ------------------------------------------------
    def prepare(self, dataset: Any) -> None:
        """Build (or load from cache) the FOG of the fitting sessions; index examples by label."""
        if self.p.use_fogcn:
            fog = load_or_build_fog(
                dataset.fit_sessions(), self.item_emb.num_embeddings, self.p.max_distance
            )
            for i, param in enumerate(self.importance):
                if param.shape[0] != 2 * fog.max_distance:
                    init = torch.ones(2 * fog.max_distance, param.shape[1])
                    if self.p.init == "paper" and self.p.learn_distance_weights:
                        init = torch.randn_like(init) * 0.1
                    self.importance[i] = nn.Parameter(
                        init.to(param.device), requires_grad=self.p.learn_distance_weights
                    )
            self.graph = FOGOperator(fog).to(self.item_emb.weight.device)
        self.examples = dataset.train
        order = np.argsort(self.examples.target, kind="stable")
        counts = np.bincount(self.examples.target, minlength=self.item_emb.num_embeddings)
        self._by_label = torch.from_numpy(order)
        self._label_start = torch.from_numpy(np.cumsum(counts) - counts)
        self._label_count = torch.from_numpy(counts)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = (
            np.arange(len(order)) - (np.cumsum(counts) - counts)[self.examples.target[order]]
        )
        self._rank_in_label = torch.from_numpy(rank)
        self._stale = True

    def _weights_key(self) -> tuple[int, ...]:
        """Changes whenever a tensor E^g depends on can have changed (fused Adam steps too)."""
        return weights_key(self.item_emb.weight, *self.importance)

    def global_embeddings(self) -> torch.Tensor:
        """E^g (Eq. 4): recomputed while training, computed once for inference and kept."""
        if not self.p.use_fogcn:
            return self.item_emb.weight
        if self.graph is None:  # loaded for inference without the graph
            return self.global_emb
        if self.training:
            return self._propagate()
        key = self._weights_key()
        if self._stale or key != self._eg_key:
            with torch.no_grad():
                self.global_emb = self._propagate()
            self._stale, self._eg_key = False, key
        return self.global_emb

    def _propagate(self) -> torch.Tensor:
        assert self.graph is not None
        if self.graph.col_node.device != self.item_emb.weight.device:
            self.graph.to(self.item_emb.weight.device)
        return fogcn(self.item_emb.weight, list(self.importance), self.graph, self.p.alpha)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.p.use_fogcn and self.graph is not None:
            key = self._weights_key()
            if self._stale or self.training or key != self._eg_key:
                with torch.no_grad():  # saved weights always carry the matching E^g
                    self.global_emb = self._propagate()
                self._stale, self._eg_key = self.training, key
        return super().state_dict(*args, **kwargs)

    # --- session encoder (Sec. 3.3.1) -----------------------------------------------------
    def encode(
        self,
        eg: torch.Tensor,
        items: torch.Tensor,
        lengths: torch.Tensor,
        noise: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """h_s: Transformer output at the last click (Eq. 5-7), optionally augmented.

        In training, a large batch runs through the encoder in groups of similar length
        (`by_length`): the same h_s, a fraction of the padded positions, whose dropout masks
        and attention dominate otherwise (CSRL's 544 sampled sessions of one Diginetica
        step: padded to 22 clicks, mean length 4.1). Evaluation, serving and export keep
        one padded pass (no data-dependent shapes).
        """
        if not self.training:
            return self._encode_padded(eg, items, lengths, noise, drop)
        return by_length(partial(self._encode_padded, eg), items, lengths, noise, drop)

    def _encode_padded(
        self,
        eg: torch.Tensor,
        items: torch.Tensor,
        lengths: torch.Tensor,
        noise: torch.Tensor | None,
        drop: torch.Tensor | None,
    ) -> torch.Tensor:
        x = lookup_rows(eg, items)  # E_s
        if noise is not None:
            x = x + noise  # Corrupt
        if drop is not None:
            x = x * drop  # Dropout (mask already scaled by 1/(1−r))
        x = x + self.positions(lengths, items.shape[1])  # X^(0) = E_s + P_{t+1−j} (Eq. 5)
        pad = torch.arange(items.shape[1], device=items.device)[None, :] >= lengths[:, None]
        out = self.encoder(x, src_key_padding_mask=pad)  # Eq. 6
        return gather_last(out, lengths)  # Eq. 7

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        eg = self.global_embeddings()
        return score_all_items(self.encode(eg, items, lengths), eg)  # z = h_sᵀ E^g (Eq. 8)

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """h_s (B, d); the scores are h_sᵀ E^g (Eq. 8)."""
        return self.encode(self.global_embeddings(), items, lengths)

    def item_vectors(self) -> torch.Tensor:
        return self.global_embeddings()

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """L = L_rec + β L_cl (Eq. 13); CSRL finds the anchors' positives by `batch.index`."""
        items, lengths, targets, index = batch.items, batch.lengths, batch.targets, batch.index
        eg = self.global_embeddings()
        csrl = self.p.beta > 0 and bool(self.p.augmentations) and self.examples is not None
        op = self._draw_operation() if csrl and self.p.augment_anchors else None
        drop = None
        if op == "dropout":  # the released code's Dropout reaches the anchors too
            drop = self._dropout_mask(len(lengths), items.shape[1], items.device)
        rows = gradient_sum(eg)  # the encodings' lookups of E^g: one sparse gradient
        h = self.encode(rows, items, lengths, None, drop)
        loss = linear_cross_entropy(h, eg, targets)  # Eq. 9-10
        if csrl:
            loss = loss + self.p.beta * self.contrastive_loss(rows, h, targets, index, op)
        return loss

    # --- CSRL (Sec. 3.3.2) ----------------------------------------------------------------
    def sample_positives(self, targets: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """One training example per anchor with the same next item, not the anchor if possible."""
        t = targets.cpu()
        count, start = self._label_count[t], self._label_start[t]
        if index is None:
            offset = (torch.rand(len(t)) * count).long()
        else:
            own = self._rank_in_label[index.cpu()]
            others = (count - 1).clamp(min=1)
            offset = (torch.rand(len(t)) * others).long()
            offset = torch.where(count > 1, offset + (offset >= own).long(), 0)
        return self._by_label[start + offset]

    def _draw_operation(self) -> str:
        """The batch's augmentation, uniform over `augmentations` (torch RNG: resumable)."""
        ops = list(self.p.augmentations)
        return ops[int(torch.randint(len(ops), ()))]

    def _dropout_mask(self, n: int, width: int, device: torch.device) -> torch.Tensor:
        """(n, width, d) keep-mask of the Dropout augmentation, scaled by 1/(1−r)."""
        r = self.p.augment_dropout
        return (torch.rand(n, width, self.p.embedding_dim, device=device) >= r).float() / (1 - r)

    def _augmented_inputs(self, idx: torch.Tensor, device: torch.device, chosen: str | None = None):
        """Inputs of the sampled sessions with the batch's operation `chosen` (drawn if None)."""
        from sessionrec.data.batching import collate

        batch = collate(self.examples, idx.numpy(), self.p.max_len)
        items, lengths = batch.items.to(device), batch.lengths.to(device)
        n, d = len(lengths), self.p.embedding_dim
        ops = list(self.p.augmentations)
        if self.p.augment_policy == "batch":
            chosen = chosen or self._draw_operation()
            op = torch.full((n,), AUGMENTATIONS.index(chosen), device=device)
        else:
            choices = torch.tensor([AUGMENTATIONS.index(o) for o in ops], device=device)
            op = choices[torch.randint(len(ops), (n,), device=device)]
        if (op == AUGMENTATIONS.index("insert")).any():  # mask id 0 at a uniform position
            ins = op == AUGMENTATIONS.index("insert")
            pos = (torch.rand(n, device=device) * (lengths + 1)).long()
            cols = torch.arange(items.shape[1] + 1, device=device)[None, :]
            src = torch.where(cols > pos[:, None], cols - 1, cols).clamp(max=items.shape[1] - 1)
            shifted = items.gather(1, src).masked_fill(cols == pos[:, None], 0)
            plain = F.pad(items, (0, 1))
            items = torch.where(ins[:, None], shifted, plain)
            lengths = lengths + ins.long()
        width = items.shape[1]
        noise = drop = None
        corrupt = op == AUGMENTATIONS.index("corrupt")
        if corrupt.any():
            noise = torch.randn(n, width, d, device=device) * self.p.corrupt_std
            noise = noise * corrupt[:, None, None]
        dropping = op == AUGMENTATIONS.index("dropout")
        if dropping.any():
            keep = self._dropout_mask(n, width, device)
            drop = torch.where(dropping[:, None, None], keep, torch.ones_like(keep))
        return items, lengths, noise, drop

    def contrastive_loss(
        self,
        eg: torch.Tensor,
        h: torch.Tensor,
        targets: torch.Tensor,
        index: torch.Tensor | None,
        operation: str | None = None,
    ) -> torch.Tensor:
        """InfoNCE over one augmented positive and K_ns augmented negatives per anchor (Eq. 12).

        `operation`: the batch's augmentation when the anchors already drew it (else drawn here).
        """
        b, k = len(targets), self.p.negatives
        positives = self.sample_positives(targets, index)
        pool = torch.randint(len(self.examples), (k,))  # top-up candidates
        sampled = torch.cat([positives, pool])
        items, lengths, noise, drop = self._augmented_inputs(sampled, h.device, operation)
        hs = self.encode(eg, items, lengths, noise, drop)
        if self.p.similarity == "cosine":
            sim = F.normalize(h, dim=1) @ F.normalize(hs, dim=1).t()
        else:
            sim = h @ hs.t()
        sim = sim / self.p.temperature  # (B, B + K)
        labels = torch.as_tensor(self.examples.target[sampled.numpy()], device=h.device)
        valid = labels[None, :] != targets[:, None]
        priority = torch.rand(b, b + k, device=h.device) + 1.0
        priority[:, :b] += 1.0  # the batch's positives first, then the pool
        priority = priority.masked_fill(~valid, -torch.inf)
        top = priority.topk(min(k, b + k), dim=1)
        negatives = sim.gather(1, top.indices).masked_fill(top.values == -torch.inf, -torch.inf)
        logits = torch.cat([sim.diagonal()[:, None], negatives], dim=1)
        return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=h.device))


class FOCOLRecommender(NeuralRecommender):
    """FOCOL and its ablations: the training loss also gets the examples' indices (CSRL)."""

    Module = FOCOL
    train_defaults = {"lr": 1e-3, "batch_size": 100, "weight_decay": 1e-5}
    train_source = "FOCOL paper, Sec. 4.3: batch 100, Adam lr 0.001, L2 1e-5"
    # `--recipe cpu`: the paper's network in a 150-minute budget on a CPU (docs/focol.md#cpu-recipe)
    recipes = {
        "cpu": {
            "batch_size": 512,
            "lr": 2e-3,
            "weight_decay": 0.0,
            "amp": "auto",
            "max_minutes": 150.0,
        }
    }


def _variant(name: str, description: str, **defaults: Any) -> type[FOCOLRecommender]:
    fields = [
        (k, type(v) if not isinstance(v, tuple) else tuple[str, ...], dataclasses.field(default=v))
        for k, v in defaults.items()
    ]
    params = dataclasses.make_dataclass(
        f"{name.title().replace('-', '')}Params", fields, bases=(FOCOLParams,)
    )
    cls = type(
        f"{name.title().replace('-', '')}Recommender",
        (FOCOLRecommender,),
        {"name": name, "description": description, "Params": params},
    )
    return register(cls)


_without = {a: tuple(x for x in AUGMENTATIONS if x != a) for a in AUGMENTATIONS}
_variant(
    "focol", "FOCOL: fine-grained co-occurrence GCN, Transformer encoder and contrastive learning"
)
_variant("focol-ng", "FOCOL without FOGCN (E^g = E^(0)), Table 3", use_fogcn=False)
_variant(
    "focol-sg",
    "FOCOL on a simple graph: every distance weighs 1, Table 3",
    learn_distance_weights=False,
)
_variant("focol-ncl", "FOCOL without contrastive session learning (CSRL), Table 4", beta=0.0)
_variant(
    "focol-nc", "FOCOL without the Corrupt augmentation, Table 4", augmentations=_without["corrupt"]
)
_variant(
    "focol-nd", "FOCOL without the Dropout augmentation, Table 4", augmentations=_without["dropout"]
)
_variant(
    "focol-ni", "FOCOL without the Insert augmentation, Table 4", augmentations=_without["insert"]
)
_variant(
    "focol-nid",
    "FOCOL without the Identity augmentation, Table 4",
    augmentations=_without["identity"],
)
