"""A dataset's exact split, written for other libraries: RecBole, session-rec/GRU4Rec, Parquet.

Spec: docs/data.md#export
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sessionrec.data.dataset import SessionDataset
from sessionrec.data.prepared import check_output_dir, staged_dir
from sessionrec.data.sessions import Examples, Sessions
from sessionrec.errors import ConfigError, DataError

TARGETS = ("recbole", "session-rec", "parquet")
SESSION_SECONDS = 3600  # the least gap between two sessions' times
INTER_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"
ITEM_HEADER = "item_id:token\n"
SHARED_SESSION_ID = "0"


def export(dataset: SessionDataset, to: str, out_dir: Path, overwrite: bool = False) -> dict:
    """Write `dataset` for library `to` into `out_dir` (atomically); the rows written."""
    if to not in TARGETS:
        raise ConfigError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    check_output_dir(out_dir, overwrite)
    ids = id_names(dataset)
    with staged_dir(out_dir, overwrite, f"the {to} export") as tmp:
        if to == "recbole":
            return write_recbole(dataset, tmp, out_dir.name, ids)
        train, test = dataset.train_sessions, whole_sessions(dataset.test)
        gap = max(SESSION_SECONDS, int(train.lengths.max(initial=0)) + 1)
        gap = max(gap, int(test.lengths.max(initial=0)) + 1)
        tables = {"train": _events(train, ids, 0, gap), "test": _events(test, ids, len(train), gap)}
        suffix = "parquet" if to == "parquet" else "tsv"
        for split, table in tables.items():
            if to == "parquet":
                table.write_parquet(tmp / f"{split}.{suffix}")
            else:
                table.write_csv(tmp / f"{split}.{suffix}", separator="\t")
        counts: dict[str, Any] = {f"{k}_events": t.height for k, t in tables.items()}
        counts["prepare"] = prepare_again(dataset, out_dir, suffix)
        (tmp / "prepare-again.txt").write_text(f"sessionrec {counts['prepare']}\n")
        return counts


def prepare_again(dataset: SessionDataset, out_dir: Path, suffix: str) -> str:
    """The `datasets prepare` arguments that rebuild exactly these examples from the export."""
    args = f"datasets prepare --format events --input {out_dir / ('train.' + suffix)}"
    args += f" --test-input {out_dir / ('test.' + suffix)} --min-item-support 1"
    seen = np.zeros(dataset.num_items + 1, dtype=bool)
    seen[dataset.train_sessions.items] = True
    if not seen[dataset.test.items].all() or not seen[dataset.test.target].all():
        args += " --keep-unseen-test-items"
    shortest = int(dataset.test.length.min()) if len(dataset.test) else 1
    if shortest > 1:
        args += f" --min-test-prefix {shortest}"
    return args + " --output DIR"


def id_names(dataset: SessionDataset) -> np.ndarray:
    """Row i: the name written for internal id i (0 is padding, never written)."""
    if dataset.item_ids is not None:
        return np.array(["", *dataset.item_ids], dtype=object)
    return np.arange(dataset.num_items + 1).astype(str).astype(object)


def write_recbole(dataset: SessionDataset, folder: Path, name: str, ids: np.ndarray) -> dict:
    """RecBole benchmark atomic files for the fitting, validation and test examples."""
    counts: dict[str, Any] = {}
    for split in ("train", "valid", "test"):
        examples: Examples = getattr(dataset, split)
        with open(folder / f"{name}.{split}.inter", "w") as f:
            f.write(INTER_HEADER)
            for i in range(len(examples)):
                seq = " ".join(ids[examples.sequence(i)])
                f.write(f"{SHARED_SESSION_ID}\t{seq}\t{ids[examples.target[i]]}\n")
        counts[split] = len(examples)
    with open(folder / f"{name}.item", "w") as f:
        f.write(ITEM_HEADER)
        f.writelines(f"{ids[i]}\n" for i in range(1, dataset.num_items + 1))
    counts["items"] = dataset.num_items
    return counts


def whole_sessions(examples: Examples) -> Sessions:
    """The whole sessions whose prefixes, longest first, are `examples` (DataError if none)."""
    n = len(examples)
    starts = []
    for i in range(n):  # a new session unless i is the previous example minus its last click
        # (a test set may leave out inputs shorter than m: then each session ends at length m)
        prev = i - 1
        if (
            i == 0
            or examples.length[i] != examples.length[prev] - 1
            or examples.target[i] != examples.items[examples.start[prev] + examples.length[i]]
            or not np.array_equal(
                examples.sequence(i), examples.sequence(prev)[: examples.length[i]]
            )
        ):
            starts.append(i)
    sessions = Sessions.from_lists(
        [*examples.sequence(i).tolist(), int(examples.target[i])] for i in starts
    )
    back = sessions.prefixes()
    back = back.subset(
        np.flatnonzero(back.length >= (int(examples.length.min()) if len(examples) else 1))
    )
    same = len(back) == n and all(
        np.array_equal(getattr(back, k), getattr(examples, k)) for k in ("length", "target")
    )
    if not same or not all(
        np.array_equal(back.sequence(i), examples.sequence(i)) for i in range(n)
    ):
        raise DataError(
            "the test examples are not all prefixes of whole sessions, so they cannot be "
            "written as events: export --to recbole keeps the examples as they are"
        )
    return sessions


def _events(sessions: Sessions, ids: np.ndarray, first: int, gap: int) -> pl.DataFrame:
    """One row per click: SessionId, ItemId, Time (see the module docstring)."""
    lengths = sessions.lengths
    session = np.repeat(np.arange(first, first + len(sessions)), lengths)
    k = np.arange(len(sessions.items)) - np.repeat(sessions.offsets[:-1], lengths)
    return pl.DataFrame(
        {
            "SessionId": session,
            "ItemId": ids[sessions.items].astype(str),
            "Time": session * gap + k,
        }
    )
