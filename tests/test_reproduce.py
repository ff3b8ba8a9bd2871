"""`sessionrec reproduce` and `tune`: outputs, cache reuse, resume, selection, significance."""

import json
from functools import partial

import numpy as np
import pytest

from helpers import run_cli
from sessionrec.data.sources import load_dataset, reload_dataset
from sessionrec.data.synthetic import make_synthetic
from sessionrec.errors import ConfigError
from sessionrec.reproduce.budget import Budget
from sessionrec.reproduce.experiments import EXPERIMENTS, get_experiment
from sessionrec.reproduce.runner import Runner, load_per_case, make_job
from sessionrec.reproduce.significance import paired_test
from sessionrec.reproduce.tune import grid_points, parse_grid, tune
from sessionrec.rundir import PER_CASE_FILE

# Small FOCOL settings so three 1-epoch runs take seconds on one thread.
TINY_FOCOL = [
    "--train-fraction",
    "0.02",
    *("--set", "embedding_dim=16", "--set", "feedforward_dim=32", "--set", "transformer_layers=1"),
    *("--set", "fogcn_layers=1", "--set", "negatives=8", "--set", "batch_size=256"),
    *("--set", "num_threads=1"),
]


run = partial(run_cli, check=True, timeout=600)  # `sessionrec ARGS...` with cwd=...


def test_focol_table3_end_to_end_then_cached(tmp_path):
    args = ["reproduce", "focol-table3", "--dataset", "synthetic", "--epochs", "1", *TINY_FOCOL]
    first = run(*args, cwd=tmp_path)
    assert "runs: 3 trained, 0 resumed, 0 reused" in first.stdout
    out = tmp_path / "results" / "focol-table3"
    results = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in results["rows"]] == ["FOCOL-NG", "FOCOL-SG", "FOCOL"]
    assert not results["budget"]["full_protocol"]
    for row in results["rows"]:
        run_dir = tmp_path / row["runs"][0]["run_dir"]
        recorded = json.loads((run_dir / "metrics.json").read_text())["test"]
        assert row["ours_pct"]["hr@20"] == pytest.approx(100 * recorded["hr@20"])
        assert 0 <= row["ours_pct"]["mrr@20"] <= row["ours_pct"]["hr@20"] <= 100
        assert len(load_per_case(run_dir, "mrr@20")) == results["datasets"][0]["test_cases"]
        assert (row["p_value"] is None) == (row["label"] == "FOCOL")
    table = (out / "table.md").read_text()
    assert "REDUCED BUDGET" in table and "most recent 2% of training sessions" in table
    assert "| FOCOL-NG |" in table and "ref." in table
    assert (out / "table.png").read_bytes()[:4] == b"\x89PNG"

    weights = sorted((tmp_path / "results" / "runs").glob("*/model.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    second = run(*args, cwd=tmp_path)
    assert "runs: 0 trained, 0 resumed, 3 reused" in second.stdout
    assert "train " not in second.stdout
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    again = json.loads((out / "results.json").read_text())
    assert [r["ours_pct"] for r in again["rows"]] == [r["ours_pct"] for r in results["rows"]]


def test_unknown_experiment_is_one_line(tmp_path):
    proc = run("reproduce", "focol-table9", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown experiment 'focol-table9'" in lines[0]
    assert "focol-table2" in lines[0] and "linet-fig1" in lines[0]


def test_significance_known_p_values():
    a = np.array([0.5, 0.4, 0.9, 0.3, 1.0, 0.2])
    b = a - np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])  # six positive, distinct differences
    # Exact Wilcoxon: W- = 0 is one of 2^6 equally likely sign patterns per side.
    assert paired_test(a, b) == pytest.approx(2 / 64)
    assert paired_test(b, a) == pytest.approx(2 / 64)
    # Paired t: differences 1..5, t = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426 with 4 df.
    x = np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    y = x - np.arange(1.0, 6.0)
    assert paired_test(x, y, "ttest") == pytest.approx(0.0132356, abs=1e-6)
    assert paired_test(a, a) == 1.0
    with pytest.raises(ConfigError):
        paired_test(a, a[:3])
    with pytest.raises(ConfigError):
        paired_test(a, b, "sign")


def test_train_fraction_keeps_the_most_recent_sessions():
    full = load_dataset("synthetic")
    part = load_dataset("synthetic", train_fraction=0.1)
    n = round(len(full.train_sessions) * 0.1)
    assert len(part.train_sessions) == n
    assert part.train_sessions.to_lists() == full.train_sessions.to_lists()[-n:]
    assert part.num_items == full.num_items and len(part.test) == len(full.test)
    assert part.source["train_fraction"] == 0.1
    assert reload_dataset(part.source).train_sessions.to_lists() == part.train_sessions.to_lists()
    assert "train_fraction" not in full.source
    with pytest.raises(ConfigError):
        load_dataset("synthetic", train_fraction=0.0)


def test_budget_label_marks_reduced_runs():
    assert Budget().full and "full protocol" in Budget().label()
    assert "REDUCED" not in Budget(sets={"num_threads": "1"}).label()
    for reduced in (Budget(epochs=1), Budget(max_minutes=5), Budget(train_fraction=0.5)):
        assert not reduced.full and "REDUCED BUDGET" in reduced.label()
    assert "--set hidden_size=50" in Budget(sets={"hidden_size": "50"}).label()


def test_experiments_cover_the_papers():
    assert set(EXPERIMENTS) == {
        "focol-table2",
        "focol-table3",
        "focol-table4",
        "focol-fig3",
        "focol-fig4",
        "linet-table1",
        "linet-table2",
        "linet-fig1",
    }
    assert get_experiment("focol-table2").paper_value("FOCOL", "diginetica", "hr@20") == 54.08
    assert get_experiment("linet-table1").paper_value("BPR-MF", "yoochoose1_4", "mrr@20") == 1.57
    assert len(get_experiment("focol-fig3").rows) == 17  # 7 β + 5 L_G + 5 L_T
    with pytest.raises(ConfigError, match="not a row"):
        get_experiment("focol-table3").select_rows(["narm"])


@pytest.fixture(scope="module")
def small():
    return make_synthetic(num_items=300, num_categories=10, num_sessions=3000, seed=1)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, small):
    budget = Budget(epochs=2, sets={"embedding_dim": "16", "hidden_size": "16"})
    job = make_job("narm", {}, small, budget, seed=0)
    runner = Runner(tmp_path, say=lambda _: None)
    assert runner.status(job) == "train"
    first = runner.run(job, small)
    assert runner.counts["trained"] == 1
    run_dir = runner.run_dir(job)
    (run_dir / "metrics.json").unlink()  # killed after the last checkpoint, before evaluating
    (run_dir / PER_CASE_FILE).unlink()
    again = Runner(tmp_path, say=lambda _: None)
    assert again.status(job) == "resume"
    second = again.run(job, small)
    assert again.counts["resumed"] == 1 and again.counts["trained"] == 0
    assert second["valid"] == first["valid"] and second["test"] == first["test"]
    assert Runner(tmp_path, say=lambda _: None).status(job) == "reuse"


