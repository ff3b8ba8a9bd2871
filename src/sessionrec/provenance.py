"""Where a result comes from: command, code commit, machine and data checksums.

Written into each run's config.json when training starts, and copied into the results
registry (sessionrec.results), so every published figure names what produced it.
"""

from __future__ import annotations

import hashlib
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

SOURCE_DIR = Path(__file__).resolve().parent


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(directory: Path = SOURCE_DIR) -> str | None:
    """The checkout's commit, '+dirty' if tracked files differ; None for an installed copy."""
    if not (directory.parents[1] / ".git").exists():  # src/sessionrec in a clone of the repo
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_checksums(directory: Path | None) -> dict[str, str]:
    """sha256 of each data file of a dataset directory (none for built-in data)."""
    from sessionrec.data.sources import DATA_FILES

    if directory is None:
        return {}
    return {n: file_sha256(directory / n) for n in DATA_FILES if (directory / n).is_file()}


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: `sessionrec ...` for the CLI, else the script and its arguments."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("sessionrec", "__main__.py"):
        argv[0] = "sessionrec"
    return shlex.join(argv)


def device_name(device: torch.device | None) -> str | None:
    """The device a run trained on, named for the record: `cpu` or `cuda (NVIDIA H200)`."""
    if device is None:
        return None
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def provenance(data_dir: Path | None, device: torch.device | None = None) -> dict[str, Any]:
    return {
        "command": command_line(),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": device_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "data_sha256": data_checksums(data_dir),
    }
