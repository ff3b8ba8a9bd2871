"""Two processes under torchrun (gloo, CPU) train as one run.

Checked: one run directory written once; identical weights on both ranks after every step
(each rank appends a weight digest per step, SESSIONREC_WEIGHT_TRACE); test metrics equal to
a single-process evaluation of the saved model; a run SIGKILLed mid-epoch resumes to the
same steps and weights as the uninterrupted run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import ENV, write_pickle_dataset
from sessionrec.data.synthetic import make_synthetic
from sessionrec.models.base import Recommender
from sessionrec.training.distributed import weight_digest
from sessionrec.training.run import evaluate_run

NARM = [
    "train",
    "narm",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--no-progress",
    "--set",
    "checkpoint_seconds=0",
    "--set",
    "log_every=2",
]
STEPS = 48  # 6,107 examples / 64 = 96 batches, 2 per step


def torchrun(*args: object) -> list[str]:
    """torchrun (its module, from this interpreter) with 2 local processes on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "sessionrec",
        *map(str, args),
    ]


def launch(*args: object, trace: Path, **env: str) -> subprocess.CompletedProcess:
    trace.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        torchrun(*args),
        # A rank that aborts in C++ prints every thread's Python stack (faulthandler).
        env=dict(ENV, PYTHONFAULTHANDLER="1", SESSIONREC_WEIGHT_TRACE=str(trace), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, without_ddp_warnings(proc.stderr)[-6000:]
    return proc


def without_ddp_warnings(stderr: str) -> str:
    """stderr less DDP's per-rank find_unused_parameters warning, which buries the cause."""
    return "\n".join(line for line in stderr.splitlines() if "reducer.cpp" not in line)


def digests(trace: Path) -> dict[tuple[int, int], str]:
    """(epoch, batches done) -> weight digest, checking that both ranks logged the same."""
    ranks = []
    for rank in (0, 1):
        lines = (trace / f"weights-rank{rank}.txt").read_text().splitlines()
        ranks.append({(int(e), int(s)): d for e, s, d in (line.split() for line in lines)})
    assert ranks[0] == ranks[1], "ranks hold different weights after some step"
    return ranks[0]


def single_process_metrics(run: Path) -> dict[str, dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun workers
    try:
        return evaluate_run(run, ("valid", "test"))
    finally:
        torch.set_num_threads(threads)


def check_run(run: Path, trace: Path, resumed: bool = False) -> dict[tuple[int, int], str]:
    """One run directory, written by rank 0 only; ranks agree; metrics = one process's."""
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["event"] == "train"]
    every, distinct = (steps[0] if steps else 1), len(set(steps))  # every: 2 x log_every
    assert steps == sorted(steps) and set(steps) == {every * (i + 1) for i in range(distinct)}
    # each line once, not once per rank (a resumed run may repeat the line it was killed after)
    assert len(steps) - distinct <= int(resumed)
    assert [r["world_size"] for r in log if r["event"] == "epoch"] == [2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    got = digests(trace)
    saved = Recommender.load(run)
    assert weight_digest(saved.net) == got[max(got)]  # the saved model is the last step's
    single = single_process_metrics(run)
    assert single["test"] == metrics["test"] and single["valid"] == metrics["valid"]
    return got


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Small synthetic data in the benchmark pickle format (6,107 training examples)."""
    d = make_synthetic(num_items=300, num_categories=10, num_sessions=1500, seed=1)
    return write_pickle_dataset(tmp_path_factory.mktemp("data"), d)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted 2-process NARM epoch: its run directory, per-step digests, stdout."""
    base = tmp_path_factory.mktemp("reference")
    run, trace = base / "runs" / "ref", base / "trace"
    proc = launch(*NARM, "--dataset", data_dir, "--out", run, trace=trace)
    return run, trace, proc.stdout


def test_two_processes_train_as_one_run(reference):
    run, trace, stdout = reference
    got = check_run(run, trace)
    assert sorted(got) == [(1, 2 * s) for s in range(1, STEPS + 1)]
    assert len(set(got.values())) == STEPS  # every step changed the weights
    # workers leave with os._exit (sessionrec.cli._exit): rank 0's last lines still come out
    assert f"run directory: {run}" in " ".join(stdout.split())
    assert stdout.count("run directory:") == 1  # rank 0 only


def test_a_refused_run_fails_with_one_line_per_rank(data_dir, tmp_path):
    args = ["train", "itemknn", "--dataset", data_dir, "--out", tmp_path / "run", "--no-progress"]
    proc = subprocess.run(
        torchrun(*args), env=ENV, capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert proc.returncode != 0  # (torchrun then prints its own ChildFailedError traceback)
    # each rank that got to say it (torchrun stops the other once one has failed): one line
    lines = [x for x in proc.stderr.splitlines() if x.startswith("sessionrec: error")]
    assert lines, proc.stderr[-3000:]
    for line in lines:
        assert "has its own fit (no gradient steps), so it cannot train on 2 processes" in line


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [k for kid in kids for k in (*descendants(kid), kid)]


def test_killed_run_resumes_to_the_same_steps_and_weights(reference, data_dir, tmp_path):
    ref_run, ref_trace, _ = reference
    run = tmp_path / "runs" / "cut"
    (tmp_path / "trace-cut").mkdir()
    proc = subprocess.Popen(
        torchrun(*NARM, "--dataset", data_dir, "--out", run),
        env=dict(ENV, SESSIONREC_WEIGHT_TRACE=str(tmp_path / "trace-cut")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until it is well into the epoch
        log = run / "log.jsonl"
        if log.exists() and log.read_text().count('"event": "train"') >= 8:
            break
        time.sleep(0.05)
    for pid in [*descendants(proc.pid), proc.pid]:  # the workers and the launcher, at once
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()
    done = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert 16 <= done < 2 * STEPS  # mid-epoch

    launch(*NARM[:2], "--out", run, "--resume", "--no-progress", trace=tmp_path / "trace")
    resumed, ref = check_run(run, tmp_path / "trace", resumed=True), digests(ref_trace)
    assert min(resumed) == (1, done + 2) and max(resumed) == (1, 2 * STEPS)
    assert all(ref[key] == d for key, d in resumed.items())  # step for step the same run
    ref_w, got_w = load_file(ref_run / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    assert (
        json.loads((run / "metrics.json").read_text())["test"]
        == json.loads((ref_run / "metrics.json").read_text())["test"]
    )


def test_focol_builds_its_graph_once_and_trains_through_ddp(data_dir, tmp_path):
    run, cache = tmp_path / "runs" / "focol", tmp_path / "cache"
    small = ["embedding_dim=32", "feedforward_dim=64", "transformer_layers=1", "negatives=8"]
    sets = [a for s in small for a in ("--set", s)]
    launch(
        *["train", "focol", "--dataset", data_dir, "--out", run, "--epochs", "1"],
        *["--batch-size", "128", "--no-progress", *sets],
        *["--set", "eval_batch_size=1000"],  # one batch per split: rank 1 scores none
        trace=tmp_path / "trace",
        SESSIONREC_CACHE=str(cache),
    )
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # one FOG, no stray temp file
    got = check_run(run, tmp_path / "trace")
    assert len(got) == 24  # 48 batches of 128, 2 per step
