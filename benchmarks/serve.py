"""Serving latency and throughput: in-process calls and HTTP on loopback, for any run directory.

Usage:
    python benchmarks/serve.py RUN_DIR [--requests 3000] [--seconds 20] [--concurrency 1,8,32]
        [--rate 500] [--batch-size 1,64] [--max-wait-ms 0] [--threads 1] [--workers 1]
        [--backend torch,onnx] [--ann hnsw]
    python benchmarks/serve.py --untrained focol --dataset diginetica
        (latency only: a FOCOL of the dataset's size with random weights, see docs/serving.md)

In-process: `SessionRecommender.recommend` one session at a time, with each `--backend`
(torch, onnx: ONNX Runtime on the run's export, serving/onnx.py) on the same sessions;
`--ann SPEC` makes every backend answer through that top-k index (int8, or a FAISS index),
in process and in the service (serve's `--ann`, serving/ann.py); onnx then runs the encoder.
HTTP: the service is started with `sessionrec serve` as a subprocess on 127.0.0.1 (never any
other address) and driven from this process over keep-alive connections: closed loop with
`--concurrency` connections, and open loop at `--rate` requests/s (latency counted from each
request's scheduled time).
Each phase stops after `--requests` requests or `--seconds` seconds, whichever comes first.
Sessions are the run's test prefixes in original ids (random sessions if the data is absent).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import write_summary

from sessionrec.launch import apply_runtime_defaults

HOST = "127.0.0.1"  # loopback only


QUANTILES = {"p50": 500, "p90": 900, "p95": 950, "p99": 990, "p99.9": 999}  # per mille


def percentiles(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {q: float("nan") for q in QUANTILES}
    q = statistics.quantiles(lat, n=1000, method="inclusive") if len(lat) > 1 else lat * 999
    return {name: q[at - 1] for name, at in QUANTILES.items()}


def report(name: str, lat: list[float], errors: int, seconds: float, extra: str = "") -> dict:
    p = percentiles(lat)
    rate = len(lat) / seconds if seconds > 0 else 0.0
    shown = "  ".join(f"{q} {1e3 * p[q]:7.3f} ms" for q in ("p50", "p90", "p99", "p99.9"))
    print(
        f"{name:<28} n={len(lat):>6}  errors={errors:<4} {rate:>8.0f} req/s  {shown}{extra}",
        flush=True,
    )
    return {"req_per_s": rate, "errors": errors, **{f"{q}_ms": 1e3 * v for q, v in p.items()}}


def load_sessions(rec, config: dict, n: int, seed: int = 0) -> list[list]:
    """Up to `n` test prefixes of the run's dataset in original ids (random if unavailable)."""
    rng = random.Random(seed)
    try:
        from sessionrec.data.sources import reload_dataset

        test = reload_dataset(config["dataset"]).test
        idx = rng.sample(range(len(test)), min(n, len(test)))
        seqs = [test.sequence(i).tolist() for i in idx]
        source = "test prefixes"
    except Exception as e:  # the dataset is not on this machine
        print(f"(dataset unavailable: {e}; using random sessions of 1-10 items)")
        num = rec.model.num_items
        seqs = [[rng.randint(1, num) for _ in range(rng.randint(1, 10))] for _ in range(n)]
        source = "random sessions"
    lengths = [len(s) for s in seqs]
    print(
        f"sessions: {len(seqs)} {source}, mean length {statistics.mean(lengths):.1f}, "
        f"max {max(lengths)}"
    )
    to_orig = rec.vocab.to_original
    return [[to_orig(i) for i in s] for s in seqs]


