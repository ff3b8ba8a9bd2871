"""Compare the running environment with the lock file; exit 1 naming each difference.

Run by `make setup` after installing, and by tests/test_environment.py. Packages the lock does
not name (pip itself, a tool a user added) are listed but are not an error.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).with_name("py311.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
IGNORED = {"pip", "sessionrec"}  # the installer, and this project (installed editable)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path = LOCK) -> dict[str, str]:
    """name -> exact version, from the lock's `name==version` lines."""
    pins = (PIN.match(line) for line in lock.read_text().splitlines())
    return {normalize(m[1]): m[2] for m in pins if m}


def installed() -> dict[str, str]:
    return {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}


def differences(want: dict[str, str], have: dict[str, str]) -> list[str]:
    out = [f"{name} is missing (locked {v})" for name, v in want.items() if name not in have]
    out += [
        f"{name} {have[name]} is installed, the lock has {v}"
        for name, v in want.items()
        if name in have and have[name] != v
    ]
    return sorted(out)


def main(argv: list[str]) -> int:
    lock = Path(argv[0]) if argv else LOCK
    if sys.version_info[:2] != (3, 11):
        print(f"{lock}: locked for Python 3.11, this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    want, have = locked(lock), installed()
    problems = differences(want, have)
    for line in problems:
        print(f"{lock}: {line}", file=sys.stderr)
    if problems:
        print("the environment differs from the lock: run `make clean setup`", file=sys.stderr)
        return 1
    extra = sorted(set(have) - set(want) - IGNORED)
    note = f"; not in the lock: {', '.join(extra)}" if extra else ""
    print(f"environment matches {lock} ({len(want)} packages){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
