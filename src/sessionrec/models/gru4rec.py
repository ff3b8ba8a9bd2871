"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018), trained as published.

The original algorithm, not the "improved RNN" other libraries ship under this name:
session-parallel mini-batches, sampled negatives, BPR-max / TOP1-max / cross-entropy, Adagrad.
`GRU4RecTrainer` gives the shared Trainer these steps and checkpoints the slots' hidden state.

Spec: docs/baselines-neural.md#gru4rec--hidasi-et-al-iclr-2016-hidasi--karatzoglou-cikm-2018
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from sessionrec.errors import ConfigError, RunError
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.registry import register
from sessionrec.training.trainer import Step, Trainer, epoch_seed

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset

SAMPLE_CHUNK = 64  # steps whose extra negatives are drawn at once (seeded per chunk)


@dataclass
class GRU4RecParams:
    loss: Literal["bpr-max", "top1-max", "cross-entropy"] = "bpr-max"  # 2018 code default
    layers: tuple[int, ...] = (100,)  # code: [100]; papers: one layer of 100
    batch_size: int = 32  # code: 32
    learning_rate: float = 0.1  # code: 0.1 with Adagrad
    momentum: float = 0.0  # code: 0.0
    n_sample: int = 2048  # code: 2048 additional negatives
    sample_alpha: float = 0.75  # code: 0.75
    bpreg: float = 1.0  # code: 1.0 (BPR-max score regularisation)
    final_act: Literal["linear", "elu", "tanh"] = "linear"  # code signature: linear
    elu_alpha: float = 1.0  # the X of the code's "elu-X"
    dropout_p_embed: float = 0.0  # code: 0.0
    dropout_p_hidden: float = 0.0  # code: 0.0
    embedding: int = 0  # code: 0 = one-hot input
    constrained_embedding: bool = False  # code: False

    def validate(self) -> None:
        if not self.layers or min(self.layers) < 1 or self.batch_size < 1:
            raise ConfigError("layers must be positive sizes and batch_size at least 1")
        if self.learning_rate <= 0 or self.momentum < 0 or self.n_sample < 0:
            raise ConfigError("learning_rate must be > 0, momentum and n_sample >= 0")
        dropouts = (self.dropout_p_embed, self.dropout_p_hidden)
        if self.embedding < 0 or not all(0.0 <= d < 1.0 for d in dropouts):
            raise ConfigError("embedding must be >= 0 and dropout probabilities in [0, 1)")


# --- losses on a (b, b + n_sample) score matrix; row i's target is column i ---------------------
def _negative_log_softmax(r: torch.Tensor) -> torch.Tensor:
    """log of the softmax over each row's negatives (all columns but the diagonal)."""
    diag = torch.eye(r.shape[0], r.shape[1], dtype=torch.bool, device=r.device)
    return torch.log_softmax(r.masked_fill(diag, float("-inf")), dim=1)


def cross_entropy_loss(r: torch.Tensor) -> torch.Tensor:
    """-log softmax(r_i)_i per row."""
    return -torch.log_softmax(r, dim=1).diagonal()


def bpr_max_loss(r: torch.Tensor, bpreg: float) -> torch.Tensor:
    """-log Σ_j s_j σ(r_i - r_j) + bpreg Σ_j s_j r_j², s = softmax over negatives (per row)."""
    log_s = _negative_log_softmax(r)
    pos = r.diagonal().unsqueeze(1)
    rank = torch.logsumexp(log_s + nn.functional.logsigmoid(pos - r), dim=1)
    return -rank + bpreg * (log_s.exp() * r.pow(2)).sum(1)


def top1_max_loss(r: torch.Tensor) -> torch.Tensor:
    """Σ_j s_j (σ(r_j - r_i) + σ(r_j²)), s = softmax over negatives (per row)."""
    s = _negative_log_softmax(r).exp()
    pos = r.diagonal().unsqueeze(1)
    return (s * (torch.sigmoid(r - pos) + torch.sigmoid(r.pow(2)))).sum(1)


