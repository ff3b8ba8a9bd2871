"""The prepared-dataset directory: `train.npz`, `test.npz`, `item_ids.json`, `stats.json`.

A safe format (no pickle), written atomically into a temporary directory that is then renamed
into place.

Spec: docs/data.md#the-prepared-dataset-directory
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.sessions import Sessions
from sessionrec.errors import DataError

TRAIN_FILE = "train.npz"
TEST_FILE = "test.npz"
ITEM_IDS_FILE = "item_ids.json"
STATS_FILE = "stats.json"


def is_prepared_dir(path: str | Path) -> bool:
    """True if `path` is a directory holding `train.npz` and `test.npz`."""
    p = Path(path)
    return p.is_dir() and (p / TRAIN_FILE).is_file() and (p / TEST_FILE).is_file()


def write_prepared(
    out_dir: str | Path,
    train: Sessions,
    test: Sessions,
    item_ids: list[str],
    stats: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write a prepared dataset atomically; refuse a non-empty `out_dir` unless `overwrite`.

    On any failure nothing new is left behind and an existing directory is untouched.
    """
    out = Path(out_dir)
    check_output_dir(out, overwrite)
    if not isinstance(item_ids, list) or not all(isinstance(x, str) for x in item_ids):
        raise DataError(f"{out / ITEM_IDS_FILE}: item ids must be a list of strings")
    if len(set(item_ids)) != len(item_ids):
        raise DataError(f"{out / ITEM_IDS_FILE}: item ids must be unique")
    arrays = {
        TRAIN_FILE: _checked_arrays(train.items, train.offsets, len(item_ids), out / TRAIN_FILE),
        TEST_FILE: _checked_arrays(test.items, test.offsets, len(item_ids), out / TEST_FILE),
    }
    with staged_dir(out, overwrite, "the prepared dataset") as tmp:
        for name, (items, offsets) in arrays.items():
            with open(tmp / name, "wb") as f:
                np.savez(f, items=items, offsets=offsets)
        _write_json(tmp / ITEM_IDS_FILE, item_ids, out / ITEM_IDS_FILE)
        _write_json(tmp / STATS_FILE, stats, out / STATS_FILE)
    return out


@contextmanager
def staged_dir(out: Path, overwrite: bool, what: str) -> Iterator[Path]:
    """A directory beside `out` to write into; it replaces `out` only if the block succeeds."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise DataError(f"{out}: cannot create a directory next to it ({e.strerror or e})") from e
    try:
        yield tmp
        _move_into_place(tmp, out, overwrite)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise DataError(f"{out}: cannot write {what} ({e.strerror or e})") from e
        raise


def read_prepared(path: str | Path) -> tuple[Sessions, Sessions, list[str], dict[str, Any]]:
    """Load and validate a prepared dataset: (train, test, item_ids, stats).

    A missing `stats.json` gives `{}`; anything malformed raises `DataError` naming the file.
    """
    d = Path(path)
    if not d.is_dir():
        raise DataError(f"{d}: not a prepared dataset directory (does not exist or is a file)")
    item_ids = _read_item_ids(d / ITEM_IDS_FILE)
    train = _read_sessions(d / TRAIN_FILE, len(item_ids))
    test = _read_sessions(d / TEST_FILE, len(item_ids))
    stats_path = d / STATS_FILE
    stats: Any = _read_json(stats_path) if stats_path.exists() else {}
    if not isinstance(stats, dict):
        raise DataError(f"{stats_path}: expected a JSON object")
    return train, test, item_ids, stats


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Raise unless `out` is absent, an empty directory, or a directory we may overwrite."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DataError(f"{out}: exists and is not a directory")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise DataError(f"{out}: directory exists and is not empty (use overwrite to replace it)")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    check_output_dir(out, overwrite)  # re-check: it may have changed while we were writing
    if not any(out.iterdir()):
        out.rmdir()
        os.replace(tmp, out)
        return
    backup = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(out, backup)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(backup, out)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def _write_json(path: Path, obj: Any, shown: Path) -> None:
    try:
        text = json.dumps(obj, indent=1, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DataError(f"{shown}: cannot be written as JSON ({e})") from e
    path.write_text(text + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: missing") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e


def _read_item_ids(path: Path) -> list[str]:
    ids = _read_json(path)
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise DataError(f"{path}: expected a JSON list of strings")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: item ids are not unique")
    return ids


def _read_sessions(path: Path, n_items: int) -> Sessions:
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: not an .npz archive")
        with archive:
            missing = {"items", "offsets"} - set(archive.files)
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(sorted(missing))}")
            items, offsets = archive["items"], archive["offsets"]
    except DataError:
        raise
    except Exception as e:  # zip, zlib, header and pickle-refusal errors all mean "bad file"
        why = f"{type(e).__name__}: {e}"
        raise DataError(f"{path}: cannot be read as an .npz archive ({why})") from e
    items, offsets = _checked_arrays(items, offsets, n_items, path)
    return Sessions(items, offsets)


def _checked_arrays(
    items: np.ndarray, offsets: np.ndarray, n_items: int, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a CSR pair against `n_items` and return it as int64 arrays."""
    items, offsets = np.asarray(items), np.asarray(offsets)
    for name, a in (("items", items), ("offsets", offsets)):
        if a.dtype.kind not in "iu":
            raise DataError(f"{path}: array {name!r} has dtype {a.dtype}, expected integers")
        if a.ndim != 1:
            raise DataError(f"{path}: array {name!r} has {a.ndim} dimensions, expected 1")
    if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != items.size:
        raise DataError(f"{path}: offsets must start at 0 and end at len(items) = {items.size}")
    if np.any(offsets[1:] < offsets[:-1]):
        raise DataError(f"{path}: offsets are not non-decreasing")
    if items.size and (items.min() < 1 or items.max() > n_items):
        raise DataError(
            f"{path}: item ids must lie in 1..{n_items} (the length of {ITEM_IDS_FILE}), "
            f"found {items.min()}..{items.max()}"
        )
    return items.astype(np.int64, copy=False), offsets.astype(np.int64, copy=False)
