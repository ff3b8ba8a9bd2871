"""How often following `model` through training makes a reader come back to a module.

Runs `train_and_evaluate` for a small model on synthetic data and records, in the order the
code first reaches them, every sessionrec function that is handed the model: the model, its
network or an object holding either (a trainer) among its arguments. Each function is read
once, as a newcomer reading the code would. Consecutive functions in one module are one
stay; a stay in a module already left is a return. Prints the path and both counts.

    .venv/bin/python benchmarks/reading_path.py --model narm
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import sessionrec
from sessionrec.data.synthetic import make_synthetic
from sessionrec.models.registry import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate

ROOT = Path(sessionrec.__file__).parent


def _holds(value: Any, targets: tuple[int, ...]) -> bool:
    """Whether `value` is one of the targets or an object with one as an attribute."""
    if id(value) in targets:
        return True
    attrs = getattr(value, "__dict__", None)
    return isinstance(attrs, dict) and any(id(v) in targets for v in attrs.values())


def trace_path(model_name: str) -> list[tuple[str, str]]:
    """(module, function) of each sessionrec function handed the model, in first-call order."""
    data = make_synthetic(num_items=300, num_sessions=2000)
    model = create(model_name, data.num_items)
    config = TrainConfig(**{**type(model).train_defaults, "epochs": 1, "seed": 0})
    seen: set[Any] = set()
    path: list[tuple[str, str]] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event != "call" or code in seen or not code.co_filename.startswith(str(ROOT)):
            return None
        targets = tuple(id(x) for x in (model, getattr(model, "net", None)) if x is not None)
        args = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount]]
        if any(_holds(a, targets) for a in args):
            seen.add(code)
            module = str(Path(code.co_filename).relative_to(ROOT))
            path.append((module, code.co_qualname))
        return None

    with tempfile.TemporaryDirectory() as tmp:
        sys.setprofile(tracer)
        try:
            train_and_evaluate(model, data, config, Path(tmp) / "run")
        finally:
            sys.setprofile(None)
    return path


def stays(path: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Consecutive functions of one module grouped into one stay."""
    grouped: list[tuple[str, list[str]]] = []
    for module, function in path:
        if grouped and grouped[-1][0] == module:
            grouped[-1][1].append(function)
        else:
            grouped.append((module, [function]))
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="narm")
    args = parser.parse_args()
    grouped = stays(trace_path(args.model))
    visited: set[str] = set()
    returns = 0
    for module, functions in grouped:
        again = module in visited
        returns += again
        visited.add(module)
        print(f"{'↩ ' if again else '  '}{module}: {', '.join(functions)}")
    print(
        f"{args.model}: {len(grouped)} stays in {len(visited)} modules, {returns} returns "
        "to a module already left"
    )


if __name__ == "__main__":
    main()
