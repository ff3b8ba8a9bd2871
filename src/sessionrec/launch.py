"""The `sessionrec` console script: CPU runtime defaults first, then the command line.

OpenMP reads `OMP_WAIT_POLICY` once, when torch (or numba's OpenMP layer) loads, so the
defaults are set here, before `sessionrec.cli` imports torch. This module imports neither.
Why each default: docs/performance.md (Runtime settings for CPUs).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Idle OpenMP threads sleep instead of spinning: a spinning pool steals the core of any other
# busy process, this one's other threads included (numba's pool beside torch's).
RUNTIME_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply_runtime_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each of RUNTIME_DEFAULTS the user has not set; return the ones this call set."""
    env = os.environ if environ is None else environ
    applied = {name: value for name, value in RUNTIME_DEFAULTS.items() if name not in env}
    env.update(applied)
    return applied


def main() -> None:
    """Entry point of the `sessionrec` script and of `python -m sessionrec`."""
    apply_runtime_defaults()
    from sessionrec.cli import main as run_cli  # loads torch, after the defaults

    run_cli()
