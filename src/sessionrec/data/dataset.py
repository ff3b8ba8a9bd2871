"""`SessionDataset`: training sessions, prefix examples, validation and test splits.

A dataset is named (`diginetica`, `tmall`, `retailrocket`, `yoochoose1_64` under a data root,
or the built-in `synthetic`) or is any directory holding either the benchmark pickles
(`all_train_seq.txt`, `test.txt`) or a prepared dataset (`train.npz`, `test.npz`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.safe_pickle import load_plain_pickle
from sessionrec.data.sessions import Examples, Sessions
from sessionrec.errors import ConfigError, DataError, UnsafeFileError

BENCHMARKS = ("diginetica", "tmall", "retailrocket", "yoochoose1_64")
BUILTIN = ("synthetic",)
DEFAULT_VALID_FRACTION = 0.1
# The files a dataset directory may hold; each must resolve inside the data root.
DATA_FILES = (
    "all_train_seq.txt",
    "test.txt",
    "train.npz",
    "test.npz",
    "item_ids.json",
    "stats.json",
)
# Ids index the item table: refuse ids above both limits (raw, un-renumbered ids, say).
SPARSE_ID_LIMIT, SPARSE_ID_RATIO = 1_000_000, 10


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


def default_data_root() -> Path | None:
    """`$SESSIONREC_DATA`, else `../shared/datasets` beside the working or source tree."""
    env = os.environ.get("SESSIONREC_DATA")
    if env:
        return Path(env)
    candidates = [
        Path.cwd().parent / "shared" / "datasets",
        Path(__file__).resolve().parents[3].parent / "shared" / "datasets",
    ]
    return next((c for c in candidates if c.is_dir()), None)


def check_inside(path: Path, root: Path) -> None:
    """Refuse `path` unless it resolves (following every symlink) to `root` or inside it."""
    try:
        real, real_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise UnsafeFileError(f"{path}: refused: cannot be resolved ({e})") from None
    if real != real_root and real_root not in real.parents:
        raise UnsafeFileError(
            f"{path}: refused: it resolves to {real}, outside the data root {root}"
        )


def resolve_dataset_dir(spec: str | Path, data_root: str | Path | None = None) -> Path:
    """Turn a dataset name or directory path into an existing directory."""
    spec_str = str(spec)
    if spec_str in BENCHMARKS:
        root = Path(data_root) if data_root else default_data_root()
        if root is None:
            raise DataError(
                f"dataset '{spec_str}': no data root; pass --data-root or set SESSIONREC_DATA"
            )
        path = root / spec_str
        if not path.is_dir():
            raise DataError(f"dataset '{spec_str}': directory {path} does not exist")
        check_inside(path, root)
        return path
    path = Path(spec_str).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise DataError(f"{path}: not a directory (a dataset is a directory with its data files)")
    known = ", ".join(BENCHMARKS + BUILTIN)
    raise ConfigError(f"unknown dataset '{spec_str}': not a directory nor one of {known}")


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


def _load_pickles(path: Path) -> tuple[Sessions, Examples, None]:
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


def _load_prepared(path: Path) -> tuple[Sessions, Examples, list[str]]:
    from sessionrec.data.prepared import read_prepared

    train, test_sessions, item_ids, stats = read_prepared(path)
    test = test_sessions.prefixes()
    shortest = stats.get("rules", {}).get("min_test_prefix", 1)  # prepare's rule 6
    if not isinstance(shortest, int) or shortest < 1:
        raise DataError(f"{path / 'stats.json'}: rules.min_test_prefix must be an integer >= 1")
    if shortest > 1:
        test = test.subset(np.flatnonzero(test.length >= shortest))
    return train, test, item_ids


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


def load_dataset(
    spec: str | Path,
    data_root: str | Path | None = None,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    train_fraction: float = 1.0,
) -> SessionDataset:
    """Load a named benchmark, the built-in synthetic data, or a dataset directory.

    `train_fraction` < 1 keeps the most recent fraction of training sessions.
    """
    if str(spec) == "synthetic":
        from sessionrec.data.synthetic import make_synthetic

        return make_synthetic(valid_fraction=valid_fraction, train_fraction=train_fraction)
    path = resolve_dataset_dir(spec, data_root)
    root = path.parent if str(spec) in BENCHMARKS else path  # what the files must stay inside
    for name in DATA_FILES:
        if (path / name).is_symlink() or (path / name).exists():
            check_inside(path / name, root)
    if (path / "train.npz").exists():
        train, test, item_ids = _load_prepared(path)
    elif (path / "all_train_seq.txt").exists() or (path / "test.txt").exists():
        train, test, item_ids = _load_pickles(path)
    else:
        raise DataError(
            f"{path}: not a dataset directory (expected all_train_seq.txt and test.txt, "
            "or train.npz and test.npz from `sessionrec datasets prepare`)"
        )
    name = str(spec) if str(spec) in BENCHMARKS else path.name
    source = {"dataset": str(spec) if str(spec) in BENCHMARKS else str(path.resolve())}
    if str(spec) in BENCHMARKS and data_root:
        source["data_root"] = str(Path(data_root).resolve())
    return build_dataset(name, train, test, valid_fraction, item_ids, source, train_fraction)


def reload_dataset(source: dict[str, Any]) -> SessionDataset:
    """Load the dataset recorded in a run's config (see `SessionDataset.source`)."""
    if "dataset" not in source:
        raise DataError("run config has no dataset entry")
    if source["dataset"] == "synthetic":
        from sessionrec.data.synthetic import make_synthetic

        return make_synthetic(**{k: v for k, v in source.items() if k != "dataset"})
    return load_dataset(
        source["dataset"],
        source.get("data_root"),
        source.get("valid_fraction", DEFAULT_VALID_FRACTION),
        source.get("train_fraction", 1.0),
    )
