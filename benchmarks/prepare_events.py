"""Own click logs: the same events as CSV, Parquet and RecBole `.inter` prepare to one dataset.

    python benchmarks/prepare_events.py --events 1000000                   # all three formats
    python benchmarks/prepare_events.py --events 10000000 --formats parquet  # peak memory

Generates a log (sessions of 2-10 clicks, Zipf-distributed items, one session every few
seconds over about 30 days, plus two extra columns a real log would carry), writes it in each
format, runs `sessionrec datasets prepare` on each in its own process and prints wall time
and peak RSS (wait4), then checks that every prepared dataset is array for array the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from sessionrec.data.prepared import read_prepared

T0 = 1_700_000_000


def generate(n_events: int, seed: int = 0) -> pl.DataFrame:
    """About `n_events` clicks: SessionId, ItemId, Time (epoch s), UserAgent, Price."""
    rng = np.random.default_rng(seed)
    n_sessions = n_events // 6
    lengths = rng.integers(2, 11, n_sessions)
    session = np.repeat(np.arange(n_sessions), lengths)
    start = T0 + np.cumsum(rng.integers(1, 2 * 30 * 86_400 // n_sessions + 2, n_sessions))
    k = np.arange(len(session)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = rng.zipf(1.3, len(session)) % 200_000
    return pl.DataFrame(
        {
            "SessionId": session,
            "ItemId": items,
            "Time": np.repeat(start, lengths) + 20 * k,
            "UserAgent": np.where(session % 3 == 0, "mobile", "desktop"),
            "Price": rng.random(len(session)).round(2),
        }
    )


def write(df: pl.DataFrame, fmt: str, folder: Path) -> tuple[Path, list[str]]:
    """The file of `fmt` and the prepare options that read it."""
    if fmt == "csv":
        path = folder / "log.csv"
        df.write_csv(path)
        return path, ["--format", "events"]
    if fmt == "parquet":
        path = folder / "log.parquet"
        df.with_columns(pl.from_epoch("Time")).write_parquet(path)  # a real timestamp column
        return path, ["--format", "events"]
    path = folder / "log.inter"
    df.select(
        pl.col("SessionId").alias("session_id:token"),
        pl.col("ItemId").alias("item_id:token"),
        pl.col("Time").alias("timestamp:float"),
    ).write_csv(path, separator="\t")
    return path, ["--format", "recbole"]


def prepare_in_child(path: Path, options: list[str], out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one `datasets prepare` process."""
    cmd = [sys.executable, "-m", "sessionrec", "datasets", "prepare", *options]
    cmd += ["--input", str(path), "--output", str(out), "--test-days", "3"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prepare failed on {path}: {proc.stderr.read().decode().strip()}")
    return wall, usage.ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--formats", default="csv,parquet,recbole")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        df = generate(args.events)
        print(f"{df.height:,} events, {df['SessionId'].n_unique():,} sessions")
        outputs = []
        for fmt in args.formats.split(","):
            path, options = write(df, fmt, folder)
            size = path.stat().st_size / 1024**2
            out = folder / f"prepared-{fmt}"
            wall, rss = prepare_in_child(path, options, out)
            print(f"{fmt:8s} file {size:7.1f} MB  prepare {wall:6.1f} s  peak RSS {rss:5.2f} GB")
            outputs.append((fmt, out))
        first = read_prepared(outputs[0][1])
        for fmt, out in outputs[1:]:
            other = read_prepared(out)
            same = (
                all(
                    np.array_equal(a.items, b.items) and np.array_equal(a.offsets, b.offsets)
                    for a, b in zip(first[:2], other[:2], strict=True)
                )
                and first[2] == other[2]
            )
            print(f"{fmt} identical to {outputs[0][0]}: {same}")
            if not same:
                raise SystemExit(1)
        train, test, items, _ = first
        print(
            f"prepared: {len(train):,} training and {len(test):,} test sessions, "
            f"{len(items):,} items"
        )


if __name__ == "__main__":
    main()
