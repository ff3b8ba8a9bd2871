"""`sessionrec status` and the training lock: where a run stands, how to continue it, and no
second process training one run directory."""

import json
import shlex
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import ENV, run_cli
from sessionrec.errors import RunError
from sessionrec.models import create
from sessionrec.rundir import LOCK_FILE, training_lock, training_process
from sessionrec.training import trainer as trainer_module
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import prepare_resume, train_and_evaluate
from sessionrec.training.status import FINISHED, NOT_STARTED, STOPPED, TRAINING, run_status

FAST = dict(epochs=2, batch_size=128, lr=3e-3, checkpoint_seconds=0.0, log_every=10, patience=5)


def _hand_made_run(path, max_minutes=10.0, **checkpoint):
    """A stopped run as files: config, two epoch records and a checkpoint in epoch 3."""
    path.mkdir(parents=True)
    train = dict(epochs=30, max_minutes=max_minutes, metric="mrr@20", patience=3)
    config = dict(model="narm", num_items=10, params={}, dataset={"dataset": "d"}, train=train)
    (path / "config.json").write_text(json.dumps(config))
    records = [
        dict(event="epoch", epoch=e, seconds=60.0 * e, loss=5.0 / e, steps=100, steps_done=100,
             valid={"hr@20": 0.1 * e, "mrr@20": 0.05 * e}, best_epoch=e)
        for e in (1, 2)
    ]  # fmt: skip
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    state = dict(epoch=2, step=30, epoch_steps=100, elapsed=600.0, **checkpoint)
    torch.save(state, path / "checkpoint.pt")
    return path


def test_a_stopped_run_says_where_and_how_to_continue(tmp_path):
    run = run_status(_hand_made_run(tmp_path / "r", max_minutes=30.0))
    assert run.state == STOPPED and run.pid is None and run.metric == "mrr@20"
    (phase,) = run.phases
    assert phase.detail.startswith("stopped in epoch 3, step 30 of 100")
    assert phase.minutes == 10.0 and phase.best_epoch == 2 and not phase.out_of_budget
    assert [r["epoch"] for r in phase.epochs] == [1, 2]
    # best epoch 2 + patience 3 + 1: early stopping can end it after epoch 6 at the earliest;
    # 6 - 2.3 epochs at the median 1.5 minutes of the two epochs logged
    assert phase.ahead == "3.7 epochs to epoch 6 at the earliest, ≈ 6 min at 1.5 min an epoch"
    assert run.resume == f"sessionrec train narm --out {tmp_path / 'r'} --resume"


def test_a_spent_budget_asks_for_more_minutes(tmp_path):
    run = run_status(_hand_made_run(tmp_path / "r", max_minutes=10.0))
    assert run.phases[0].out_of_budget and "10-minute budget is spent" in run.phases[0].detail
    assert run.phases[0].ahead.endswith("; max_minutes ends it first, in ≈ 0 min")
    # the minutes used plus one more budget of the same size
    assert run.resume.endswith("--resume --set max_minutes=20")


def test_a_run_cut_by_its_budget_resumes_with_the_command_it_suggests(tiny, tmp_path):
    cut = create("stamp", tiny.num_items, seed=0)
    train_and_evaluate(cut, tiny, TrainConfig(**dict(FAST, max_minutes=1e-6)), tmp_path / "cut")
    run = run_status(tmp_path / "cut")
    assert run.state == FINISHED and run.phases[0].out_of_budget
    assert run.phases[0].detail.startswith("time budget after epoch 1")
    assert run.phases[0].epochs[0]["partial"]
    words = run.resume.split()
    assert words[:6] == ["sessionrec", "train", "stamp", "--out", str(tmp_path / "cut"), "--resume"]
    assert words[6] == "--set" and words[7] == "max_minutes=1"  # 0 used + the budget, rounded up
    model, data, config = prepare_resume(tmp_path / "cut", "stamp", {"max_minutes": "60"})
    train_and_evaluate(model, data, config, tmp_path / "cut", resume=True)
    done = run_status(tmp_path / "cut")
    assert done.state == FINISHED and done.resume is None
    assert done.phases[0].detail == "epoch limit after epoch 2"
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert done.test == metrics["test"]


