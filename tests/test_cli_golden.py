"""The command line's outputs, held still: every command's help, its error lines and exit codes,
and a few cheap real runs, compared with tests/golden/cli_outputs.json (issue #18: recorded
before the commands moved out of cli.py, the same after).

All cases run in order in one child process (fixed width, fixed environment, relative paths).
After a deliberate change of output, record again and say so in the commit:
    SESSIONREC_RECORD_GOLDEN=1 pytest tests/test_cli_golden.py
"""

import difflib
import json
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sessionrec.data.synthetic import make_synthetic

GOLDEN = Path(__file__).parent / "golden" / "cli_outputs.json"
RECORD = bool(os.environ.get("SESSIONREC_RECORD_GOLDEN"))
TIMED = "~"  # a case whose name starts with this prints wall-clock seconds (masked)

HELP = [
    [],
    ["--help"],
    *[
        [*command.split(), "--help"]
        for command in (
            "datasets",
            "datasets list",
            "datasets stats",
            "datasets prepare",
            "datasets export",
            "models",
            "models list",
            "models show",
            "train",
            "status",
            "evaluate",
            "recommend",
            "update",
            "demo",
            "reproduce",
            "results",
            "results add",
            "results table",
            "serve",
            "export",
            "tune",
            "analyze",
            "analyze importance",
            "analyze local-invariance",
        )
    ],
]

ERRORS = [
    "nosuch",
    "train",
    "train nosuch",
    "train narm --dataset nosuch",
    "train narm --set foo=1",
    "train narm --set hidden_size=big",
    "train narm --set novalue",
    "train narm --epochs 0",
    "train narm --protocol best",
    "train narm --train-fraction 0",
    "train gru4rec --lr 0.1",
    "train gru4rec --set weight_decay=0.1 --batch-size 8",
    "train narm --resume --init-from run_pop",
    "status nosuch",
    "train narm --bogus",
    "evaluate nosuch_run",
    "recommend nosuch_run --session 1,2",
    "recommend run_stamp --session 3,x",
    "update run_stamp --events later.csv",
    "update nosuch_run --events later.csv",
    "datasets stats nosuch_data",
    "datasets prepare --format diginetica --input events.csv --output p --session-column s",
    "datasets prepare --format events --input missing.csv --output p",
    "datasets export tiny --to bogus --output exported_bad",
    "models show nosuch",
    "demo --models nosuch",
    "demo --sessions 10",
    "reproduce nosuch",
    "reproduce focol-table2 --dataset tiny --set foo=1 --dry-run",
    "reproduce focol-table2 --dataset tiny --set novalue --dry-run",
    "tune narm --dataset tiny",
    "tune nosuch --grid k=1,2",
    "tune sknn --grid foo=1,2 --dataset tiny",
    "tune sknn --grid k=1,2 --dataset tiny --set novalue",
    "serve nosuch_run",
    "serve run_pop --port 0",
    "serve run_pop --workers 0",
    "results add nosuch_run --protocol full",
    "results table --doc missing.md --registry registry",
    "analyze importance run_pop",
    "analyze local-invariance run_pop --beta -1",
]

RUNS = [
    "models list",
    "models show narm",
    "models show gru4rec",
    "datasets list",
    "datasets list --data-root nowhere",
    "datasets stats tiny",
    "datasets prepare --format events --input events.csv --output prepared"
    " --min-item-support 2 --no-progress",
    "datasets export tiny --to recbole --output exported",
    "~ train pop --dataset tiny --out run_pop --no-progress",
    "~ train stamp --dataset tiny --out run_stamp --epochs 1 --batch-size 128 --no-progress",
    "evaluate run_stamp --no-progress",
    "recommend run_stamp --session 3,17,5 --k 5",
    "update run_pop --events later.csv",
    "recommend run_pop --session 3,17,999 --k 3",
    "results add run_pop --protocol full --registry registry --note g",
    "results table --doc doc.md --registry registry --check",
    "results table --doc doc.md --registry registry",
    "results table --doc doc.md --registry registry --check",
    "reproduce",
    "reproduce --list",
    "reproduce focol-table2 --dataset tiny --epochs 1 --dry-run",
    "tune sknn --grid k=50,100 --dataset tiny --epochs 1",
    "analyze local-invariance run_pop run_stamp --out li",
    "~ demo --models pop --sessions 1000 --epochs 1 --out demo",
]

CASES = [*HELP, *(c.split() for c in RUNS + ERRORS)]  # errors after the runs they name

# Runs each case through sessionrec.cli.main in this one process, output captured per case.
DRIVER = """
import contextlib, io, json, sys
from sessionrec.cli import main
cases, answers = sys.argv[1:3]
results = []
for argv in json.load(open(cases)):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["sessionrec", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = None
        except SystemExit as e:
            code = e.code
    results.append({"exit": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
json.dump(results, open(answers, "w"))
"""