def test_tune_selects_on_validation_and_tests_once(tmp_path):
    grid = parse_grid(["k=50,1", "sample_size=200"])
    assert grid_points(grid) == [
        {"k": "50", "sample_size": "200"},
        {"k": "1", "sample_size": "200"},
    ]
    budget = Budget(train_fraction=0.05)
    results = tune(
        "sknn", ["synthetic"], grid, budget, tmp_path / "runs", tmp_path / "out", say=lambda _: None
    )
    (d,) = results["datasets"]
    valid = []
    for point in d["points"]:
        (run_dir,) = point["run_dirs"]
        recorded = json.loads((tmp_path / run_dir / "metrics.json").read_text())
        assert point["valid_pct"] == pytest.approx(100 * recorded["valid"]["mrr@20"])
        valid.append(point["valid_pct"])
    assert valid[0] != valid[1]
    assert d["selected"] == int(np.argmax(valid))
    for i, point in enumerate(d["points"]):
        recorded = json.loads((tmp_path / point["run_dirs"][0] / "metrics.json").read_text())
        assert ("test" in recorded) == (i == d["selected"])  # the test split is touched once
    chosen = json.loads(
        (tmp_path / d["points"][d["selected"]]["run_dirs"][0] / "metrics.json").read_text()
    )
    assert d["test_pct"]["hr@20"] == pytest.approx(100 * chosen["test"]["hr@20"])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "selected" in table and "REDUCED BUDGET" in table
    with pytest.raises(ConfigError, match="unknown setting 'hidden' for sknn"):
        tune("sknn", ["synthetic"], parse_grid(["hidden=1,2"]), budget, tmp_path, tmp_path)


