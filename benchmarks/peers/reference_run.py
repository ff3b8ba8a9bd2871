"""What the reference-curve drivers share: unpacking the authors' files, their pickle layout,
a one-thread environment for their code, and streaming the child's RESULT lines into the
JSON curve they write."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")


def unpack(repo: Path, work: Path, *paths: str) -> None:
    """`paths` of a fetched git directory's HEAD into `work` (`git archive`, never a checkout)."""
    archive = subprocess.run(
        ["git", f"--git-dir={repo}", "archive", "HEAD", *paths], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)


def as_their_pickle(examples) -> tuple[list[list[int]], list[int]]:
    """(input sequences, next items): their `train.txt` / `test.txt` layout."""
    seqs = [examples.sequence(i).tolist() for i in range(len(examples))]
    return seqs, examples.target.tolist()


def write_splits(folder: Path, data: Any) -> None:
    """Our fitting examples as their `train.txt`, our validation examples as `test.txt`."""
    for name, split in (("train.txt", data.train), ("test.txt", data.valid)):
        with open(folder / name, "wb") as f:
            pickle.dump(as_their_pickle(split), f)


def add_budget(ap: argparse.ArgumentParser) -> None:
    """`--max-minutes`: stop their code after this long, keeping the epochs it finished."""
    ap.add_argument("--max-minutes", type=float, default=None)


def run_child(
    command: list[str], cwd: Path, reference: str, data: Any, args: argparse.Namespace
) -> None:
    """Run their code and write its per-epoch RESULT lines to `args.out` as each arrives
    (printed too), so a run stopped by `--max-minutes` or a signal keeps its finished epochs."""
    curve: list[dict[str, Any]] = []
    progress: dict[str, Any] = {}
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            command, cwd=cwd, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=err, text=True
        )
        started, limit = time.monotonic(), 60 * (args.max_minutes or 0)
        budget = threading.Timer(limit, child.kill)
        if args.max_minutes:
            budget.daemon = True
            budget.start()
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `timeout`: run `finally`
        try:
            for line in child.stdout:
                if line.startswith("RESULT "):
                    curve.append(json.loads(line[7:]))
                    _write(curve, reference, data, args, complete=False)
                    _print(curve[-1])
                elif line.startswith("PROGRESS "):
                    progress = json.loads(line[9:])
                    _write(curve, reference, data, args, complete=False, progress=progress)
        finally:
            signal.signal(signal.SIGTERM, previous)
            budget.cancel()
            if child.poll() is None:  # interrupted here: their code must not outlive us
                child.kill()
            code = child.wait()
        timed_out = code != 0 and bool(limit) and time.monotonic() - started >= limit
        if code != 0 and not timed_out:
            err.seek(0)
            raise SystemExit(f"their code failed: {err.read().strip().splitlines()[-3:]}")
    unfinished = progress if timed_out and progress.get("epoch") == len(curve) + 1 else None
    _write(curve, reference, data, args, complete=not timed_out, progress=unfinished)
    if timed_out:
        print(f"stopped by --max-minutes {args.max_minutes:g} after {len(curve)} epoch(s)")
    if unfinished:
        print(_progress_line(unfinished))


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _progress_line(p: dict[str, Any]) -> str:
    """How far their code got into an epoch it did not finish."""
    per_step = p["seconds"] / p["steps_done"]
    return (
        f"epoch {p['epoch']} unfinished: {p['steps_done']} of {p['steps']} steps in "
        f"{p['seconds']:.0f} s ({per_step:.2f} s a step, about {per_step * p['steps'] / 60:.0f}"
        " min for the epoch's training)"
    )


def _write(
    curve: list[dict[str, Any]],
    reference: str,
    data: Any,
    args: argparse.Namespace,
    complete: bool,
    progress: dict[str, Any] | None = None,
) -> None:
    """The JSON: the finished epochs and, while an epoch runs or where a budget cut one, how far
    it got (`unfinished`: steps done of steps, training seconds)."""
    result = {
        "reference": reference,
        "dataset": data.name,
        "train_fraction": args.train_fraction,
        "seed": args.seed,
        "fitting_examples": len(data.train),
        "evaluated_on": f"our validation split ({len(data.valid):,} examples)",
        "epochs_asked": args.epochs,
        "complete": complete,
        "curve": curve,
    }
    if progress:
        result["unfinished"] = progress
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)


def _print(point: dict[str, Any]) -> None:
    print(
        f"epoch {point['epoch']}: their HR@20 {point['hr@20']:.2f} MRR@20 "
        f"{point['mrr@20']:.2f} ({point['seconds']:.0f} s)",
        flush=True,
    )