# --- session-parallel mini-batches ---------------------------------------------------------------
def session_parallel_batches(
    lengths: np.ndarray, batch_size: int, min_slots: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per step: (session of each slot, click position in it, slots kept from the last step).

    Sessions (all of length >= 2) enter slots in order; a slot whose session has no next click
    takes the next session (position 0: reset its state). With no sessions left it is dropped
    and `keep` lists the surviving previous slots. Stops when fewer than `min_slots` remain.
    """
    n = len(lengths)
    slots = np.arange(min(batch_size, n))
    pos = np.zeros(len(slots), dtype=np.int64)
    nxt, keep = len(slots), None
    while len(slots) >= max(min_slots, 1):
        yield slots, pos, keep
        pos = pos + 1
        done = np.flatnonzero(pos >= lengths[slots] - 1)
        keep = None
        if len(done):
            new = np.arange(nxt, min(nxt + len(done), n))
            nxt += len(new)
            slots = slots.copy()
            slots[done[: len(new)]] = new
            pos[done[: len(new)]] = 0
            if len(new) < len(done):
                alive = np.ones(len(slots), dtype=bool)
                alive[done[len(new) :]] = False
                keep = np.flatnonzero(alive)
                slots, pos = slots[keep], pos[keep]


def carry_state(
    hidden: list[torch.Tensor], keep: np.ndarray | None, fresh: torch.Tensor
) -> list[torch.Tensor]:
    """Hidden states for the next step: drop finished slots, zero slots that start a session."""
    if keep is not None:
        idx = torch.as_tensor(keep, device=hidden[0].device)
        hidden = [h[idx] for h in hidden]
    return [h.detach().masked_fill(fresh.unsqueeze(1), 0.0) for h in hidden]


class IndexedAdagrad(torch.optim.Optimizer):
    """Adagrad (acc += g², step g/√(acc + ε)) with momentum; sparse grads touch only their rows."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            lr, mom, eps = group["lr"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["acc"] = torch.zeros_like(p)
                    if mom > 0:
                        st["vel"] = torch.zeros_like(p)
                if p.grad.is_sparse:
                    g = p.grad.coalesce()
                    idx, val = g.indices()[0], g.values()
                    acc = st["acc"][idx] + val.pow(2)
                    st["acc"][idx] = acc
                    delta = -lr * val / (acc + eps).sqrt()
                    if mom > 0:
                        delta = st["vel"][idx] * mom + delta
                        st["vel"][idx] = delta
                    p.index_add_(0, idx, delta)
                else:
                    st["acc"].add_(p.grad.pow(2))
                    delta = -lr * p.grad / (st["acc"] + eps).sqrt()
                    if mom > 0:
                        delta = st["vel"].mul_(mom).add_(delta)
                    p.add_(delta)


def _uniform_init(w: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(w, -bound, bound)


class GRU4RecCell(nn.Module):
    """ĥ = tanh(W x + U(r ⊙ h) + b), r, z = σ(W_rz x + U_rz h + b_rz), h' = (1 - z) h + z ĥ."""

    def __init__(self, in_dim: int, hidden: int, item_rows: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        if item_rows:  # one-hot input: W x is a row of an item table
            self.w_x: nn.Module = nn.Embedding(item_rows, 3 * hidden, sparse=True)
            _uniform_init(self.w_x.weight, item_rows, hidden)
        else:
            self.w_x = nn.Linear(in_dim, 3 * hidden, bias=False)
            _uniform_init(self.w_x.weight, in_dim, hidden)
        self.w_rz = nn.Parameter(torch.empty(hidden, 2 * hidden))
        self.w_h = nn.Parameter(torch.empty(hidden, hidden))
        self.bias = nn.Parameter(torch.zeros(3 * hidden))
        _uniform_init(self.w_rz, hidden, hidden)
        _uniform_init(self.w_h, hidden, hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        vx = self.w_x(x) + self.bias  # [candidate | reset | update] input parts
        r, z = torch.sigmoid(vx[:, self.hidden :] + h @ self.w_rz).chunk(2, dim=1)
        cand = torch.tanh(vx[:, : self.hidden] + (r * h) @ self.w_h)
        return (1.0 - z) * h + z * cand


class GRU4Rec(nn.Module):
    def __init__(self, num_items: int, p: GRU4RecParams) -> None:
        super().__init__()
        rows, last = num_items + 1, p.layers[-1]
        self.p = p
        self.out_w = nn.Embedding(rows, last, sparse=True)  # Wy (also the input if constrained)
        self.out_b = nn.Embedding(rows, 1, sparse=True)  # By
        _uniform_init(self.out_w.weight, rows, last)
        nn.init.zeros_(self.out_b.weight)
        self.emb = None
        if p.embedding and not p.constrained_embedding:
            self.emb = nn.Embedding(rows, p.embedding, sparse=True)
            _uniform_init(self.emb.weight, rows, p.embedding)
        one_hot = not p.embedding and not p.constrained_embedding
        in_dim = last if p.constrained_embedding else p.embedding
        self.cells = nn.ModuleList()
        for i, size in enumerate(p.layers):
            rows_i = rows if i == 0 and one_hot else 0
            self.cells.append(GRU4RecCell(in_dim if i == 0 else p.layers[i - 1], size, rows_i))
        self.drop_embed = nn.Dropout(p.dropout_p_embed)
        self.drop_hidden = nn.Dropout(p.dropout_p_hidden)

    def zero_state(self, batch: int, device: torch.device) -> list[torch.Tensor]:
        return [torch.zeros(batch, size, device=device) for size in self.p.layers]

    def step(
        self, items: torch.Tensor, hidden: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One click per row: the last layer's output and the new states."""
        if self.p.constrained_embedding:
            x: torch.Tensor = self.drop_embed(self.out_w(items))
        elif self.emb is not None:
            x = self.drop_embed(self.emb(items))
        else:
            x = items  # one-hot: the first cell looks the item up itself
        new = []
        for cell, h in zip(self.cells, hidden, strict=True):
            x = self.drop_hidden(cell(x, h))  # the dropped-out output is also the state (code)
            new.append(x)
        return x, new

    def sampled_scores(self, out: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Scores Wy_j · h + By_j for the target and negative columns (b, b + n_sample)."""
        return out @ self.out_w(columns).t() + self.out_b(columns).squeeze(1)

    def row_losses(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        if p.loss == "cross-entropy":
            return cross_entropy_loss(r)
        if p.final_act == "elu":
            r = nn.functional.elu(r, p.elu_alpha)
        elif p.final_act == "tanh":
            r = torch.tanh(r)
        return bpr_max_loss(r, p.bpreg) if p.loss == "bpr-max" else top1_max_loss(r)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run the GRU from a zero state over each prefix; linear scores Wy h + By of all items.

        The final activation is monotone, so ranking by the linear scores is the same (and
        avoids ties where tanh saturates).
        """
        out = self.last_output(items, lengths)
        return out @ self.out_w.weight.t() + self.out_b.weight.t()

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[h ; 1] (B, d + 1): the scores Wy h + By as one inner product with [Wy ; By]."""
        out = self.last_output(items, lengths)
        return torch.cat([out, out.new_ones(out.shape[0], 1)], dim=1)

    def item_vectors(self) -> torch.Tensor:
        return torch.cat([self.out_w.weight, self.out_b.weight], dim=1)

    def last_output(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last layer's output h (B, d) after each prefix, from a zero state.

        Rows stop updating after their last click; the last layer's state is its output (the
        code's dropped-out output is the state). Under torch.export the clicks run through a
        `scan`, traced once, so an ONNX export keeps the length axis dynamic; eagerly, a loop
        (2× faster per call than eager `scan`; the same numbers, tested).
        """
        hidden = tuple(self.zero_state(items.shape[0], items.device))

        def click(
            hidden: tuple[torch.Tensor, ...], xs: tuple[torch.Tensor, torch.Tensor]
        ) -> tuple[torch.Tensor, ...]:
            item, t = xs
            active = (lengths > t).unsqueeze(1)
            _, new = self.step(item, list(hidden))
            return tuple(torch.where(active, n, h) for n, h in zip(new, hidden, strict=True))

        steps = torch.arange(items.shape[1], device=items.device)
        if torch.compiler.is_exporting():  # scan also wants a per-step output: h, unused

            def scanned(hidden, xs):  # noqa: ANN001, ANN202
                hidden = click(hidden, xs)
                return hidden, hidden[-1].clone()

            return scan(scanned, hidden, (items.t(), steps))[0][-1]
        for t in range(items.shape[1]):
            hidden = click(hidden, (items[:, t], steps[t]))
        return hidden[-1]


class NegativeSampler:
    """Extra negatives ∝ support^alpha, drawn per chunk of steps from a seeded generator."""

    def __init__(self, counts: np.ndarray, alpha: float, n: int, device: torch.device) -> None:
        w = np.where(counts > 0, counts.astype(np.float64) ** alpha, 0.0)
        w[0] = 0.0  # never the padding id
        self.cdf = torch.as_tensor(np.cumsum(w) / w.sum(), device=device)
        self.last = int(np.flatnonzero(w)[-1]) if n else 0
        self.n, self.device, self.key, self.chunk = n, device, None, None

    def get(self, seed: int, step: int) -> torch.Tensor:
        key = (seed, step // SAMPLE_CHUNK)
        if key != self.key:
            gen = torch.Generator().manual_seed((seed * 1_000_003 + key[1]) % (2**63))
            u = torch.rand(SAMPLE_CHUNK * self.n, generator=gen, dtype=torch.float64)
            idx = torch.searchsorted(self.cdf, u.to(self.device), right=True)
            self.chunk, self.key = idx.clamp_(max=self.last).view(SAMPLE_CHUNK, self.n), key
        return self.chunk[step % SAMPLE_CHUNK]


class GRU4RecTrainer(Trainer):
    """Session-parallel steps with Adagrad; the hidden state goes into the checkpoint."""

    multi_process = False  # the slots' hidden state runs through the whole epoch

    def setup(self, dataset: SessionDataset) -> torch.optim.Optimizer:
        p, device = self.model.params, self.model.device
        fit = dataset.fit_sessions()
        items, self.offsets = fit.items, fit.offsets
        if len(self.offsets) < 2:
            raise RunError("gru4rec: no training session has all its prefixes in dataset.train")
        self.lengths = np.diff(self.offsets)
        self.sampler = NegativeSampler(
            np.bincount(items, minlength=self.model.num_items + 1),
            p.sample_alpha,
            p.n_sample,
            device,
        )
        self.min_slots = 1 if p.n_sample else 2
        batches = session_parallel_batches(self.lengths, p.batch_size, self.min_slots)
        self.steps_per_epoch = sum(1 for _ in batches)  # the order is fixed: count it once
        self.clicks = torch.as_tensor(items, device=device)
        self.hidden: list[torch.Tensor] = []
        return IndexedAdagrad(self.model.net.parameters(), p.learning_rate, p.momentum)

    def train_steps(self, dataset: SessionDataset, epoch: int, start: int) -> Iterator[Step]:
        p, net, device = self.model.params, self.model.net, self.model.device
        seed = epoch_seed(self.config.seed, epoch)
        if start == 0:
            self.hidden = []
        steps = session_parallel_batches(self.lengths, p.batch_size, self.min_slots)
        for i, (sess, pos, keep) in enumerate(steps):
            if i < start:
                continue  # replaying a resumed epoch up to where it stopped
            flat = torch.as_tensor(self.offsets[sess] + pos, device=device)
            fresh = torch.as_tensor(pos == 0, device=device)
            self.hidden = (
                carry_state(self.hidden, keep, fresh)
                if self.hidden
                else net.zero_state(len(sess), device)
            )
            inp, tgt = self.clicks[flat], self.clicks[flat + 1]
            out, self.hidden = net.step(inp, self.hidden)
            cols = torch.cat([tgt, self.sampler.get(seed, i)]) if p.n_sample else tgt
            loss = net.row_losses(net.sampled_scores(out, cols)).sum() / p.batch_size
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            yield Step(i + 1, self.steps_per_epoch, len(sess), loss.item(), len(sess))

    def extra_state(self) -> dict[str, Any]:
        return {"hidden": [h.cpu() for h in self.hidden]}

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        self.hidden = [h.to(self.model.device) for h in checkpoint.pop("hidden")]


@register
class GRU4RecRecommender(NeuralRecommender):
    name = "gru4rec"
    description = "GRU4Rec (Hidasi et al. 2016/2018): session-parallel GRU with BPR-max/TOP1-max"
    Params = GRU4RecParams
    own_train_settings = ("lr", "batch_size", "weight_decay")
    Module = GRU4Rec
    trainer_class = GRU4RecTrainer
    dataset_presets = {
        "diginetica": dict(
            loss="bpr-max", constrained_embedding=True, embedding=0, final_act="elu",
            elu_alpha=1.0, layers=(512,), batch_size=128, dropout_p_embed=0.5,
            dropout_p_hidden=0.3, learning_rate=0.05, momentum=0.15, n_sample=2048,
            sample_alpha=0.3, bpreg=0.9,
        ),
        "retailrocket": dict(
            loss="bpr-max", constrained_embedding=True, embedding=0, final_act="elu",
            elu_alpha=0.5, layers=(224,), batch_size=80, dropout_p_embed=0.5,
            dropout_p_hidden=0.05, learning_rate=0.05, momentum=0.4, n_sample=2048,
            sample_alpha=0.4, bpreg=1.95,
        ),
    }  # fmt: skip
    presets_source = (
        "GRU4Rec_PyTorch_Official, paramfiles/{diginetica,retailrocket}_bprmax_shared_best.py "
        "(their 10 epochs are not copied: early stopping on validation decides)"
    )
