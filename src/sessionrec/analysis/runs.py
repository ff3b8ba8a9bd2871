"""Run directories that an analysis compares: their configs and the one dataset they share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sessionrec.data.dataset import SessionDataset
from sessionrec.errors import ConfigError


def runs_on_one_dataset(
    run_dirs: Sequence[str | Path],
) -> tuple[list[dict[str, Any]], SessionDataset]:
    """Each run's config.json and the dataset they were all trained on, rebuilt once."""
    from sessionrec.data.sources import reload_dataset
    from sessionrec.rundir import read_config

    if not run_dirs:
        raise ConfigError("give at least one run directory")
    configs = [read_config(r) for r in run_dirs]
    source = configs[0]["dataset"]
    for r, c in zip(run_dirs, configs, strict=True):
        if c["dataset"] != source:
            raise ConfigError(f"{r}: trained on {c['dataset']}, not {source} like {run_dirs[0]}")
    return configs, reload_dataset(source)
