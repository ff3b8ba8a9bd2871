"""Compact containers for sessions and prefix examples (CSR-style NumPy arrays, no copies)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sessions:
    """Variable-length item sequences: `items[offsets[i]:offsets[i+1]]` is session i."""

    items: np.ndarray  # int64, all sessions concatenated
    offsets: np.ndarray  # int64, length len(self) + 1

    @classmethod
    def from_lists(cls, seqs: Iterable[Sequence[int]]) -> Sessions:
        """Build from Python lists of ints (e.g. a benchmark pickle)."""
        seqs = list(seqs)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(offsets[-1]))
        return cls(items, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_lists(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    def concat(self, other: Sessions) -> Sessions:
        """These sessions followed by `other`'s (copies both)."""
        items = np.concatenate([self.items, other.items])
        return Sessions(items, np.concatenate([self.offsets, other.offsets[1:] + len(self.items)]))

    def select(self, idx: np.ndarray) -> Sessions:
        """The sessions at positions `idx`, in that order (copies the items)."""
        lengths = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        pos = np.repeat(self.offsets[idx] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Sessions(self.items[pos], offsets)

    def prefixes(self) -> Examples:
        """All next-item examples: session [a, b, c] gives ([a, b], c) then ([a], b).

        Within a session the longest prefix comes first, as in the SR-GNN/GCE-GNN scripts.
        """
        lengths = self.lengths
        n_ex = np.maximum(lengths - 1, 0)
        session = np.repeat(np.arange(len(self)), n_ex)
        first = np.cumsum(n_ex) - n_ex  # index of each session's first example
        rank = np.arange(len(session)) - first[session]  # 0 for the longest prefix
        length = lengths[session] - 1 - rank
        start = self.offsets[:-1][session]
        return Examples(self.items, start, length, self.items[start + length])

    def as_examples(self, targets: np.ndarray) -> Examples:
        """Treat each session as one whole input sequence with the given next item."""
        return Examples(
            self.items, self.offsets[:-1].copy(), self.lengths, np.asarray(targets, np.int64)
        )


@dataclass(frozen=True)
class Examples:
    """Next-item examples referencing a shared buffer: input `items[start:start+length]`."""

    items: np.ndarray
    start: np.ndarray
    length: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def sequence(self, i: int) -> np.ndarray:
        return self.items[self.start[i] : self.start[i] + self.length[i]]

    def subset(self, idx: np.ndarray | slice) -> Examples:
        return Examples(self.items, self.start[idx], self.length[idx], self.target[idx])

    def padded(self, idx: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded (0) inputs in click order for examples `idx`, keeping the last `max_len`."""
        length = self.length[idx]
        start = self.start[idx]
        if max_len is not None:
            cut = np.maximum(length - max_len, 0)
            start, length = start + cut, length - cut
        width = max(int(length.max(initial=0)), 1)
        cols = np.arange(width)
        mask = cols[None, :] < length[:, None]
        pos = np.where(mask, start[:, None] + cols[None, :], 0)
        return np.where(mask, self.items[pos], 0), length
