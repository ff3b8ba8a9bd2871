"""The test environment is exactly the lock (make setup installs it; drift fails here)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lock_check", ROOT / "lock" / "check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

UNLOCKED = "SESSIONREC_UNLOCKED"


@pytest.mark.skipif(
    bool(os.environ.get(UNLOCKED)),
    reason=f"{UNLOCKED} is set: an environment built outside the lock (make test-latest)",
)
def test_environment_matches_the_lock():
    done = subprocess.run(
        [sys.executable, str(ROOT / "lock" / "check.py")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_check_names_each_drifted_package():
    want = {"numpy": "2.4.6", "torch": "2.13.0+cpu", "rich": "15.0.0"}
    have = {"numpy": "2.4.7", "torch": "2.13.0+cpu", "pip": "25.0"}
    assert check.differences(want, have) == [
        "numpy 2.4.7 is installed, the lock has 2.4.6",
        "rich is missing (locked 15.0.0)",
    ]


def test_lock_pins_every_package_with_a_hash():
    text = (ROOT / "lock" / "py311.txt").read_text()
    pins = check.locked()
    assert pins["torch"] == "2.13.0+cpu"  # the CPU build, never the CUDA one
    assert {"numpy", "numba", "llvmlite", "polars", "scipy", "pytest"} <= set(pins)
    blocks = [b for b in text.split("\n") if check.PIN.match(b)]
    assert len(blocks) == len(pins)
    for name in pins:  # each pin is followed by at least one sha256
        start = text.index(f"\n{name}==") if not text.startswith(f"{name}==") else 0
        assert "--hash=sha256:" in text[start : text.index("# via", start)], name
