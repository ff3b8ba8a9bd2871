"""The command line as a user runs it: real subprocesses, exit codes and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest
import torch
from safetensors.torch import load_file

from helpers import ENV, run_cli, run_main, write_pickle_dataset, write_pickles
from sessionrec.data.synthetic import make_synthetic
from sessionrec.results import entry_from_run
from sessionrec.rundir import CHECKPOINT_FILE

run = partial(run_cli, check=True, timeout=300)  # `sessionrec ARGS...`, exit code 0 by default


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny synthetic dataset written in the benchmark pickle format."""
    d = make_synthetic(num_items=300, num_categories=10, num_sessions=3000, seed=1)
    return write_pickle_dataset(tmp_path_factory.mktemp("tiny"), d)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "nosuch"], "unknown model 'nosuch'"),
        (["train", "narm", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["train", "narm", "--set", "foo=1"], "unknown setting 'foo'"),
        (["train", "narm", "--set", "hidden_size=big"], "'hidden_size' of narm must be int"),
        (["train", "narm", "--set", "novalue"], "--set expects key=value"),
        (["train", "narm", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "narm", "--protocol", "best"], "--protocol must be one of full, paper"),
        (["train", "narm", "--train-fraction", "0"], "train_fraction must be in (0, 1]"),
        (
            ["train", "narm", "--device", "cuda:7"]
            if not torch.cuda.is_available()
            else ["train", "narm", "--device", "tpu"],
            "device",
        ),
        (["train", "narm", "--bogus"], "No such option: --bogus"),
        (["evaluate", "/nonexistent"], "not a run directory"),
        (["recommend", "/nonexistent", "--session", "1,2"], "not a run directory"),
        (["datasets", "stats", "/nonexistent"], "unknown dataset '/nonexistent'"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, monkeypatch, capsys):
    assert run_main(args, monkeypatch) != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sessionrec: error:"), err
    assert message in lines[0]


def test_unsafe_dataset_is_refused_without_running(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    write_pickles(tmp_path, [[1, 2, 3]], ([[1]], [Payload()]))
    proc = run("datasets", "stats", tmp_path, check=False)
    assert proc.returncode == 1 and "test.txt: refused" in proc.stderr
    assert not (tmp_path / "ran").exists()


def test_train_evaluate_recommend(tiny_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = run(
        "train",
        "stamp",
        "--dataset",
        tiny_dir,
        "--epochs",
        "2",
        "--batch-size",
        "128",
        "--out",
        run_dir,
        "--no-progress",
    )
    assert "HR@20" in proc.stdout and (run_dir / "metrics.json").exists()
    recorded = json.loads((run_dir / "metrics.json").read_text())["test"]
    proc = run("evaluate", run_dir)
    row = next(line for line in proc.stdout.splitlines() if line.strip("│ ").startswith("now"))
    assert f"{100 * recorded['hr@20']:.2f}" in row
    proc = run("recommend", run_dir, "--session", "3,17,5", "--k", "5")
    ranks = [line for line in proc.stdout.splitlines() if line.strip("│ ")[:1].isdigit()]
    assert len(ranks) == 5
    proc = run("recommend", run_dir, "--session", "3,x", check=False)
    assert proc.returncode == 1 and "comma-separated integer" in proc.stderr


def test_train_fraction_keeps_the_most_recent_sessions(tiny_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = run("train", "pop", "--dataset", tiny_dir, "--train-fraction", "0.25", "--out", run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"]["train_fraction"] == 0.25
    full = run("train", "pop", "--dataset", tiny_dir, "--out", tmp_path / "full")
    examples = [
        int(p.stdout.split(": ")[1].split(" examples")[0].replace(",", "")) for p in (proc, full)
    ]
    assert 0.15 * examples[1] < examples[0] < 0.35 * examples[1]
    again = run("evaluate", run_dir)  # the run reloads the same fraction
    assert "HR@20" in again.stdout


def test_lists():
    assert "narm" in run("models", "list").stdout
    out = run("datasets", "list").stdout
    assert "synthetic" in out and "diginetica" in out


def test_killed_run_resumes_to_the_same_weights(tiny_dir, tmp_path):
    common = [
        "train",
        "narm",
        "--dataset",
        tiny_dir,
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--set",
        "checkpoint_seconds=0",
        "--set",
        "num_threads=1",
        "--set",
        "log_every=5",
        "--no-progress",
    ]
    run(*common, "--out", tmp_path / "ref")
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionrec", *map(str, common), "--out", cut],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 900  # generous: a loaded CI machine can be 8x slower
    while time.monotonic() < deadline:  # wait until it is well into the first epoch
        log = cut / "log.jsonl"
        if (
            log.exists()
            and log.read_text().count('"event": "train"') >= 8
            and (cut / CHECKPOINT_FILE).exists()
        ):
            break
        assert proc.poll() is None, "the training to be killed ended by itself"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "metrics.json").exists()
    run(*common, "--out", cut, "--resume")  # the same command again, with --resume
    ref, got = (
        load_file(tmp_path / "ref" / "model.safetensors"),
        load_file(cut / "model.safetensors"),
    )
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert (
        json.loads((cut / "metrics.json").read_text())["test"]
        == json.loads((tmp_path / "ref" / "metrics.json").read_text())["test"]
    )


def test_paper_protocol_refit_from_a_finished_selection_run(tiny_dir, tmp_path, monkeypatch):
    """`--select-from RUN` refits for RUN's selected epochs with RUN's settings: the same
    model and test metrics as the one-command paper protocol."""
    settings = ["--dataset", tiny_dir, "--epochs", "3", "--batch-size", "256", "--no-progress"]
    settings += ["--set", "embedding_dim=8", "--set", "patience=5"]
    assert run_main(["train", "stamp", *settings, "--out", tmp_path / "sel"], monkeypatch) == 0
    whole = ["train", "stamp", *settings, "--protocol", "paper", "--out", tmp_path / "whole"]
    assert run_main(whole, monkeypatch) == 0
    refit = ["train", "stamp", "--protocol", "paper", "--select-from", tmp_path / "sel"]
    assert run_main([*refit, "--no-progress", "--out", tmp_path / "refit"], monkeypatch) == 0

    def read(run, name):
        return json.loads((tmp_path / run / name).read_text())

    assert read("refit", "metrics.json")["test"] == read("whole", "metrics.json")["test"]
    assert read("refit", "metrics.json")["best_epoch"] == read("sel", "metrics.json")["best_epoch"]
    config = read("refit", "config.json")
    assert (config["protocol"], config["select_from"]) == ("paper", str(tmp_path / "sel"))
    assert not (tmp_path / "refit" / "select").exists()
    entry = entry_from_run(tmp_path / "refit", "paper")  # the curve is the selection run's
    assert [r["epoch"] for r in entry["valid_curve"]] == [1, 2, 3] and entry["epochs"] == 3
    assert load_file(tmp_path / "refit" / "model.safetensors").keys()
    for name, value in load_file(tmp_path / "whole" / "model.safetensors").items():
        assert torch.equal(value, load_file(tmp_path / "refit" / "model.safetensors")[name])
    # a refit needs the paper protocol, and a selection that had a validation split
    assert run_main([*refit[:2], "--select-from", tmp_path / "sel"], monkeypatch) == 1
    no_valid = ["train", "stamp", *settings, "--valid-fraction", "0", "--out", tmp_path / "nv"]
    assert run_main(no_valid, monkeypatch) == 0
    refit_nv = [*refit[:-1], tmp_path / "nv", "--out", tmp_path / "x", "--no-progress"]
    assert run_main(refit_nv, monkeypatch) == 1
