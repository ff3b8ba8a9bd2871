"""Run every benchmark of the suite and print one summary table of the headline figures.

Each script runs as its own process (so peak memory is per benchmark) and writes its figures
as JSON; this prints their output as it comes and then a Markdown summary, also saved with
`--out`. `--quick` shrinks repeats, steps and models so the suite takes minutes.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/run_all.py --dataset diginetica
    .venv/bin/python benchmarks/run_all.py --dataset synthetic --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sessionrec.launch import apply_runtime_defaults

HERE = Path(__file__).resolve().parent


def suite(dataset: str, threads: int, quick: bool) -> dict[str, list[str]]:
    """Script arguments per benchmark, smaller with `quick`."""
    t = ["--threads", str(threads)]
    models = "narm,srgnn,focol" if quick else None
    return {
        "fogcn": ["fogcn.py", "--dataset", dataset, "--repeats", "1" if quick else "5", *t],
        "srgnn_batching": [
            "srgnn_batching.py",
            "--dataset",
            dataset,
            "--loop",
            "--repeats",
            "1" if quick else "3",
            *t,
        ],
        "eval_throughput": [
            "eval_throughput.py",
            "--dataset",
            dataset,
            *t,
            *(["--models", "pop,itemknn," + models, "--cases", "5000"] if quick else []),
        ],
        "epoch_time": [
            "epoch_time.py",
            "--dataset",
            dataset,
            *t,
            *(["--models", "bprmf," + models, "--steps", "5"] if quick else []),
        ],
        "output_layer": ["output_layer.py", "--repeats", "3" if quick else "20", *t],
        "latency": [
            "serve.py",
            "--untrained",
            "focol",
            "--dataset",
            dataset,
            "--no-http",
            "--requests",
            "300" if quick else "3000",
            "--seconds",
            "10",
            *t,
        ],
    }


def run(name: str, argv: list[str], workdir: Path) -> dict | None:
    """Run one script, streaming its output; its JSON figures, or None if it failed."""
    out = workdir / f"{name}.json"
    print(f"\n## {name}: {' '.join(argv)}", flush=True)
    env = dict(os.environ)
    apply_runtime_defaults(env)  # the sessionrec command's defaults, for each script
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE / argv[0]), *argv[1:], "--json", str(out)], env=env
    )
    print(f"({name}: {time.perf_counter() - t:.0f} s, exit {proc.returncode})", flush=True)
    return json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else None


def summary_rows(results: dict[str, dict | None]) -> list[tuple[str, str]]:
    """(what, figure) lines of the summary table."""
    rows: list[tuple[str, str]] = []
    fog = results.get("fogcn")
    if fog:
        rows.append(
            (
                "FOG build",
                f"{fog['build_s']:.2f} s, {fog['edges']:,} edges, L = {fog['max_distance']}",
            )
        )
        for key, v in fog.items():
            if isinstance(v, dict):
                rows.append(
                    (
                        f"FOGCN {fog['layers']} layers fwd+bwd ({key})",
                        f"{v['fwd_bwd_s']:.2f} s wall, {v['cpu_s']:.2f} s CPU",
                    )
                )
        rows.append(("FOGCN peak RSS", f"{fog['peak_rss_gb']:.2f} GiB"))
    sg = results.get("srgnn_batching")
    if sg:
        loop = f" (loop {sg['loop_ms_per_1000']:.1f})" if "loop_ms_per_1000" in sg else ""
        rows.append(
            ("SR-GNN graphs per 1,000 sessions", f"{sg['vectorised_ms_per_1000']:.2f} ms{loop}")
        )
    ev = results.get("eval_throughput")
    if ev:
        for m, v in ev["models"].items():
            rows.append((f"evaluation, {m}", f"{v['cases_per_s']:,.0f} test cases/s"))
    ep = results.get("epoch_time")
    if ep:
        for m, v in ep["models"].items():
            rows.append(
                (
                    f"epoch at batch {ep['batch_size']}, {m}",
                    f"{v['epoch_s'] / 60:.1f} min wall, {v['epoch_cpu_s'] / 60:.1f} min CPU",
                )
            )
    out = results.get("output_layer")
    if out:
        for batch, v in out.items():
            rows.append(
                (
                    f"output layer fwd+bwd at batch {batch}, plain / blocked",
                    f"{v['plain']:.1f} / {v['blocked']:.1f} ms ({v['speedup']:.2f}×)",
                )
            )
    lat = results.get("latency")
    if lat:
        one = lat["one_session"]
        rows.append(
            (
                f"recommend latency, {lat['model']}",
                f"p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms",
            )
        )
    for name, r in results.items():
        if r is None:
            rows.append((name, "FAILED (see its output above)"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, steps and models")
    ap.add_argument("--only", help="comma list of benchmarks to run (default: all)")
    ap.add_argument("--out", help="also write the summary (Markdown) and figures (.json) here")
    args = ap.parse_args()
    benches = suite(args.dataset, args.threads, args.quick)
    names = args.only.split(",") if args.only else list(benches)
    unknown = sorted(set(names) - set(benches))
    if unknown:
        ap.error(f"unknown benchmark {unknown[0]} (choose from {', '.join(benches)})")
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: run(n, benches[n], Path(tmp)) for n in names}
    lines = [
        f"# Benchmark summary: {args.dataset}, {args.threads} thread(s)"
        + (", --quick" if args.quick else ""),
        "",
        "| what | figure |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in summary_rows(results)),
    ]
    print("\n" + "\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1))
    if any(r is None for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
