"""The run directory: its file names, and the one reader of each file others read back.

Training writes a run directory (`training/run.py`, `training/trainer.py`, `models/base.py`);
results, serving, reproduce and the analyses read it through `read_config`, `read_metrics` and
`load_checkpoint`, so each file has one error policy: anything missing or malformed is one
`RunError` naming the file. The model itself is loaded by `models.registry.load_run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sessionrec.errors import RunError
from sessionrec.io import atomic_write, atomic_write_json, read_jsonl

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no lock there
    fcntl = None  # type: ignore[assignment]

CONFIG_FILE = "config.json"  # model, hyper-parameters, dataset, training settings, provenance
METRICS_FILE = "metrics.json"  # validation and test metrics, best epoch, times
LOG_FILE = "log.jsonl"  # one JSON record per logged step and per epoch
CHECKPOINT_FILE = "checkpoint.pt"  # model, optimizer and RNG state for --resume
MODEL_FILE = "model.json"  # model name and hyper-parameters, to rebuild it
WEIGHTS_FILE = "model.safetensors"  # what it learned (safetensors: no pickle)
PER_CASE_FILE = "per_case.npz"  # per-test-case metrics (reproduce, significance tests)
KEY_FILE = "reproduce.json"  # the reproduce job a cached run belongs to
SESSIONS_LOG_FILE = "sessions.jsonl"  # sessions ingested live (serving/live.py)
LOCK_FILE = "train.lock"  # held by the process training the run; holds its pid
SELECT_DIR, REFIT_DIR = "select", "refit"  # the paper protocol's two phases

# The fields every config.json has, with their types (bool is refused where int is wanted).
CONFIG_FIELDS: dict[str, type] = {
    "model": str,
    "num_items": int,
    "params": dict,
    "dataset": dict,
    "train": dict,
}
SPLITS = ("valid", "test")  # the metrics.json sections that hold a split's metrics


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None when there is no such file; a RunError naming the file
    when it cannot be read, is not JSON or holds something other than an object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: corrupted ({e})") from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The checked `config.json` of a run directory; anything missing or malformed is one
    RunError naming the file (the fields every reader relies on are checked here, once)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run directory (it is a file)")
    path = run_dir / CONFIG_FILE
    config = read_json_object(path)
    if config is None:
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    for name, kind in CONFIG_FIELDS.items():
        if name not in config:
            raise RunError(f"{path}: missing field '{name}'")
        value = config[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RunError(f"{path}: field '{name}' must be {kind.__name__}, got {value!r}")
    return config


def read_metrics(run_dir: str | Path, required: tuple[str, ...] = SPLITS) -> dict[str, Any]:
    """The `metrics.json` of a finished run, with the metrics of each split in `required`.

    No file is a RunError saying the run has not finished (training removes it when it starts
    and writes it last); a malformed one, or one without a required split, names the file.
    """
    path = Path(run_dir) / METRICS_FILE
    metrics = read_json_object(path)
    if metrics is None:
        raise RunError(f"{path}: missing (the run has not finished)")
    for split in SPLITS:
        if split in metrics and not isinstance(metrics[split], dict):
            raise RunError(f"{path}: corrupted ('{split}' is not an object)")
    for split in required:
        if split not in metrics:
            raise RunError(f"{path}: no {split} metrics (not finished?)")
    return metrics


RESUMING_FROM = "resuming_from"  # a started resume's settings before it changed them


def record_train_settings(
    run_dir: str | Path,
    settings: dict[str, Any],
    resume: dict[str, Any] | None = None,
    starting: bool = False,
) -> None:
    """Write the training settings a run now runs with into its config.json's `train`.

    `starting`: a resume writes its changes before it trains (so a later `--resume` runs with
    them too) and keeps the settings it started from. With `resume` (a finished resume's
    command and commit) the entry goes into `resumes`, with the settings this resume changed.
    The one writer of `train` once a run has started.
    """
    path = Path(run_dir) / CONFIG_FILE
    config = read_json_object(path)
    if config is None:
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    now = json.loads(json.dumps(settings))  # tuples as JSON lists
    if starting:
        config.setdefault(RESUMING_FROM, config.get("train", {}))
    if resume is not None:
        before = config.pop(RESUMING_FROM, config.get("train", {}))
        changed = {k: [before.get(k), v] for k, v in now.items() if before.get(k) != v}
        config["resumes"] = [*config.get("resumes", []), {**resume, "changed": changed}]
    config["train"] = now
    atomic_write_json(path, config)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a trainer checkpoint with `weights_only=True` (plain tensors and containers only)."""
    import torch  # here, so reading a run's JSON files does not load torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path.parent}: no checkpoint to resume from") from None
    except Exception as e:
        raise RunError(f"{path}: corrupted or unsafe checkpoint ({type(e).__name__})") from None


