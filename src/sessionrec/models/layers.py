"""Building blocks shared by several models (each lives here once)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from sessionrec.data.batching import Batch
from sessionrec.models import blas

# Large batches run through length-sensitive encoders in up to MAX_GROUPS groups of similar
# length, of at least GROUP_ROWS sessions each (`by_length`): docs/performance.md#length-groups
GROUP_ROWS, MAX_GROUPS = 16, 8

# Optimiser steps taken in this process. A fused step (the Trainer's Adam) updates weights in
# place without bumping their version counters, so a cache keyed on weights counts steps too.
_optimizer_steps = [0]


def _count_step(*_: Any) -> None:
    _optimizer_steps[0] += 1


register_optimizer_step_post_hook(_count_step)


def weights_key(*tensors: torch.Tensor) -> tuple[int, ...]:
    """Changes whenever one of `tensors` can have changed, for caches of values derived from
    them: the optimiser steps taken, and each tensor's identity and version counter."""
    return (_optimizer_steps[0], *(x for t in tensors for x in (t.data_ptr(), t._version)))


def by_length(
    encode: Callable[..., torch.Tensor],
    items: torch.Tensor,
    lengths: torch.Tensor,
    *per_session: torch.Tensor | None,
) -> torch.Tensor:
    """`encode(items, lengths, *per_session)` (one row per session) on groups of sessions of
    similar length, each cut to its own longest, results back in input order.

    For an encoder whose output for a session does not depend on its padding (right-padded,
    masked), this is the same result at a fraction of the padded work: a uniform batch pads
    to its longest session (Diginetica: 22 clicks for a mean of 4.1). The groups are those
    with the fewest padded positions (`length_group_sizes`). Only the order in which random
    numbers (dropout) are drawn changes. A batch under 2 × GROUP_ROWS runs whole.
    `per_session`: more inputs, (B,) cut by rows, (B, T, ...) like `items` (None passes).
    """
    if len(lengths) < 2 * GROUP_ROWS:
        return encode(items, lengths, *per_session)
    order = torch.argsort(lengths, stable=True)
    ordered = lengths[order].cpu().numpy()
    sizes = length_group_sizes(ordered, MAX_GROUPS, GROUP_ROWS)
    parts = []
    for part, w in zip(order.split(sizes), ordered[np.cumsum(sizes) - 1].tolist(), strict=True):
        cut = (None if x is None else x[part, :w] if x.dim() > 1 else x[part] for x in per_session)
        parts.append(encode(items[part, :w], lengths[part], *cut))
    return torch.cat(parts).index_select(0, torch.argsort(order))


def length_group_sizes(sorted_lengths: np.ndarray, groups: int, min_rows: int) -> list[int]:
    """Sizes of at most `groups` consecutive runs of at least `min_rows` sessions (sorted by
    length) with the fewest padded positions Σ rows × longest, by dynamic programming.

    Against runs of equal size, this gives the long tail runs of its own (RetailRocket at
    batch 512: 2.2× fewer padded positions; docs/performance.md#length-groups). A cut inside
    equal lengths only pays where the next run holds exactly `min_rows` sessions (moving it
    to the end of the equal lengths costs nothing otherwise), so the cuts tried are the ends
    of equal lengths and, from each, up to `groups` − 1 steps of `min_rows` back.
    """
    n, min_rows = len(sorted_lengths), max(min_rows, 1)
    ends = np.append(np.flatnonzero(np.diff(sorted_lengths)) + 1, n)
    steps = np.arange(max(groups, 1)) * min_rows
    cuts = np.unique(np.append((ends[:, None] - steps[None, :]).ravel(), 0))
    cuts = cuts[cuts >= 0]
    rows = cuts[None, :] - cuts[:, None]  # a run from cuts[a] to cuts[b]
    longest = sorted_lengths[np.maximum(cuts - 1, 0)].astype(np.float64)
    cost = np.where(rows >= min_rows, rows * longest[None, :], np.inf)
    best = np.full(len(cuts), np.inf)
    best[0] = 0.0
    back, totals = [], []
    for _ in range(max(groups, 1)):
        total = best[:, None] + cost
        back.append(total.argmin(0))
        best = total[back[-1], np.arange(len(cuts))]
        totals.append(best[-1])
    used = int(np.argmin(totals)) + 1  # the first of equal minima: the fewest runs
    if not np.isfinite(totals[used - 1]):
        return [n]
    stops, b = [], len(cuts) - 1
    for start in reversed(back[:used]):
        stops.append(int(cuts[b]))
        b = int(start[b])
    return np.diff([0, *stops[::-1]]).tolist()


