"""The results registry: entries from run directories, tables with the papers' numbers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sessionrec import results
from sessionrec.errors import ConfigError, RunError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import prepare_resume, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "stamp"
    config = TrainConfig(epochs=1, batch_size=256, num_threads=1)
    train_and_evaluate(create("stamp", tiny.num_items, embedding_dim=8), tiny, config, run)
    return run


def test_an_entry_carries_metrics_epochs_and_provenance(run_dir, tmp_path):
    path = results.add(run_dir, "reduced", tmp_path, note="smoke")
    entry = json.loads(path.read_text())
    assert path.name == "synthetic-stamp-reduced-stamp.json"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert entry["test"] == metrics["test"] and entry["valid"] == metrics["valid"]
    assert (entry["epochs"], entry["selected_epoch"], entry["threads"]) == (1, 1, 1)
    assert entry["cpu"] and entry["cpu_capability"] and entry["command"]
    assert entry["device"] == "cpu"  # the device it trained on (config.json's provenance)
    assert entry["valid_curve"][0]["epoch"] == 1 and "hr@20" in entry["valid_curve"][0]
    with pytest.raises(RunError, match="already registered"):
        results.add(run_dir, "reduced", tmp_path)
    with pytest.raises(RunError, match="already registered"):  # one entry per run
        results.add(run_dir, "full", tmp_path)
    with pytest.raises(ConfigError, match="protocol"):
        results.add(run_dir, "Full Run", tmp_path)


def test_replacing_a_runs_entry_under_another_protocol_supersedes_it(run_dir, tmp_path):
    """A REDUCED entry of a run since resumed to its end gives way to its full entry."""
    reduced = results.add(run_dir, "reduced", tmp_path, note="cut")
    other = results.add(run_dir, "reduced", tmp_path / "elsewhere")
    full = results.add(run_dir, "full", tmp_path, note="to early stopping", replace=True)
    assert sorted(tmp_path.glob("*.json")) == [full] and not reduced.exists()
    assert json.loads(full.read_text())["note"] == "to early stopping"
    assert other.exists()  # another registry is not touched
    assert results.add(run_dir, "full", tmp_path, replace=True) == full


def test_a_test_curve_is_kept_and_set_beside_the_authors_selection(tiny, tmp_path):
    run = tmp_path / "traced"
    config = TrainConfig(epochs=2, batch_size=256, num_threads=1, patience=5, test_curve=True)
    train_and_evaluate(create("stamp", tiny.num_items, embedding_dim=8), tiny, config, run)
    entry = json.loads(results.add(run, "reduced", tmp_path / "reg").read_text())
    assert [r["epoch"] for r in entry["test_curve"]] == [1, 2]
    assert "hr@20" in entry["test_curve"][0]
    # by hand: best HR@20 in epoch 2 (32%), best MRR@20 in epoch 1 (10%), each on its own
    entry["test_curve"] = [
        {"epoch": 1, "hr@20": 0.30, "mrr@20": 0.10},
        {"epoch": 2, "hr@20": 0.32, "mrr@20": 0.09},
    ]
    entry["test"] = {"hr@20": 0.31, "mrr@20": 0.095}
    line = results.best_on_test(entry)
    assert "HR@20/MRR@20 30.00/10.00, 32.00/9.00" in line
    assert "print 32.00 / 10.00 (best of each over the epochs: 2 and 1)" in line
    assert line.endswith("reports 31.00 / 9.50.")
    assert line in results.render([entry])
    assert results.best_on_test({**entry, "test_curve": []}) == ""


def test_a_run_trained_on_a_gpu_says_so_in_the_table(run_dir, tmp_path):
    entry = json.loads(results.add(run_dir, "reduced", tmp_path).read_text())
    row = next(line for line in results.render([entry]).splitlines() if line.startswith("| stamp"))
    assert "(GPU)" not in row
    entry["device"] = "cuda (NVIDIA H200)"
    row = next(line for line in results.render([entry]).splitlines() if line.startswith("| stamp"))
    assert "(GPU)" in row.split("|")[-3]  # the train-minutes cell


def test_an_unfinished_run_is_refused(run_dir, tmp_path):
    unfinished = tmp_path / "cut"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((run_dir / "config.json").read_text())
    with pytest.raises(RunError, match="metrics.json: missing"):
        results.add(unfinished, "full", tmp_path / "registry")


def test_a_run_cut_by_its_time_budget_is_only_reduced(run_dir, tmp_path):
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("config.json", "metrics.json"):
        (cut / name).write_text((run_dir / name).read_text())
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    for record in records:
        if record.get("event") == "epoch":
            record["out_of_budget"] = True
    (cut / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for protocol in ("full", "paper"):
        with pytest.raises(RunError, match="time budget ended training in epoch 1"):
            results.add(cut, protocol, tmp_path / "registry")
    assert json.loads(results.add(cut, "reduced", tmp_path / "r").read_text())["stopped"] == (
        "time budget"
    )


def test_a_run_ended_short_of_its_epochs_by_a_resume_is_only_reduced(run_dir, tmp_path):
    # stopped after epoch 1 of 3, then resumed with a budget already spent: no new record says
    # why training ended, yet it was the budget, not the epoch limit
    short = tmp_path / "short"
    short.mkdir()
    config = json.loads((run_dir / "config.json").read_text())
    config["train"]["epochs"] = 3
    (short / "config.json").write_text(json.dumps(config))
    for name in ("metrics.json", "log.jsonl"):
        (short / name).write_text((run_dir / name).read_text())
    with pytest.raises(RunError, match="after epoch 1 of 3 without early stopping"):
        results.add(short, "full", tmp_path / "registry")
    entry = json.loads(results.add(short, "reduced", tmp_path / "r").read_text())
    assert entry["stopped"] == "time budget"
    assert json.loads(results.add(run_dir, "reduced", tmp_path / "r2").read_text())["stopped"] == (
        "epoch limit"
    )


def test_a_budget_extended_by_a_resume_is_no_cut():
    def epoch(n, done, steps=None, budget=False, stop=False):
        return dict(epoch=n, steps_done=done, steps=steps, out_of_budget=budget, stopped_early=stop)

    # epoch 2 ran all its steps when the budget ended; a resume with more time went on
    extended = [epoch(1, 50), epoch(2, 50, budget=True), epoch(3, 50, stop=True)]
    assert results._cut_epochs(extended) == []
    # cut part-way (steps known, or fewer steps than the other epochs), or ended by the budget
    assert results._cut_epochs([epoch(1, 50), epoch(2, 20, 50, budget=True), epoch(3, 50)]) == [2]
    assert results._cut_epochs([epoch(1, 50), epoch(2, 20, budget=True), epoch(3, 50)]) == [2]
    assert results._cut_epochs([epoch(1, 50), epoch(2, 50, budget=True)]) == [2]
    assert results._cut_epochs([epoch(1, 50), epoch(2, 50, budget=True, stop=True)]) == []


def test_paper_numbers_come_from_the_right_table():
    assert results.paper_number("srgnn", "diginetica", "hr@20")[0] == pytest.approx(51.26)
    assert results.paper_number("linet", "diginetica", "hr@20")[1] == "LINet paper, Table I"
    assert results.paper_number("sknn", "diginetica", "hr@20") == (None, "")


def test_cells_show_ours_paper_and_difference():
    entry = {
        "model": "srgnn",
        "dataset": "diginetica",
        "protocol": "full",
        "command": "c",
        "test": {"hr@20": 0.5, "mrr@20": 0.1},
        "valid": {},
        "fit_seconds": 600,
        "epochs": 7,
        "selected_epoch": 4,
    }
    table = results.render([entry])
    assert (
        "| srgnn | full | 50.00 (51.26, -1.26) | 10.00 (17.78, -7.78) | – | – | 7 (4) | 10 |"
        in table
    )
    resumed = results.render([dict(entry, resumes=["sessionrec reproduce --max-minutes 160"])])
    assert "| `c`; resumed: `sessionrec reproduce --max-minutes 160` |" in resumed


def test_an_entry_names_the_commands_that_resumed_its_run(run_dir, tmp_path):
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("metrics.json", "log.jsonl"):
        (resumed / name).write_text((run_dir / name).read_text())
    config = json.loads((run_dir / "config.json").read_text())
    config["resumes"] = [{"command": "sessionrec train stamp --resume", "changed": {}}]
    (resumed / "config.json").write_text(json.dumps(config))
    entry = json.loads(results.add(resumed, "full", tmp_path / "registry").read_text())
    assert entry["resumes"] == ["sessionrec train stamp --resume"]


def test_the_doc_is_regenerated_and_checked(run_dir, tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"# R\n\n{results.BEGIN}\nold\n{results.END}\n\nafter\n")
    registry = tmp_path / "registry"
    results.add(run_dir, "reduced", registry)
    assert results.update_doc(doc, registry, check=True)  # stale, left alone
    assert "old" in doc.read_text()
    assert results.update_doc(doc, registry)
    text = doc.read_text()
    assert "| stamp | REDUCED |" in text and text.endswith("after\n")
    assert not results.update_doc(doc, registry, check=True)


def test_committed_tables_match_the_registry():
    """docs/results.md's registry section is what `sessionrec results table` makes."""
    stale = results.update_doc(
        ROOT / "docs" / "results.md", ROOT / "results" / "registry", check=True
    )
    assert not stale, "run `sessionrec results table` and commit docs/results.md"