def write_weights(directory: Path, tensors: dict[str, Any]) -> None:
    """Write named tensors to `directory`'s weights file, atomically, with safetensors."""
    from safetensors.torch import save_file  # here, like torch: JSON readers need neither

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))


def read_weights(directory: Path) -> dict[str, Any]:
    """The named tensors of `directory`'s weights file (safetensors: no code can run); one
    RunError naming the file when it is missing or corrupted."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(directory / WEIGHTS_FILE)
    except FileNotFoundError:
        raise RunError(f"{directory}: no {WEIGHTS_FILE}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"{directory / WEIGHTS_FILE}: corrupted weights ({e})") from None


def read_epoch_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every epoch record of `log.jsonl`, in the order written ([] without a log): an epoch a
    time budget cut and a resume finished has two, the cut one first."""
    log = Path(run_dir) / LOG_FILE
    if not log.is_file():
        return []
    return [r for r in read_jsonl(log) if isinstance(r, dict) and r.get("event") == "epoch"]


def read_epochs(run_dir: str | Path) -> list[dict[str, Any]]:
    """The last record of each epoch, in order (a resume's finished epoch replaces its cut one)."""
    records: dict[Any, dict[str, Any]] = {}
    for record in read_epoch_records(run_dir):
        records.pop(record.get("epoch"), None)
        records[record.get("epoch")] = record
    return list(records.values())


_HELD: dict[Path, int] = {}  # run directories this process holds the lock of, and how deep


@contextlib.contextmanager
def training_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir`'s training lock while the block runs: a second process that would train
    or resume the same run directory gets one RunError naming the holder instead of writing
    over its checkpoint. Re-entrant within a process; the OS drops it when the process dies.
    A directory that does not exist yet is not locked (the caller creates it, or fails)."""
    key = Path(run_dir).resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    if fcntl is None or not key.is_dir():
        yield
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd, fcntl.LOCK_EX, tries=10):
            raise RunError(
                f"{run_dir}: being trained by another process (pid {_holder(fd)}); "
                "let it finish or stop it first"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the lock


def training_process(run_dir: str | Path) -> int | None:
    """The pid of the process training `run_dir` now, None when none is."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    if Path(run_dir).resolve() in _HELD:
        return os.getpid()
    fd = os.open(path, os.O_RDONLY)
    try:
        if _try_lock(fd, fcntl.LOCK_SH, tries=1):
            return None  # released again when fd closes
        return _holder(fd) or -1
    finally:
        os.close(fd)


def _try_lock(fd: int, kind: int, tries: int) -> bool:
    """Take a flock of `kind` without waiting, retrying briefly (another process's
    `training_process` holds a shared lock for an instant). A file system without locks
    (some network mounts) counts as taken: the run trains unguarded, as before locks."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(0.05)
        except OSError:  # ENOLCK, EOPNOTSUPP: no locking here
            return True
    return False


def _holder(fd: int) -> int | None:
    """The pid written into a lock file, None when unreadable."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