def test_a_failed_row_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    from sessionrec.errors import RunError
    from sessionrec.reproduce.pipeline import Options, reproduce

    real_run = Runner.run

    def failing(self, job, dataset, test=True):
        if job.model == "focol-sg":
            raise RunError("loss is NaN at epoch 1")
        return real_run(self, job, dataset, test)

    monkeypatch.setattr(Runner, "run", failing)
    options = Options(
        datasets=["synthetic"],
        budget=Budget(
            epochs=1,
            train_fraction=0.02,
            sets={
                "embedding_dim": "16",
                "feedforward_dim": "32",
                "transformer_layers": "1",
                "fogcn_layers": "1",
                "negatives": "8",
                "batch_size": "256",
                "num_threads": "1",
            },
        ),
        runs_dir=tmp_path / "runs",
        out=tmp_path / "out",
    )
    lines = []
    with pytest.raises(RunError, match=r"1 row\(s\) failed \(FOCOL-SG on synthetic\)"):
        reproduce("focol-table3", options, lines.append)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["label"] for r in results["rows"]] == ["FOCOL-NG", "FOCOL"]
    assert results["failed"][0]["error"] == "loss is NaN at epoch 1"
    assert "**FAILED**: FOCOL-SG on synthetic" in (tmp_path / "out" / "table.md").read_text()
    assert any(line.startswith("FAILED  FOCOL-SG") for line in lines)


def test_a_run_cut_by_its_budget_continues_when_given_more_time(tmp_path, small):
    sets = {"embedding_dim": "16", "hidden_size": "16"}
    cut = make_job("narm", {}, small, Budget(epochs=2, max_minutes=1e-5, sets=sets), seed=0)
    runner = Runner(tmp_path, say=lambda _: None)
    runner.run(cut, small)
    run_dir = runner.run_dir(cut)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    cut_records = [r for r in log if r["event"] == "epoch"]
    assert [(r["epoch"], r["out_of_budget"], r.get("partial")) for r in cut_records] == [
        (1, True, True)
    ]
    assert Runner(tmp_path, say=lambda _: None).status(cut) == "reuse"  # same budget: reused
    longer = make_job("narm", {}, small, Budget(epochs=2, sets=sets), seed=0)
    assert longer.key() == cut.key()
    again = Runner(tmp_path, say=lambda _: None)
    assert again.status(longer) == "resume"
    again.run(longer, small)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in log if r["event"] == "epoch"]
    assert [(r["epoch"], r.get("partial", False)) for r in epochs] == [
        (1, True),  # cut part-way, then finished by the resume
        (1, False),
        (2, False),
    ]
    assert epochs[1]["steps_done"] == epochs[1]["steps"] == epochs[2]["steps_done"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["max_minutes"] is None
    assert config["resumes"][0]["changed"]["max_minutes"] == [1e-5, None]
    assert Runner(tmp_path, say=lambda _: None).status(longer) == "reuse"


def test_paper_protocol_tests_a_refit_on_every_training_example(tmp_path):
    """Each row's selection is the cached full-protocol run; its refit trains on every
    training example for the selected epochs (a cached run of its own) and is the one tested."""
    args = ["reproduce", "linet-table1", "--dataset", "synthetic", "--models", "itemknn,stamp"]
    args += ["--epochs", "3", "--set", "embedding_dim=8", "--set", "num_threads=1"]
    first = run(*args, "--protocol", "paper", cwd=tmp_path)
    assert "runs: 4 trained, 0 resumed, 0 reused" in first.stdout
    assert "then a refit on every training example for the selected epochs" in first.stdout
    results = json.loads((tmp_path / "results" / "linet-table1" / "results.json").read_text())
    assert results["budget"]["protocol"] == "paper"
    for row in results["rows"]:
        (refit,) = row["runs"]
        selection = tmp_path / refit["selection"]["run_dir"]
        config = json.loads((tmp_path / refit["run_dir"] / "config.json").read_text())
        assert config["dataset"]["valid_fraction"] == 0.0
        assert json.loads((selection / "config.json").read_text())["dataset"]["valid_fraction"]
        tested = json.loads((tmp_path / refit["run_dir"] / "metrics.json").read_text())["test"]
        assert row["ours_pct"]["hr@20"] == pytest.approx(100 * tested["hr@20"])
        valid = json.loads((selection / "metrics.json").read_text())["valid"]
        assert row["valid_pct"]["mrr@20"] == pytest.approx(100 * valid["mrr@20"])
        if row["model"] == "stamp":
            chosen = json.loads((selection / "metrics.json").read_text())["best_epoch"]
            log = (tmp_path / refit["run_dir"] / "log.jsonl").read_text().splitlines()
            epochs = [r for r in map(json.loads, log) if r["event"] == "epoch"]
            assert len(epochs) == chosen == refit["best_epoch"]
            assert all("valid" not in r for r in epochs)  # nothing left to validate on
    second = run(*args, "--protocol", "paper", cwd=tmp_path)
    assert "runs: 0 trained, 0 resumed, 4 reused" in second.stdout
    full = run(*args, cwd=tmp_path)  # the selection runs are the full protocol's own
    assert "runs: 0 trained, 0 resumed, 2 reused" in full.stdout
    with pytest.raises(ConfigError, match="--protocol must be one of full, paper"):
        Budget(protocol="best").check()
