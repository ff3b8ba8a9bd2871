"""The console script sets its CPU runtime defaults before torch loads (docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from sessionrec.launch import RUNTIME_DEFAULTS, apply_runtime_defaults


def test_defaults_fill_only_what_the_user_left_unset() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"}
    assert apply_runtime_defaults(env) == {}
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"}
    env = {"PATH": "/bin"}
    assert apply_runtime_defaults(env) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}


def _child(*args: str, **env: str) -> str:
    """stdout of this python run with `args`, the defaults unset unless given in `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in RUNTIME_DEFAULTS}
    out = subprocess.run(
        [sys.executable, *args], env=clean | env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_launcher_sets_the_policy_before_torch_loads() -> None:
    # OpenMP reads the variable once, when torch loads: the launcher must not load torch first.
    code = (
        "import os, sys; from sessionrec import launch; "
        "loaded = 'torch' in sys.modules; launch.apply_runtime_defaults(); "
        "import torch; print(loaded, os.environ['OMP_WAIT_POLICY'])"
    )
    assert _child("-c", code) == "False PASSIVE"
    assert _child("-c", code, OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"


def test_both_entry_points_run_the_launcher() -> None:
    script = entry_points(group="console_scripts", name="sessionrec")
    assert [e.value for e in script] == ["sessionrec.launch:main"]
    assert "focol" in _child("-m", "sessionrec", "models", "list")
