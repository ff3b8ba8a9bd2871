"""The reference-curve drivers' child runner: epochs land in the JSON as they finish, and a
budget or a failure stops the authors' code without losing the finished epochs."""

import json
import sys
import textwrap
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "peers"))
import reference_run  # noqa: E402

DATA = SimpleNamespace(name="toy", train=[0] * 5, valid=[0] * 2)


def _child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text("import json, sys, time\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


def _args(tmp_path: Path, max_minutes: float | None = None) -> Namespace:
    out = tmp_path / "curve.json"
    return Namespace(train_fraction=0.1, seed=0, epochs=3, out=out, max_minutes=max_minutes)


EPOCHS = """
for e in (1, 2, 3):
    if e == 3:
        time.sleep(float(sys.argv[1]))
    print("noise")
    print("RESULT " + json.dumps({"epoch": e, "hr@20": 10.0 * e, "mrr@20": e, "seconds": 1}),
          flush=True)
"""


def test_every_epoch_is_written(tmp_path, capsys):
    args = _args(tmp_path)
    reference_run.run_child(_child(tmp_path, EPOCHS) + ["0"], tmp_path, "toy/ref", DATA, args)
    result = json.loads(args.out.read_text())
    assert result["complete"] and result["fitting_examples"] == 5
    assert [p["hr@20"] for p in result["curve"]] == [10.0, 20.0, 30.0]
    assert "epoch 2: their HR@20 20.00 MRR@20 2.00 (1 s)" in capsys.readouterr().out


def test_a_budget_keeps_the_finished_epochs(tmp_path, capsys):
    args = _args(tmp_path, max_minutes=0.03)  # 1.8 s; epoch 3 would come after 60 s
    command = _child(tmp_path, EPOCHS) + ["60"]
    reference_run.run_child(command, tmp_path, "toy/ref", DATA, args)
    result = json.loads(args.out.read_text())
    assert not result["complete"] and [p["epoch"] for p in result["curve"]] == [1, 2]
    assert "stopped by --max-minutes 0.03 after 2 epoch(s)" in capsys.readouterr().out


def test_a_failure_says_why_and_keeps_what_it_had(tmp_path):
    body = EPOCHS.replace("time.sleep(float(sys.argv[1]))", "raise ValueError('their bug')")
    args = _args(tmp_path)
    with pytest.raises(SystemExit, match="their bug"):
        reference_run.run_child(_child(tmp_path, body) + ["0"], tmp_path, "toy/ref", DATA, args)
    assert len(json.loads(args.out.read_text())["curve"]) == 2


CUT_IN_EPOCH_2 = """
print("RESULT " + json.dumps({"epoch": 1, "hr@20": 10.0, "mrr@20": 1.0, "seconds": 90}))
print("PROGRESS " + json.dumps({"epoch": 2, "steps_done": 25, "steps": 100, "seconds": 50.0}),
      flush=True)
time.sleep(60)
"""


def test_a_budget_inside_an_epoch_says_how_far_it_got(tmp_path, capsys):
    args = _args(tmp_path, max_minutes=0.03)
    command = _child(tmp_path, CUT_IN_EPOCH_2)
    reference_run.run_child(command, tmp_path, "toy/ref", DATA, args)
    result = json.loads(args.out.read_text())
    assert [p["epoch"] for p in result["curve"]] == [1]
    assert result["unfinished"] == {"epoch": 2, "steps_done": 25, "steps": 100, "seconds": 50.0}
    out = capsys.readouterr().out
    assert "epoch 2 unfinished: 25 of 100 steps in 50 s (2.00 s a step, about 3 min" in out


def test_the_gcegnn_child_reports_progress_every_25_training_steps(capsys):
    import gcegnn_reference_child as child

    state = {"epoch": 3}
    batches = list(child.Counted(list(range(60)), state))
    assert batches == list(range(60))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PROGRESS")]
    points = [json.loads(line[9:]) for line in lines]
    assert [(p["epoch"], p["steps_done"], p["steps"]) for p in points] == [(3, 25, 60), (3, 50, 60)]
