"""The item vocabulary of a run: the user's original item ids <-> the model's ids 1..N.

A prepared dataset keeps its vocabulary in `item_ids.json` (`item_ids[i]` is the original id
of internal id i + 1). The benchmark pickles and the synthetic data use their own integers,
so their vocabulary is the identity on 1..N.

Where a run's vocabulary comes from, in order:
1. `RUN_DIR/item_ids.json`, if present;
2. the prepared dataset named in the run's `config.json`: its `item_ids.json` is read and
   copied into the run directory (best effort), so the run keeps serving after the dataset
   is moved or deleted;
3. the identity, for the synthetic data and datasets in the benchmark pickle format.
A run whose prepared dataset is gone and that has no copy is refused rather than served
with the wrong ids.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sessionrec.errors import DataError, RunError
from sessionrec.io import atomic_write_json

ITEM_IDS_FILE = "item_ids.json"
ItemId = int | str
log = logging.getLogger(__name__)


class ItemVocabulary:
    """Maps original item ids to internal ids 1..num_items and back."""

    def __init__(self, num_items: int, item_ids: list[str] | None = None) -> None:
        if item_ids is not None and len(item_ids) != num_items:
            raise RunError(
                f"item vocabulary has {len(item_ids)} ids but the model has {num_items} items"
            )
        self.num_items = num_items
        self.item_ids = item_ids
        self._index = None if item_ids is None else {s: i + 1 for i, s in enumerate(item_ids)}

    @property
    def kind(self) -> str:
        """`original` (a prepared dataset's ids) or `integer` (ids 1..N as trained on)."""
        return "integer" if self.item_ids is None else "original"

    def lookup(self, item: ItemId) -> int | None:
        """The internal id of `item`, or None when the model does not know it."""
        if isinstance(item, bool):
            return None
        if not isinstance(item, int | str):
            try:
                item = operator.index(item)  # NumPy integers
            except TypeError:
                return None
        if self._index is not None:
            return self._index.get(item if isinstance(item, str) else str(item))
        if isinstance(item, str):
            text = item.strip()
            if not (text.isascii() and text.isdigit()):
                return None
            item = int(text)
        return item if 1 <= item <= self.num_items else None

    def to_internal(self, items: Iterable[ItemId]) -> tuple[list[int], list[ItemId]]:
        """(known internal ids in order, unknown original ids in order)."""
        known: list[int] = []
        unknown: list[ItemId] = []
        for item in items:
            i = self.lookup(item)
            if i is None:
                unknown.append(item)
            else:
                known.append(i)
        return known, unknown

    def to_original(self, internal: int) -> ItemId:
        """The user's id of internal id `internal`."""
        return internal if self.item_ids is None else self.item_ids[internal - 1]


def read_item_ids(path: Path) -> list[str]:
    """A validated `item_ids.json`: a JSON list of unique strings."""
    try:
        ids = json.loads(path.read_text())
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise DataError(f"{path}: expected a JSON list of strings")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: item ids are not unique")
    return ids


def _dataset_dir(source: dict[str, Any]) -> Path | None:
    """The run's dataset directory, or None for data that has no directory (synthetic)."""
    from sessionrec.data.sources import BENCHMARKS, resolve_dataset_dir

    spec = source.get("dataset")
    if spec is None or spec == "synthetic":
        return None
    try:
        return resolve_dataset_dir(spec, source.get("data_root"))
    except Exception:
        if spec in BENCHMARKS:
            return None  # a named benchmark is in the pickle format: its own integers
        raise RunError(
            f"the run's dataset {spec} is gone and the run directory has no {ITEM_IDS_FILE}: "
            f"copy the dataset's {ITEM_IDS_FILE} into the run directory to serve it"
        ) from None


def load_vocabulary(run_dir: str | Path, config: dict[str, Any], num_items: int) -> ItemVocabulary:
    """The run's vocabulary (see the module docstring for where it comes from)."""
    own = Path(run_dir) / ITEM_IDS_FILE
    if own.is_file():
        return ItemVocabulary(num_items, read_item_ids(own))
    data_dir = _dataset_dir(config.get("dataset") or {})
    if data_dir is None or not (data_dir / ITEM_IDS_FILE).is_file():
        if data_dir is not None and (data_dir / "train.npz").is_file():
            raise RunError(f"{data_dir}: a prepared dataset without {ITEM_IDS_FILE}")
        return ItemVocabulary(num_items)
    item_ids = read_item_ids(data_dir / ITEM_IDS_FILE)
    vocab = ItemVocabulary(num_items, item_ids)
    try:
        atomic_write_json(own, item_ids)
    except OSError as e:  # a read-only run directory still serves
        log.warning("could not copy %s into %s: %s", ITEM_IDS_FILE, run_dir, e)
    return vocab