def test_an_interrupted_run_is_stopped_mid_epoch(tiny, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_collate = trainer_module.collate

    def dying_collate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 120:  # in the second epoch (95 batches an epoch)
            raise KeyboardInterrupt
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(
            create("narm", tiny.num_items, seed=0), tiny, TrainConfig(**FAST), tmp_path / "cut"
        )
    run = run_status(tmp_path / "cut")
    assert run.state == STOPPED and run.pid is None  # the lock went with the interruption
    assert run.phases[0].detail.startswith("stopped in epoch 2, step 24 of 95;")
    assert run.resume == f"sessionrec train narm --out {tmp_path / 'cut'} --resume"


def _paper_run(tiny, out, config, select_from=None):
    """A STAMP paper-protocol run on the tiny data (a refit only, with `select_from`)."""
    from sessionrec.data.sources import reload_dataset
    from sessionrec.training.run import train_paper_protocol

    train_paper_protocol(
        lambda: create("stamp", tiny.num_items, seed=0),
        lambda fraction: reload_dataset(dict(tiny.source, valid_fraction=fraction)),
        0.1,
        config,
        out,
        select_from=select_from,
    )


def test_the_paper_protocol_shows_both_phases(tiny, tmp_path):
    _paper_run(tiny, tmp_path / "p", TrainConfig(**dict(FAST, epochs=2)))
    run = run_status(tmp_path / "p")
    assert run.protocol == "paper" and run.state == FINISHED and run.resume is None
    select, refit = run.phases
    assert (select.name, refit.name) == ("select", "refit")
    assert select.state == refit.state == FINISHED and all("valid" in r for r in select.epochs)
    assert refit.detail == f"epoch limit after epoch {select.best_epoch}"


def test_no_run_directory_is_one_clear_error(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        run_status(tmp_path)
    proc = run_cli("status", tmp_path / "nosuch")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"sessionrec: error: {tmp_path / 'nosuch'}: not a run directory (no config.json)"
    ]


def test_the_lock_is_reentrant_and_released(tmp_path):
    assert training_process(tmp_path) is None
    with training_lock(tmp_path):
        with training_lock(tmp_path):
            assert training_process(tmp_path) is not None
        assert training_process(tmp_path) is not None
    assert training_process(tmp_path) is None and (tmp_path / LOCK_FILE).exists()


@pytest.fixture
def held(tmp_path):
    """A stopped run whose lock another process holds, as a run in training would."""
    run = _hand_made_run(tmp_path / "r", max_minutes=30.0)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from sessionrec.rundir import training_lock
            with training_lock({str(run)!r}):
                print("locked", flush=True)
                time.sleep(120)
        """)],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    yield run, holder.pid
    holder.kill()
    holder.wait()


def test_a_run_another_process_trains_is_reported_and_not_resumed(held):
    run_dir, pid = held
    run = run_status(run_dir)
    assert run.state == TRAINING and run.pid == pid and run.resume is None
    assert run.phases[0].state == TRAINING
    assert run.phases[0].detail.startswith("training; last checkpoint in epoch 3, step 30")
    before = (run_dir / "config.json").read_text()
    proc = run_cli("train", "narm", "--out", run_dir, "--resume", "--set", "max_minutes=99")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"sessionrec: error: {run_dir}: being trained by another process (pid {pid}); "
        "let it finish or stop it first"
    ]
    assert (run_dir / "config.json").read_text() == before  # its budget change not written
    with pytest.raises(RunError, match=f"pid {pid}"):
        train_and_evaluate(create("narm", 10), None, TrainConfig(**FAST), run_dir, resume=True)


def test_the_command_prints_the_epochs_and_the_continuation(tmp_path):
    run_dir = _hand_made_run(tmp_path / "r", max_minutes=10.0)
    proc = run_cli("status", run_dir, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"{run_dir}: narm on d, full protocol, selecting on valid mrr@20: stopped")
    assert "step 30 of 100" in lines[1] and "best epoch 2; 10.0 of 10 training minutes" in lines[1]
    epoch2 = next(line.split() for line in lines if line.split()[:1] == ["2"])
    assert epoch2 == ["2", "2.0", "2.500", "10.00", "20.00", "best"]
    continuation = f"sessionrec train narm --out {run_dir} --resume --set max_minutes=20"
    assert lines[-1] == f"  continue: {continuation}"
    record = json.loads(run_cli("status", run_dir, "--json", check=True).stdout)
    assert record["state"] == "stopped" and record["phases"][0]["minutes"] == 10.0


def test_a_fresh_directory_is_not_started(tmp_path):
    path = tmp_path / "r"
    path.mkdir()
    config = dict(model="narm", num_items=10, params={}, dataset={"dataset": "d"}, train={})
    (path / "config.json").write_text(json.dumps(config))
    run = run_status(path)
    assert run.state == NOT_STARTED and run.resume is None


def test_a_refit_from_another_run_shows_that_run_as_its_selection(tiny, tmp_path):
    config = TrainConfig(**dict(FAST, epochs=1))
    train_and_evaluate(create("stamp", tiny.num_items, seed=0), tiny, config, tmp_path / "full")
    _paper_run(tiny, tmp_path / "refit", config, select_from=tmp_path / "full")
    select, refit = run_status(tmp_path / "refit").phases
    assert select.path == tmp_path / "full" and select.state == refit.state == FINISHED
    (tmp_path / "full").rename(tmp_path / "moved")
    run = run_status(tmp_path / "refit")
    assert run.state == FINISHED and run.phases[0].detail == "not found (moved?)"


def test_a_refit_to_come_is_timed_at_the_selections_pace(tmp_path):
    run_dir = tmp_path / "p"
    select = _hand_made_run(run_dir / "select", max_minutes=30.0)
    (select / "metrics.json").write_text(json.dumps({"test": {}, "valid": {}, "best_epoch": 2}))
    config = json.loads((select / "config.json").read_text())
    config.update(protocol="paper", select_valid_fraction=0.25)
    (run_dir / "config.json").write_text(json.dumps(config))
    run = run_status(run_dir)
    assert run.state == STOPPED and [p.state for p in run.phases] == [FINISHED, NOT_STARTED]
    # 2 epochs (the selected count) at 1.5 / (1 - 0.25) = 2.0 minutes an epoch
    assert run.phases[1].ahead == "2.0 epochs to epoch 2, ≈ 4 min at 2.0 min an epoch"
    assert run.resume == f"sessionrec train narm --out {run_dir} --resume"


def test_a_directory_of_runs_is_one_line_each(tmp_path):
    _hand_made_run(tmp_path / "runs" / "b", max_minutes=30.0)
    _hand_made_run(tmp_path / "runs" / "a", max_minutes=10.0)
    (tmp_path / "runs" / "notes").mkdir()  # no run: left out
    wide = dict(ENV, COLUMNS="300")  # no cell wrapped
    proc = subprocess.run(
        [sys.executable, "-m", "sessionrec", "status", str(tmp_path / "runs")],
        capture_output=True, text=True, env=wide, check=True,
    )  # fmt: skip
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:6] == ["run", "model", "dataset", "protocol", "state", "phase"]
    assert [row.split()[:8] for row in rows] == [
        [name, "narm", "d", "full", "stopped", "run", "2.3", minutes]
        for name, minutes in (("a", "10"), ("b", "10"))
    ]
    assert rows[1].split()[8:10] == ["/", "30"] and "10.00 (mrr@20, 2)" in rows[1]
    assert (
        rows[1]
        .rstrip()
        .endswith("3.7 epochs to epoch 6 at the earliest, ≈ 6 min at 1.5 min an epoch")
    )
    assert len(run_cli("status", tmp_path / "runs", "--json", check=True).stdout.splitlines()) == 2
    proc = run_cli("status", tmp_path / "runs" / "notes")
    assert proc.returncode != 0 and "not a run directory (no config.json)" in proc.stderr


def test_train_ends_with_the_command_that_trains_on_and_it_does(tiny, tmp_path):
    from helpers import write_pickle_dataset

    data = write_pickle_dataset(tmp_path / "data", tiny)
    out = tmp_path / "run"
    first = run_cli(
        "train", "stamp", "--dataset", data, "--epochs", "2", "--out", out, "--no-progress",
        "--set", "max_minutes=0.000001", "--set", "num_threads=1", check=True,
    )  # fmt: skip
    hint = "its time budget (max_minutes) ended it; to train on: "
    (line,) = [line for line in first.stdout.splitlines() if line.startswith(hint)]
    command = shlex.split(line.removeprefix(hint))
    assert command == [
        "sessionrec", "train", "stamp", "--out", str(out), "--resume", "--set", "max_minutes=1",
    ]  # fmt: skip
    again = run_cli(*command[1:], "--no-progress", check=True)
    assert hint not in again.stdout
    assert run_status(out).phases[0].detail == "epoch limit after epoch 2"
