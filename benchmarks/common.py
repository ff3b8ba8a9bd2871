"""Helpers shared by the benchmark scripts: peak memory, a machine line, the --json summary."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine_line(threads: int) -> str:
    """What the figures depend on: torch version, threads, CPUs and the current load."""
    import torch

    return (
        f"torch {torch.__version__}, {threads} thread(s), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def write_summary(path: str | None, summary: dict[str, Any]) -> None:
    """Write the script's headline figures as JSON for `run_all.py` (no-op without a path)."""
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)
