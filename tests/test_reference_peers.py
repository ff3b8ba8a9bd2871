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
