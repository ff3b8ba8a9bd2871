"""Where datasets come from: a benchmark name, the built-in `synthetic`, or a directory.

Spec: docs/data.md#where-a-dataset-comes-from
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.benchmark_pickles import read_pickles
from sessionrec.data.dataset import DEFAULT_VALID_FRACTION, SessionDataset, build_dataset
from sessionrec.data.prepared import read_prepared
from sessionrec.data.sessions import Examples, Sessions
from sessionrec.data.synthetic import make_synthetic
from sessionrec.errors import ConfigError, DataError, UnsafeFileError

BENCHMARKS = ("diginetica", "tmall", "retailrocket", "yoochoose1_64")
BUILTIN = ("synthetic",)
# The files a dataset directory may hold; each must resolve inside the data root.
DATA_FILES = (
    "all_train_seq.txt",
    "test.txt",
    "train.npz",
    "test.npz",
    "item_ids.json",
    "stats.json",
)


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


def _load_prepared(path: Path) -> tuple[Sessions, Examples, list[str]]:
    train, test_sessions, item_ids, stats = read_prepared(path)
    test = test_sessions.prefixes()
    shortest = stats.get("rules", {}).get("min_test_prefix", 1)  # prepare's rule 6
    if not isinstance(shortest, int) or shortest < 1:
        raise DataError(f"{path / 'stats.json'}: rules.min_test_prefix must be an integer >= 1")
    if shortest > 1:
        test = test.subset(np.flatnonzero(test.length >= shortest))
    return train, test, item_ids


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
        return make_synthetic(valid_fraction=valid_fraction, train_fraction=train_fraction)
    path = resolve_dataset_dir(spec, data_root)
    root = path.parent if str(spec) in BENCHMARKS else path  # what the files must stay inside
    for name in DATA_FILES:
        if (path / name).is_symlink() or (path / name).exists():
            check_inside(path / name, root)
    if (path / "train.npz").exists():
        train, test, item_ids = _load_prepared(path)
    elif (path / "all_train_seq.txt").exists() or (path / "test.txt").exists():
        train, test, item_ids = read_pickles(path)
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
        return make_synthetic(**{k: v for k, v in source.items() if k != "dataset"})
    return load_dataset(
        source["dataset"],
        source.get("data_root"),
        source.get("valid_fraction", DEFAULT_VALID_FRACTION),
        source.get("train_fraction", 1.0),
    )
