"""Mini-batches of examples as padded tensors: uniform for training, length-sorted for scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sessionrec.data.sessions import Examples


@dataclass
class Batch:
    """Right-padded inputs in click order (0 = padding), their lengths and next items."""

    items: torch.Tensor  # (B, T) long
    lengths: torch.Tensor  # (B,) long, >= 1
    targets: torch.Tensor  # (B,) long
    index: torch.Tensor | None = None  # (B,) positions of the examples in their split

    def to(self, device: torch.device | str) -> Batch:
        index = None if self.index is None else self.index.to(device)
        return Batch(self.items.to(device), self.lengths.to(device), self.targets.to(device), index)


def collate(examples: Examples, idx: np.ndarray, max_len: int | None = None) -> Batch:
    """Gather examples `idx` into a `Batch`, keeping each input's last `max_len` clicks."""
    items, lengths = examples.padded(idx, max_len)
    idx = np.asarray(idx)
    return Batch(
        torch.from_numpy(items),
        torch.from_numpy(lengths),
        torch.from_numpy(examples.target[idx]),
        torch.from_numpy(idx),  # FOCOL's CSRL needs the anchors' positions
    )


def batch_indices(
    examples: Examples,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    bucket_batches: int = 0,
    sessions: bool = False,
) -> list[np.ndarray]:
    """Split examples into batches of similar length.

    Training order (`shuffle`) is a seeded permutation cut into batches (`bucket_batches=0`:
    uniform batches, as every reference code draws them) or sorted by length inside windows
    of `bucket_batches` batches with the batch order shuffled again, or (`sessions`)
    `session_chunks`; the result depends only on the seed, so an interrupted epoch can be
    replayed exactly. Without `shuffle`, examples are sorted by length (the fastest order for
    evaluation).
    """
    n = len(examples)
    if not shuffle:
        order = np.argsort(examples.length, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    if sessions:
        return session_chunks(examples, batch_size, rng)
    perm = rng.permutation(n)
    if bucket_batches == 0:
        return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    window = batch_size * bucket_batches
    for s in range(0, n, window):
        chunk = perm[s : s + window]
        perm[s : s + window] = chunk[np.argsort(examples.length[chunk], kind="stable")]
    batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def session_chunks(
    examples: Examples, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """STAMP's code's batches: the sessions with k examples, shuffled, in chunks of at most
    `batch_size` sessions; chunk c gives k consecutive batches, the j-th holding its sessions'
    examples of input length j + 1 (so none is padded). The groups of equal k come in random
    order. A session is the examples sharing an input start (`SessionSet.prefixes`)."""
    order = np.lexsort((examples.length, examples.start))  # by session, then input length
    start = examples.start[order]
    first = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])  # each session's first
    count = np.diff(np.r_[first, len(order)])
    batches = []
    for k in rng.permutation(np.unique(count)):
        chosen = rng.permutation(np.flatnonzero(count == k))
        rows = order[first[chosen][:, None] + np.arange(k)]  # (sessions, k) example indices
        for c in range(0, len(rows), batch_size):
            batches.extend(rows[c : c + batch_size].T)
    return batches


def shard_batches(
    batches: list[np.ndarray], rank: int, world_size: int, start: int = 0
) -> list[np.ndarray | None]:
    """The batch rank `rank` of `world_size` takes at each step, from batch `start` on.

    Step s takes batches[start + s·W + rank] (None when the epoch runs out first), so the
    union over ranks is exactly `batches[start:]`, the single-process epoch's remainder.
    """
    n = len(batches)
    return [batches[i + rank] if i + rank < n else None for i in range(start, n, world_size)]
