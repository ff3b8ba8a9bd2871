"""`SessionDataset`: training sessions, prefix examples, validation and test splits.

How a dataset is found by name and read from disk is `data/sources.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sessionrec.data.sessions import Examples, Sessions
from sessionrec.errors import ConfigError, DataError

DEFAULT_VALID_FRACTION = 0.1


@dataclass
class SessionDataset:
    """Everything a model is trained and evaluated on; item ids are 1..num_items, 0 pads."""

    name: str
    num_items: int
    train_sessions: Sessions  # all training sessions, in time order
    train: Examples  # prefixes used for fitting
    valid: Examples  # the most recent `valid_fraction` of training prefixes
    test: Examples
    item_ids: list[str] | None = None  # original id of internal id i+1, when known
    source: dict[str, Any] = field(default_factory=dict)  # how to load it again

    def item_counts(self) -> np.ndarray:
        """How often each item is the next click in the fitting examples (length num_items+1)."""
        return np.bincount(self.train.target, minlength=self.num_items + 1)

    def fit_sessions(self) -> Sessions:
        """The training sessions every example of which is fitted: all a model may learn from.

        Validation examples are the most recent prefixes; the sessions they come from (the one
        split by the cut included) are left out of every graph and neighbour index, so no
        validation target is seen before it is predicted. With no validation split, all.
        """
        sessions = self.train_sessions
        if len(self.valid) == 0:
            return sessions
        examples = np.cumsum(np.maximum(sessions.lengths - 1, 0))
        n_fit = int(np.searchsorted(examples, len(self.train), side="right"))
        return sessions.select(np.arange(n_fit))

    def stats(self) -> dict[str, Any]:
        """Counts as in the papers' dataset tables."""
        lengths = self.train_sessions.lengths
        seen = np.concatenate([self.train_sessions.items, self.test.items, self.test.target])
        return {
            "name": self.name,
            "train_sessions": len(self.train_sessions),
            "train_examples": len(self.train) + len(self.valid),
            "fit_examples": len(self.train),
            "valid_examples": len(self.valid),
            "test_cases": len(self.test),
            "items": int(len(np.unique(seen))),
            "max_item_id": self.num_items,
            "avg_session_length": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
            "max_session_length": int(lengths.max(initial=0)),
        }


def split_valid(examples: Examples, valid_fraction: float) -> tuple[Examples, Examples]:
    """The last `valid_fraction` of examples (the most recent) become validation."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n_valid = int(round(len(examples) * valid_fraction))
    cut = len(examples) - n_valid
    return examples.subset(slice(0, cut)), examples.subset(slice(cut, None))


def recent_sessions(sessions: Sessions, fraction: float) -> Sessions:
    """The most recent `fraction` of sessions (they are in time order), at least one."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return sessions
    keep = max(1, int(round(len(sessions) * fraction)))
    return sessions.select(np.arange(len(sessions) - keep, len(sessions)))


def build_dataset(
    name: str,
    train_sessions: Sessions,
    test: Examples,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    item_ids: list[str] | None = None,
    source: dict[str, Any] | None = None,
    train_fraction: float = 1.0,
) -> SessionDataset:
    """Assemble a dataset from training sessions and test examples.

    `train_fraction` < 1 keeps only the most recent fraction of training sessions (a reduced
    budget); the item table and the test set stay those of the full data.
    """
    all_ids = np.concatenate([train_sessions.items, test.items, test.target])
    num_items = int(all_ids.max(initial=0))
    if item_ids is not None and num_items > len(item_ids):
        raise DataError(
            f"{name}: item id {num_items} has no entry in item_ids ({len(item_ids)} known)"
        )
    if item_ids is not None:
        num_items = len(item_ids)
    train_sessions = recent_sessions(train_sessions, train_fraction)
    source = dict(source or {})
    if train_fraction != 1.0:
        source["train_fraction"] = train_fraction
    examples = train_sessions.prefixes()
    if len(examples) == 0:
        raise DataError(
            f"{name}: no training examples (every training session has fewer than 2 clicks)"
        )
    fit, valid = split_valid(examples, valid_fraction)
    return SessionDataset(
        name,
        num_items,
        train_sessions,
        fit,
        valid,
        test,
        item_ids,
        dict(source, valid_fraction=valid_fraction),
    )