def _tracked(table: torch.Tensor) -> bool:
    """Whether autograd records operations on `table` here."""
    return table.requires_grad and torch.is_grad_enabled()


def lookup_rows(
    table: torch.Tensor, ids: torch.Tensor, padding_idx: int | None = None
) -> torch.Tensor:
    """table[ids]; under autograd with a sparse gradient that holds only the looked-up rows.

    A model that looks its item table up in each of `by_length`'s groups would otherwise
    allocate a zero (N+1, d) gradient per group and add them all up (Diginetica, NARM at
    batch 512: 8 zero fills and 8 adds of 17 MB per step). Sparse, the groups' gradients add
    up among themselves when their lookups read one `gradient_sum(table)`, and reach the
    table once, where the output layer's dense gradient of it takes them. So the same loss
    must also use `table` densely (the scores h·tableᵀ), or its .grad stays sparse, which
    Adam refuses: `tests/test_model_contract.py` checks every model's gradients after a step.
    """
    return nn.functional.embedding(ids, table, padding_idx, sparse=_tracked(table))


class _GradientSum(torch.autograd.Function):
    """The identity; its backward hands on the sum of its uses' gradients as it is."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor) -> torch.Tensor:
        return table.view_as(table)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


def gradient_sum(table: torch.Tensor) -> torch.Tensor:
    """`table` as one autograd node for many `lookup_rows`: their sparse gradients add up
    there (index lists joined), and reach `table` as one sum. Without it each lookup's
    gradient meets the output layer's dense one on its own, a copy of the table each."""
    return _GradientSum.apply(table) if _tracked(table) else table


class ItemEmbedding(nn.Embedding):
    """The item table of a model that trains by length groups and scores with the table:
    lookups through `lookup_rows` (sparse gradient). The same parameter and state as
    `nn.Embedding`, whose `sparse` flag (and DDP's expectation of a sparse .grad) stays off."""

    _shared: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        table = self.weight if self._shared is None else self._shared
        return lookup_rows(table, ids, self.padding_idx)


@contextmanager
def one_gradient(embedding: nn.Embedding) -> Iterator[None]:
    """An `ItemEmbedding`'s lookups inside read one `gradient_sum` of its table: for a forward
    pass that looks it up once per length group (another embedding: as it is)."""
    if not isinstance(embedding, ItemEmbedding):
        yield
        return
    embedding._shared = gradient_sum(embedding.weight)
    try:
        yield
    finally:
        embedding._shared = None