def case_name(argv: list[str]) -> str:
    return " ".join(["sessionrec", *argv])


def write_fixtures(work: Path) -> None:
    """The tiny dataset (benchmark pickles), click logs, a data root and a results doc."""
    d = make_synthetic(num_items=300, num_categories=10, num_sessions=3000, seed=1)
    tiny = work / "tiny"
    tiny.mkdir()
    (tiny / "all_train_seq.txt").write_bytes(pickle.dumps(d.train_sessions.to_lists()))
    seqs = [d.test.sequence(i).tolist() for i in range(len(d.test))]
    (tiny / "test.txt").write_bytes(pickle.dumps((seqs, d.test.target.tolist())))
    rng = random.Random(0)
    rows = ["SessionId,ItemId,Time"]
    for session in range(400):
        start = 1_600_000_000 + session * 6000
        for click in range(rng.randint(2, 6)):
            rows.append(f"{session},{rng.randint(1, 30)},{start + 60 * click}")
    (work / "events.csv").write_text("\n".join(rows) + "\n")
    later = ["SessionId,ItemId,Time", "a,3,1", "a,17,2", "b,5,3", "b,999,4", "b,3,5"]
    (work / "later.csv").write_text("\n".join(later) + "\n")
    (work / "data" / "diginetica").mkdir(parents=True)
    (work / "data" / "diginetica" / "all_train_seq.txt").write_bytes(pickle.dumps([[1, 2]]))
    (work / "doc.md").write_text(
        "# results\n\n<!-- registry:begin -->\nold\n<!-- registry:end -->\n\nafter\n"
    )


def mask_timings(text: str) -> str:
    """Blank the 'fit s' / 'eval s' columns of Rich tables and close up the widths they set."""
    columns: list[int] = []
    lines = []
    for line in text.splitlines():
        if "┃" in line:
            cells = line.split("┃")
            columns = [i for i, c in enumerate(cells) if c.strip() in ("fit s", "eval s")]
        elif "│" in line and columns:
            cells = line.split("│")
            line = "│".join("#" if i in columns else c for i, c in enumerate(cells))
        lines.append(re.sub(r"([─━ ])\1+", r"\1", line))
    return "\n".join(lines)


def normalise(argv: list[str], result: dict, work: Path) -> dict:
    """Paths of this machine, run hashes and (for timed cases) seconds made stable."""
    out = {}
    for key in ("stdout", "stderr"):
        text = result[key]
        for path in {str(work.resolve()), str(work)}:
            text = text.replace(path, "<WORK>")
        text = re.sub(r"-[0-9a-f]{12}\b", "-<hash>", text)
        out[key] = mask_timings(text) if argv[:1] == [TIMED] else text
    return {"exit": result["exit"], **out}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("golden")
    write_fixtures(work)
    (work / "cases.json").write_text(json.dumps([a[1:] if a[:1] == [TIMED] else a for a in CASES]))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONREC_", "RANK"))}
    drop = ("FORCE_COLOR", "PY_COLORS", "NO_COLOR", "GITHUB_ACTIONS", "TERMINAL_WIDTH")
    env = {k: v for k, v in keep.items() if k not in drop}
    env.update(COLUMNS="100", OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    env.update(SESSIONREC_DATA="data", TERM="dumb")
    command = [sys.executable, "-c", DRIVER, "cases.json", "results.json"]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((work / "results.json").read_text())
    return {
        case_name(argv): normalise(argv, result, work)
        for argv, result in zip(CASES, results, strict=True)
    }


def test_cli_outputs_are_unchanged(outputs):
    if RECORD:
        GOLDEN.write_text(json.dumps(outputs, indent=1, ensure_ascii=False) + "\n")
        pytest.skip(f"recorded {GOLDEN}")
    golden = json.loads(GOLDEN.read_text())
    assert list(outputs) == list(golden), "the cases changed: record again"
    changed = [name for name in golden if outputs[name] != golden[name]]
    diffs = []
    for name in changed[:3]:
        for key in ("exit", "stdout", "stderr"):
            was, now = str(golden[name][key]), str(outputs[name][key])
            diff = difflib.unified_diff(was.splitlines(), now.splitlines(), lineterm="")
            diffs.append(f"--- {name} [{key}]\n" + "\n".join(diff))
    assert not changed, f"{len(changed)} outputs changed: {changed}\n" + "\n".join(diffs)


def test_every_case_says_something(outputs):
    """No case is silent: each prints its help, its result or its error."""
    assert all(o["stdout"].strip() or o["stderr"].strip() for o in outputs.values())
