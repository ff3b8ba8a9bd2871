"""The benchmark suite runs end to end on the synthetic data and reports sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_eval_throughput_counts_every_case(tmp_path: Path) -> None:
    res = run_script(
        "eval_throughput.py",
        "--dataset",
        "synthetic",
        "--models",
        "pop,narm",
        "--cases",
        "700",
        tmp_path=tmp_path,
    )
    assert res["cases"] == 700
    for row in res["models"].values():
        assert row["cases_per_s"] == 700 / row["seconds"] > 0


def test_epoch_time_scales_steps_to_an_epoch(tmp_path: Path) -> None:
    res = run_script(
        "epoch_time.py",
        "--dataset",
        "synthetic",
        "--models",
        "narm,bprmf,pop",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--batch-size",
        "200",
        tmp_path=tmp_path,
    )
    assert set(res["models"]) == {"narm", "bprmf"}  # pop is not neural: skipped
    narm = res["models"]["narm"]
    steps = -(-res["examples"] // 200)
    assert abs(narm["epoch_s"] - narm["step_s"] * steps) < 1e-9
    assert res["models"]["bprmf"]["epoch_s"] > 0


def test_run_all_summarises_and_fails_on_unknown(tmp_path: Path) -> None:
    out = tmp_path / "summary.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--dataset",
            "synthetic",
            "--quick",
            "--only",
            "srgnn_batching,latency",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "SR-GNN graphs per 1,000 sessions" in text and "recommend latency, focol" in text
    bad = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "unknown benchmark nope" in bad.stderr


def test_following_the_model_through_training_returns_to_a_module_at_most_four_times() -> None:
    """The refactor issue's reading-path bound: from `train_and_evaluate`, a reader following
    the model meets run → wrapper → Trainer → module → Trainer → evaluation → wrapper →
    Trainer → wrapper (saving), and comes back to a module it has left at most 4 times."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "reading_path.py"), "--model", "narm"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]  # "narm: S stays in M modules, R returns ..."
    returns = int(summary.split(", ")[1].split()[0])
    assert returns <= 4, proc.stdout


def test_output_layer_times_both_forms(tmp_path: Path) -> None:
    res = run_script(
        "output_layer.py",
        "--items",
        "3000",
        "--batch-sizes",
        "8,64",
        "--repeats",
        "2",
        tmp_path=tmp_path,
    )
    assert set(res) == {"8", "64"}
    for row in res.values():
        assert row["plain"] > 0 and row["blocked"] > 0
        assert row["speedup"] == row["plain"] / row["blocked"]


def test_linet_attention_times_both_backends(tmp_path: Path) -> None:
    res = run_script(
        "linet_attention.py",
        "--dataset",
        "synthetic",
        "--batch-size",
        "64",
        "--shapes",
        "4x8",
        "--steps",
        "1",
        "--rounds",
        "1",
        tmp_path=tmp_path,
    )
    assert res["logits"]["4x8"]["torch_s"] > 0 and res["logits"]["4x8"]["numba_s"] > 0
    step = res["step"]
    assert step["cpu_speedup"] == step["torch_cpu_s"] / step["numba_cpu_s"]


def test_step_profile_lists_operators_by_share(tmp_path: Path) -> None:
    res = run_script(
        "step_profile.py",
        "--model",
        "narm",
        "--dataset",
        "synthetic",
        "--batch-size",
        "64",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--rows",
        "5",
        tmp_path=tmp_path,
    )
    assert res["model"] == "narm" and res["step_s"] > 0 and len(res["ops"]) == 5
    shares = [op["share"] for op in res["ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1


def test_serve_benchmark_answers_through_an_ann_index_in_process_and_over_http(
    tmp_path: Path,
) -> None:
    run = tmp_path / "stamp"
    train = [sys.executable, "-m", "sessionrec", "train", "stamp", "--dataset", "synthetic"]
    train += ["--epochs", "1", "--out", str(run), "--no-progress"]
    subprocess.run(train, check=True, capture_output=True, timeout=600)
    out = tmp_path / "serve.json"
    args = [str(run), "--ann", "flat", "--requests", "40", "--seconds", "10"]
    args += ["--batch-size", "8", "--concurrency", "1", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "serve.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "in-process (torch, ann flat), 1 session" in proc.stdout
    assert "service: backend torch, ann flat" in proc.stdout
    http = [line for line in proc.stdout.splitlines() if line.startswith("http batch 8")]
    assert len(http) == 1 and "errors=0 " in http[0], proc.stdout
    res = json.loads(out.read_text())
    one = res["one_session"]
    assert res["model"] == "stamp" and one["errors"] == 0 and one["p50_ms"] > 0
    if find_spec("onnxruntime") is None:
        return
    # a soak's shape: ONNX encoder with the int8 index, open loop only, no in-process phase
    args = [str(run), "--backend", "onnx", "--ann", "int8", "--no-inprocess", "--concurrency", ""]
    args += ["--rate", "50", "--rate-connections", "4", "--seconds", "3", "--batch-size", "8"]
    proc = subprocess.run(
        [sys.executable, str(BENCH / "serve.py"), *args], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "in-process" not in proc.stdout and "service: backend onnx (" in proc.stdout
    http = [line for line in proc.stdout.splitlines() if line.startswith("http batch 8")]
    assert len(http) == 1 and "rate 50/s" in http[0] and "errors=0 " in http[0], proc.stdout
    assert "ann int8" in proc.stdout


def test_graph_locality_times_both_orders_and_both_products(tmp_path: Path) -> None:
    res = run_script(
        "graph_locality.py", "--dataset", "synthetic", "--repeats", "2", tmp_path=tmp_path
    )
    variants = ("own_order", "locality_order", "numba_locality_order")
    for v in variants:
        assert res[f"{v}_forward_s"] > 0 and res[f"{v}_backward_s"] > 0
    total = {v: res[f"{v}_forward_s"] + res[f"{v}_backward_s"] for v in variants}
    assert res["speedup"] == total["own_order"] / total["locality_order"]
    assert res["numba_speedup"] == total["locality_order"] / total["numba_locality_order"]


def test_fogcn_times_the_kernels_and_the_lever_bounds(tmp_path: Path) -> None:
    res = run_script(
        "fogcn.py",
        "--dataset",
        "synthetic",
        "--alpha",
        "normalized",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--bounds",
        tmp_path=tmp_path,
    )
    assert res["numba_normalized"]["fwd_bwd_s"] >= res["numba_normalized"]["forward_s"] > 0
    bounds = res["normalized_forward_layer_s"]
    assert set(bounds) == {"as built", "gathers to one row", "one slot per group"}
    assert all(sec > 0 for sec in bounds.values())