def score_all_items(h: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
    """Full-softmax logits: inner product of each session vector with every item row (B, N+1);
    on a CPU through the faster float32 GEMM of this machine (`models.blas`)."""
    return blas.scores(h, item_table)


def linear_cross_entropy(
    h: torch.Tensor,
    item_table: torch.Tensor,
    targets: torch.Tensor,
    skip_padding: bool = False,
    block_rows: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the full-softmax logits h·tableᵀ against `targets`, equal to
    `F.cross_entropy(score_all_items(h, table), targets)`; `skip_padding` leaves row 0 out of
    the softmax (logit -inf), as models that mask the padding column score.

    On a CPU the (B, N+1) logits are never held whole: the softmax's normaliser is summed over
    column blocks that stay in cache and recomputed by block in the backward pass, which trades
    one more matrix product for three passes over a matrix the size of the item table times
    the batch (measured: docs/performance.md#the-output-layer). Elsewhere the plain form runs.
    `block_rows`: item rows per block (default: a float32 tile of about 1 MB).
    Under bf16 autocast the products run in bf16 and the softmax in float32, as autocast does.
    """
    if skip_padding:
        item_table, targets = item_table[1:], targets - 1
    if h.device.type != "cpu":
        return nn.functional.cross_entropy(score_all_items(h, item_table), targets)
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else h.dtype
    with torch.autocast("cpu", enabled=False):
        step = block_rows or _block_rows(len(h))
        return _BlockedLinearCrossEntropy.apply(h, item_table, targets, dtype, step)


def _block_rows(batch: int) -> int:
    """Item rows per block: a float32 (batch × block) tile of about 1 MB (a core's L2 or less)."""
    return max(256, min(1024, (1 << 18) // max(batch, 1)))


class _BlockedLinearCrossEntropy(torch.autograd.Function):
    """`linear_cross_entropy` on a CPU: logits computed block by block, twice; the table's
    gradient is written block by block into one preallocated tensor."""

    @staticmethod
    def forward(ctx, h, table, targets, dtype, step):  # type: ignore[override]
        hc, tc = h.to(dtype), table.to(dtype)
        starts = range(0, len(table), step)
        block_lse = torch.empty(len(h), len(starts), dtype=torch.float32, device=h.device)
        for k, s in enumerate(starts):
            torch.logsumexp((hc @ tc[s : s + step].t()).float(), 1, out=block_lse[:, k])
        lse = block_lse.logsumexp(1)
        target_logit = (hc.float() * tc[targets].float()).sum(1)
        ctx.save_for_backward(hc, tc, targets, lse)
        ctx.dtypes, ctx.step = (h.dtype, table.dtype), step
        return (lse - target_logit).mean().to(h.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        hc, tc, targets, lse = ctx.saved_tensors
        scale, step = grad.float() / len(hc), ctx.step
        exact = hc.dtype == torch.float32  # else bf16 products, float32 sums, as autocast
        grad_h = torch.zeros(hc.shape, dtype=torch.float32, device=hc.device)
        grad_t = torch.empty(tc.shape, dtype=hc.dtype, device=hc.device)
        neg_lse = lse.neg().unsqueeze(1)
        need_h, need_t = ctx.needs_input_grad[:2]
        for s in range(0, len(tc), step):
            rows = tc[s : s + step]
            # ∂L/∂logits = (softmax − onehot) / B; the one-hot part is added below
            p = (hc @ rows.t()).float().add_(neg_lse).exp_().mul_(scale)
            p = p if exact else p.to(hc.dtype)
            if need_h and exact:
                grad_h.addmm_(p, rows)
            elif need_h:
                grad_h.add_(p @ rows)
            if need_t:
                torch.mm(p.t(), hc, out=grad_t[s : s + step])
        grad_h.sub_(tc[targets].float() * scale)
        grad_t = grad_t.float().index_add_(0, targets, hc.float() * -scale)
        dtype_h, dtype_t = ctx.dtypes
        return grad_h.to(dtype_h), grad_t.to(dtype_t), None, None, None


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
    # session_vectors gives each session the same vector at any padding width (right padding,
    # masked): training batches are then encoded by length groups (`by_length`)
    length_groups: bool = False

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight

    def forward(
        self, items: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits hₛᵀvᵢ (B, N+1); given `targets`, their mean cross-entropy instead, computed
        without holding the logits (`linear_cross_entropy`), as nanoGPT's forward."""
        table = self.item_vectors()  # v_i, (N+1, d)
        if self.training and self.length_groups:
            with one_gradient(self.item_emb):
                h = by_length(self.session_vectors, items, lengths)
        else:
            h = self.session_vectors(items, lengths)
        if targets is not None:
            return linear_cross_entropy(h, table, targets)
        return score_all_items(h, table)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """Full-softmax cross-entropy of the logits `forward` gives."""
        if type(self).forward is not DotProductScorer.forward:  # other logits: the plain form
            return nn.functional.cross_entropy(self(batch.items, batch.lengths), batch.targets)
        return self(batch.items, batch.lengths, batch.targets)


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
    softmax over positions. `bias=False` leaves b out.
    """

    def __init__(
        self,
        key_dim: int,
        query_dim: int,
        hidden_dim: int,
        activation: str = "sigmoid",
        normalize: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.w_key = nn.Linear(key_dim, hidden_dim, bias=False)
        self.w_query = nn.Linear(query_dim, hidden_dim, bias=bias)
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
    gives z_i = tanh(h_i) (DHCN's Tmall variant); `z_bias=False` leaves b_z out.
    """

    def __init__(
        self, dim: int, max_len: int = 200, use_position: bool = True, z_bias: bool = True
    ) -> None:
        super().__init__()
        self.positions = ReversePositionEmbedding(max_len, dim) if use_position else None
        self.w_z = nn.Linear(2 * dim, dim, bias=z_bias) if use_position else None
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