def test_cli_check_fails_on_a_stale_doc(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"{results.BEGIN}\nold\n{results.END}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionrec",
            "results",
            "table",
            "--doc",
            str(doc),
            "--registry",
            str(tmp_path / "none"),
            "--check",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "stale" in done.stderr


def test_a_resumed_run_counts_its_whole_training_time(tiny, tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(epochs=1, batch_size=256)
    first = train_and_evaluate(create("stamp", tiny.num_items, embedding_dim=8), tiny, config, run)
    model, data, config = prepare_resume(run, "stamp", {"epochs": "2"})
    resumed = train_and_evaluate(model, data, config, run, resume=True)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    epoch_seconds = sum(r["seconds"] for r in log if r["event"] == "epoch")
    assert resumed["fit_seconds"] >= epoch_seconds > first["fit_seconds"] / 2


def test_a_run_without_provenance_needs_its_command(run_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["provenance"]
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="records no command"):
        results.add(old, "full", tmp_path / "registry")
    path = results.add(old, "full", tmp_path / "registry", command="sessionrec train stamp")
    assert json.loads(path.read_text())["command"] == "sessionrec train stamp"


def test_status_says_per_paper_row_whether_it_reproduces():
    def entry(model, hr, mrr, protocol="full", run="r"):
        test = {"hr@20": hr / 100, "mrr@20": mrr / 100}
        return {"model": model, "dataset": "diginetica", "protocol": protocol, "test": test,
                "run": run}  # fmt: skip

    def verdict(text, model):
        (line,) = [x for x in text.splitlines() if x.startswith(f"| diginetica | {model} |")]
        return line.rsplit("|", 2)[1].strip(), line

    # FOCOL Table 2, STAMP on Diginetica: 46.64 / 15.13; tolerance 1.0 HR@20, 0.5 MRR@20
    assert verdict(results.status([entry("stamp", 45.64, 14.63)]), "stamp")[0] == "yes"
    assert verdict(results.status([entry("stamp", 45.63, 15.5)]), "stamp")[0] == "not yet"
    assert verdict(results.status([entry("stamp", 47.0, 14.62)]), "stamp")[0] == "not yet"
    cut = entry("stamp", 46.0, 15.0, "reduced")
    assert verdict(results.status([cut]), "stamp")[0] == "yes, on a REDUCED run"
    # the best run shown: within tolerance first, then a complete protocol, then HR@20
    best = results.status([cut, entry("stamp", 45.7, 14.7, "paper", "p"), entry("stamp", 40, 9)])
    text, line = verdict(best, "stamp")
    assert text == "yes" and "`p` | paper | 45.70 / 14.70 | -0.94 / -0.43" in line
    assert verdict(best, "narm")[0] == "no run yet"
    total = best.splitlines()[-1]
    assert total.startswith("1 of 77 rows reproduced, 0 more on REDUCED runs, 0 short, 67 without")
    # LINet Table I's YooChoose 1/4 column: its data is not among the shared benchmarks
    (line,) = [x for x in best.splitlines() if x.startswith("| yoochoose1_4 | linet |")]
    assert line.endswith("| no run yet (optional data) |")
    assert "67 without a run and 9 on optional data (yoochoose1_4: " in total


def test_ablations_are_redrawn_against_the_full_model_within_one_protocol():
    def entry(model, hr, mrr, protocol="full", run="r"):
        test = {"hr@20": hr / 100, "mrr@20": mrr / 100}
        return {"model": model, "dataset": "yoochoose1_64", "protocol": protocol, "test": test,
                "run": run, "command": "c"}  # fmt: skip

    # LINet Table II, YooChoose 1/64: LINet 71.23 / 31.12, No-LE 68.36 / 28.86
    runs = [entry("linet", 70.0, 30.0, run="base"), entry("linet-no-le", 69.5, 30.25, run="le"),
            entry("linet-no-ge", 71.0, 31.0, "reduced"), entry("linet-no-aw", 72.0, 32.0, "paper"),
            entry("linet", 69.0, 29.0, run="worse")]  # fmt: skip
    text = results.ablations(runs)
    assert "#### LINet paper, Table II: yoochoose1_64, protocol full" in text
    assert (
        "| linet-no-le | 68.36 / 28.86 | -2.87 / -2.26 | 69.50 / 30.25 | -0.50 / +0.25 | `le` |"
        in text
    )
    assert "| linet-no-ge | 68.58 / 29.27 | -2.65 / -1.85 | – / – | – | no full run yet |" in text
    assert "| linet | 71.23 / 31.12 | – | 70.00 / 30.00 | – | `base` |" in text
    assert "protocol paper" not in text  # a paper-protocol variant without its full model
    assert results.ablations([entry("linet", 70.0, 30.0)]) == ""  # no variant: no table
    assert "### The papers' ablations, redrawn" in results.render(runs)


def test_a_paper_runs_selection_phase_is_named_after_its_run(tiny, tmp_path):
    from sessionrec.data.sources import reload_dataset
    from sessionrec.training.run import train_paper_protocol

    train_paper_protocol(
        lambda: create("stamp", tiny.num_items, embedding_dim=8),
        lambda fraction: reload_dataset(dict(tiny.source, valid_fraction=fraction)),
        0.1,
        TrainConfig(epochs=1, batch_size=256, num_threads=1),
        tmp_path / "stamp-paper",
    )
    selection = results.entry_from_run(tmp_path / "stamp-paper" / "select", "full", command="x")
    assert selection["run"] == "stamp-paper/select"
    assert results.entry_name(selection) == "synthetic-stamp-full-stamp-paper_select.json"
    assert results.entry_from_run(tmp_path / "stamp-paper", "paper")["run"] == "stamp-paper"