def bench_inprocess(
    rec, sessions: list[list], k: int, requests: int, seconds: float, label: str = ""
) -> dict:
    for s in sessions[:50]:
        rec.recommend(s, k)
    lat, errors = [], 0
    t0 = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        if t - t0 > seconds:
            break
        try:
            rec.recommend(sessions[i % len(sessions)], k)
        except Exception:
            errors += 1
            continue
        lat.append(time.perf_counter() - t)
    one = report(f"in-process{label}, 1 session", lat, errors, time.perf_counter() - t0)
    batch = [sessions[i % len(sessions)] for i in range(64)]
    t0, n = time.perf_counter(), 0
    while n < max(requests // 64, 5) and time.perf_counter() - t0 < seconds:
        rec.recommend_batch(batch, k)
        n += 1
    dt = time.perf_counter() - t0
    print(
        f"in-process{label}, batches of 64  {64 * n / dt:8.0f} sessions/s  "
        f"{1e3 * dt / n:.2f} ms/batch"
    )
    return {"one_session": one, "batch64_sessions_per_s": 64 * n / dt}


# --- HTTP --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(run_dir: str, args: argparse.Namespace, batch_size: int) -> tuple:
    port = free_port()
    cmd = [
        sys.executable, "-m", "sessionrec", "serve", run_dir, "--host", HOST, "--port", str(port),
        "--threads", str(args.threads), "--workers", str(args.workers),
        "--batch-size", str(batch_size), "--max-wait-ms", str(args.max_wait_ms),
        "--model-thread" if args.model_thread else "--no-model-thread",
        "--backend", args.backend[0],
        *(["--onnx", args.onnx] if args.onnx and args.backend[0] == "onnx" else []),
        *(["--ann", args.ann] if args.ann else []),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the service did not answer /health within 180 s")


def request_bytes(port: int, session: list, k: int) -> bytes:
    body = json.dumps({"session": session, "k": k}).encode()
    head = (
        f"POST /recommend HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
    await reader.readexactly(length)
    return status


async def drive(port: int, payloads: list[bytes], args, concurrency: int, rate: float | None):
    """Closed loop (rate None) or open loop at `rate` req/s; returns latencies, errors, time."""
    lat: list[float] = []
    sent_lat: list[float] = []  # from the actual send (open loop: without client lateness)
    errors = 0
    counter = iter(range(args.requests))
    t0 = time.perf_counter()
    stop_at = t0 + args.seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for i in counter:
                scheduled = t0 + i / rate if rate else time.perf_counter()
                if scheduled > stop_at:
                    break
                if rate:
                    await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                sent = time.perf_counter()
                writer.write(payloads[i % len(payloads)])
                try:
                    status = await asyncio.wait_for(_read_response(reader), 10)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    continue
                if status == 200:
                    done = time.perf_counter()
                    lat.append(done - scheduled)
                    sent_lat.append(done - sent)
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, sent_lat, errors, time.perf_counter() - t0


def model_info(port: int) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}/model", timeout=5) as r:
        return json.loads(r.read())


def batcher_stats(port: int) -> dict:
    return model_info(port)["batcher"]


def bench_http(run_dir: str, sessions: list[list], args) -> None:
    for batch_size in args.batch_size:
        proc, port = start_server(run_dir, args, batch_size)
        try:
            payloads = [request_bytes(port, s, args.k) for s in sessions]
            ann = model_info(port)["ann"] or {"kind": "none"}
            ann_spec = ",".join([ann.pop("kind"), *(f"{k}={v}" for k, v in ann.items())])
            print(f"service: backend {model_info(port)['backend']}, ann {ann_spec}", flush=True)
            warm = argparse.Namespace(requests=200, seconds=10)
            asyncio.run(drive(port, payloads[:200], warm, 4, None))
            phases = [(c, None) for c in args.concurrency] + [
                (args.rate_connections, r) for r in args.rate
            ]
            for conc, rate in phases:
                before = batcher_stats(port)
                lat, sent_lat, errors, dt = asyncio.run(drive(port, payloads, args, conc, rate))
                after = batcher_stats(port)
                passes = max(after["batches"] - before["batches"], 1)
                mean = (after["sessions"] - before["sessions"]) / passes
                fwd = 1e3 * (after["forward_seconds"] - before["forward_seconds"]) / passes
                extra = f"{mean:.1f} sessions/pass, {fwd:.2f} ms/pass"
                if args.workers > 1:  # /model answers from one worker: no totals
                    extra = f"{args.workers} workers"
                label = f"rate {rate:g}/s" if rate else f"{conc} connections"
                if rate:
                    p = percentiles(sent_lat)
                    extra += f", from send p50 {1e3 * p['p50']:.2f} p99 {1e3 * p['p99']:.2f} ms"
                report(
                    f"http batch {batch_size}, {label}",
                    lat, errors, dt, f"  ({extra})",
                )  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)


def make_untrained(model: str, dataset: str) -> str:
    """A run directory with `model` at `dataset`'s size and random weights (latency only)."""
    import torch

    from sessionrec.data.sources import load_dataset
    from sessionrec.io import atomic_write_json
    from sessionrec.models import create

    data = load_dataset(dataset)
    m = create(model, data.num_items, seed=0)
    net = getattr(m, "net", None)
    if net is not None and hasattr(net, "global_emb"):  # FOCOL: E^g as if precomputed
        with torch.no_grad():
            net.global_emb = net.item_emb.weight.detach().clone()
            net._stale = False
    out = tempfile.mkdtemp(prefix=f"untrained-{model}-{data.name}-")
    m.save(out)
    from sessionrec.models.params import params_dict

    config = {
        "model": m.name,
        "num_items": m.num_items,
        "params": params_dict(m.params),
        "dataset": data.source,
        "train": {},
    }
    atomic_write_json(Path(out) / "config.json", config)
    print(f"untrained {model} for {data.name} ({data.num_items:,} items) in {out}")
    return out


def load_backend(run_dir: str, backend: str, onnx_file: str | None, ann: str | None):
    """The run as a SessionRecommender scoring with `backend` (torch or onnx), through the
    index `ann` if given (then onnx runs the session encoder)."""
    from sessionrec.serving import SessionRecommender

    onnx_file = onnx_file if backend == "onnx" else None
    return SessionRecommender.load(run_dir, backend=backend, onnx_file=onnx_file, ann=ann)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--untrained", help="Benchmark this model with random weights instead.")
    parser.add_argument("--dataset", default="diginetica", help="Dataset for --untrained.")
    parser.add_argument("--requests", type=int, default=3000, help="Per phase.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Per phase.")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument(
        "--concurrency", type=ints, default=[1, 8, 32],
        help="Closed-loop phases (connections each); '' for none, e.g. a soak at --rate only.",
    )  # fmt: skip
    parser.add_argument("--rate", type=lambda s: [float(x) for x in s.split(",") if x], default=[])
    parser.add_argument("--rate-connections", type=int, default=32)
    parser.add_argument("--batch-size", type=ints, default=[64])
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--backend", type=lambda s: s.split(","), default=["torch"],
        help="In-process scoring backends to compare, e.g. torch,onnx (HTTP uses the first).",
    )  # fmt: skip
    parser.add_argument("--onnx", help="The run's export for the onnx backend (else exported).")
    parser.add_argument(
        "--ann", help="Every backend answers through this index (serve's --ann, e.g. int8).",
    )  # fmt: skip
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--no-inprocess", action="store_true", help="HTTP phases only (e.g. a long soak)."
    )
    parser.add_argument("--json", help="also write the in-process figures here (run_all.py)")
    parser.add_argument(
        "--model-thread", action=argparse.BooleanOptionalAction, default=True,
        help="Forward passes on a thread beside the event loop (the serve default).",
    )  # fmt: skip
    args = parser.parse_args()
    if (args.run_dir is None) == (args.untrained is None):
        parser.error("give a RUN_DIR or --untrained MODEL")
    apply_runtime_defaults()  # before torch loads, as the sessionrec command does
    import torch

    from sessionrec.rundir import read_config

    torch.set_num_threads(args.threads)
    run_dir = args.run_dir or make_untrained(args.untrained, args.dataset)
    rec = load_backend(run_dir, args.backend[0], args.onnx, args.ann)
    print(
        f"{rec.model.name}: {rec.model.num_items:,} items, {args.threads} torch thread(s), "
        f"k={args.k}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    sessions = load_sessions(rec, read_config(run_dir), 5000)
    gc.collect()
    gc.freeze()  # as the service does after loading (docs/serving.md)
    inproc = {}
    for backend in [] if args.no_inprocess else args.backend:  # the same sessions, in turn
        if backend != args.backend[0]:
            rec = load_backend(run_dir, backend, args.onnx, args.ann)
        shown = f"{backend}, ann {args.ann}" if args.ann else backend
        label = f" ({shown})" if len(args.backend) > 1 or args.ann else ""
        inproc[backend] = bench_inprocess(rec, sessions, args.k, args.requests, args.seconds, label)
    if inproc:
        summary = inproc[args.backend[0]] if len(inproc) == 1 else {"backends": inproc}
        items = rec.model.num_items
        write_summary(args.json, {"model": rec.model.name, "items": items, **summary})
    if not args.no_http:
        bench_http(run_dir, sessions, args)


if __name__ == "__main__":
    main()
