"""Restricted unpickling of the benchmark `.txt` pickles: lists, tuples and ints only.

No global name is ever resolved, so no callable can be reached and nothing in the file runs;
after loading, the structure is checked to contain only lists, tuples and ints.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from sessionrec.errors import DataError, UnsafeFileError


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeFileError(f"refers to {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError("uses a persistent id")


def _check_plain(obj: Any) -> None:
    """Raise unless `obj` is built only from lists, tuples and ints (bools excluded)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if type(x) in (list, tuple):
            # Fast path for the common case: a flat list of ints.
            if all(type(v) is int for v in x):
                continue
            stack.extend(x)
        elif type(x) is not int:
            raise UnsafeFileError(
                f"contains a {type(x).__name__}; only lists, tuples and ints are allowed"
            )


def load_plain_pickle(path: str | Path) -> Any:
    """Load a pickle that may hold only lists, tuples and ints; refuse anything else."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if not data:
        raise DataError(f"{path}: file is empty")
    try:
        obj = _PlainDataUnpickler(io.BytesIO(data)).load()
        _check_plain(obj)
    except UnsafeFileError as e:
        raise UnsafeFileError(f"{path}: refused: {e}") from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be session data") from None
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise DataError(
            f"{path}: not a valid pickle of session data ({type(e).__name__}: {e})"
        ) from None
    return obj
