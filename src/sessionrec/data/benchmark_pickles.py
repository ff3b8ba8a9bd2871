"""The benchmark pickles (`all_train_seq.txt`, `test.txt`) as the papers' scripts write them.

Read with the restricted unpickler (plain containers and ints only) and checked: every id an
int in range, and ids dense enough to index an item table.

Spec: docs/data.md#the-benchmark-pickles
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.safe_pickle import load_plain_pickle
from sessionrec.data.sessions import Examples, Sessions
from sessionrec.errors import DataError

# Ids index the item table: refuse ids above both limits (raw, un-renumbered ids, say).
SPARSE_ID_LIMIT, SPARSE_ID_RATIO = 1_000_000, 10


def _check_ids(items: np.ndarray, what: str) -> None:
    if items.size and items.min() < 1:
        raise DataError(
            f"{what}: item id {int(items.min())} out of range (ids start at 1; 0 is padding)"
        )


def _to_sessions(seqs: list[Any], path: Path, what: str) -> Sessions:
    """`Sessions` from lists of item ids; a nested list or a huge int is a `DataError`."""
    try:
        return Sessions.from_lists(seqs)
    except (TypeError, ValueError, OverflowError):
        pass
    for i, seq in enumerate(seqs):
        for x in seq:
            if type(x) is not int:
                raise DataError(
                    f"{path}: {what} {i} holds a {type(x).__name__}, expected item ids (ints)"
                )
            if not -(2**63) <= x < 2**63:
                raise DataError(f"{path}: {what} {i}: item id {_show_int(x)} out of range")
    raise DataError(f"{path}: {what}s cannot be read as lists of item ids")


def _show_int(x: int) -> str:
    return str(x) if abs(x) < 10**30 else f"of {x.bit_length()} bits"


def _to_labels(labels: list[Any] | tuple[Any, ...], path: Path) -> np.ndarray:
    for i, x in enumerate(labels):
        if type(x) is not int:
            raise DataError(f"{path}: label {i} is a {type(x).__name__}, expected an item id (int)")
        if not -(2**63) <= x < 2**63:
            raise DataError(f"{path}: label {i}: item id {_show_int(x)} out of range")
    return np.asarray(labels, dtype=np.int64)


def _check_dense(train: Sessions, test: Examples, path: Path) -> None:
    """Refuse ids far beyond the number of distinct items: the item table would not fit."""
    ids = (train.items, test.items, test.target)
    max_id = int(max(a.max(initial=0) for a in ids))
    if max_id <= SPARSE_ID_LIMIT:
        return
    distinct = len(np.unique(np.concatenate(ids)))
    if max_id > SPARSE_ID_RATIO * distinct:
        raise DataError(
            f"{path}: item ids go up to {max_id:,} but only {distinct:,} distinct ids occur; "
            "ids index the item table, so renumber them 1..N (`sessionrec datasets prepare` does)"
        )


def read_pickles(path: Path) -> tuple[Sessions, Examples, None]:
    """(training sessions, test examples, no item ids) from a benchmark directory."""
    train_file, test_file = path / "all_train_seq.txt", path / "test.txt"
    for f in (train_file, test_file):
        if not f.is_file():
            raise DataError(
                f"{f}: missing (a dataset directory needs all_train_seq.txt and test.txt)"
            )
    train_obj = load_plain_pickle(train_file)
    if not isinstance(train_obj, list) or not all(isinstance(s, list | tuple) for s in train_obj):
        raise DataError(f"{train_file}: expected a list of sessions (lists of item ids)")
    test_obj = load_plain_pickle(test_file)
    if isinstance(test_obj, tuple) and len(test_obj) == 2:
        seqs, labels = test_obj
    elif isinstance(test_obj, tuple) and len(test_obj) == 4:
        _, seqs, labels, _ = test_obj  # (session_ids, sequences, labels, timestamps)
    else:
        raise DataError(
            f"{test_file}: expected a 2-tuple (sequences, labels) or a 4-tuple "
            "(session_ids, sequences, labels, timestamps)"
        )
    if not isinstance(seqs, list | tuple) or not all(isinstance(s, list | tuple) for s in seqs):
        raise DataError(f"{test_file}: sequences must be a list of lists of item ids")
    if not isinstance(labels, list | tuple) or len(labels) != len(seqs):
        raise DataError(
            f"{test_file}: {len(labels) if isinstance(labels, list | tuple) else 'no'} "
            f"labels for {len(seqs)} sequences"
        )
    if any(len(s) == 0 for s in seqs):
        raise DataError(
            f"{test_file}: a test sequence is empty (every test case needs at least one click)"
        )
    train = _to_sessions(train_obj, train_file, "session")
    targets = _to_labels(labels, test_file)
    test = _to_sessions(list(seqs), test_file, "sequence").as_examples(targets)
    _check_ids(train.items, str(train_file))
    _check_ids(np.concatenate([test.items, test.target]), str(test_file))
    _check_dense(train, test, path)
    return train, test, None
