"""`sessionrec serve RUN_DIR`: the HTTP service (FastAPI + uvicorn) for a trained run."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from sessionrec.errors import ConfigError

ServedRun = Annotated[Path, typer.Argument(help="A run directory (from `sessionrec train`).")]
Host = Annotated[str, typer.Option(help="Address to bind; the default answers only this machine.")]
Port = Annotated[int, typer.Option(help="TCP port.")]
Threads = Annotated[int, typer.Option(help="Torch threads per worker.")]
MaxWaitMs = Annotated[
    float, typer.Option(help="Extra wait for more requests before a forward pass.")
]
ModelThread = Annotated[
    bool, typer.Option(help="Run forward passes on a thread beside the event loop.")
]
MaxK = Annotated[int, typer.Option(help="Largest k a request may ask for.")]
MaxSessions = Annotated[int, typer.Option(help="Sessions per batch request.")]
MaxBodyBytes = Annotated[int, typer.Option(help="Larger request bodies get 413.")]
MaxLen = Annotated[
    int | None, typer.Option(help="Clicks kept per session (default: the model's maximum).")
]
Ann = Annotated[
    str | None,
    typer.Option(
        help="Top-k for dot-product models through an index: int8 (exact, from an int8 copy "
        "of the item table), or approximate hnsw, ivf or flat with options such as "
        "'hnsw,ef_search=256' or 'ivf,nprobe=64' (these need faiss-cpu; default: score all)."
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        help="What computes the scores: torch, or onnx (ONNX Runtime, neural models that "
        "export; see `sessionrec export`)."
    ),
]
OnnxFile = Annotated[
    Path | None,
    typer.Option(
        "--onnx",
        help="The run's export for --backend onnx (default: exported when the service starts).",
    ),
]
LogLevel = Annotated[str, typer.Option(help="uvicorn log level.")]
AdminToken = Annotated[
    str | None,
    typer.Option(
        envvar="SESSIONREC_ADMIN_TOKEN",
        help="Enable /admin/* (POST /admin/reload: hot reload) for requests with this bearer "
        "token; without it they answer 404, on every --host.",
    ),
]


def serve(
    run_dir: ServedRun,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes, each with its own copy of the model.")
    ] = 1,
    threads: Threads = 1,
    batch_size: Annotated[
        int, typer.Option(help="Sessions merged into one forward pass (1: no batching).")
    ] = 64,
    max_wait_ms: MaxWaitMs = 0.0,
    model_thread: ModelThread = True,
    max_k: MaxK = 1000,
    max_sessions: MaxSessions = 256,
    max_body_bytes: MaxBodyBytes = 1 << 20,
    max_len: MaxLen = None,
    ann: Ann = None,
    backend: Backend = "torch",
    onnx: OnnxFile = None,
    log_level: LogLevel = "warning",
    admin_token: AdminToken = None,
) -> None:
    """Serve a trained run over HTTP: POST /recommend, /recommend/batch, /sessions,
    /admin/reload; GET /health, /model."""
    import json
    import os
    import tempfile

    from sessionrec.serving.ann import AnnConfig
    from sessionrec.serving.app import SETTINGS_ENV, ServeSettings

    _check_flags(port, workers, threads, batch_size)
    _admin_note(host, admin_token)
    ann_spec = None if ann is None else AnnConfig.parse(ann).spec()
    # the service's own files (an export made now, the reload notice, the workers' metrics),
    # removed when it stops
    with tempfile.TemporaryDirectory(prefix="sessionrec-serve-") as tmp, _exit_on_sigterm():
        scratch = Path(tmp)
        onnx_file = _onnx_file(run_dir, backend, onnx, ann_spec, scratch)
        reload_file = None if admin_token is None else str(scratch / "reload")
        settings = ServeSettings(
            max_k, max_sessions, max_body_bytes, batch_size, max_wait_ms, model_thread,
            admin_token, reload_file,
        )  # fmt: skip
        spec = {
            "run_dir": str(run_dir),
            "threads": threads,
            "max_len": max_len,
            "ann": ann_spec,
            "backend": backend,
            "onnx_file": onnx_file,
            "settings": vars(settings),
        }
        os.environ[SETTINGS_ENV] = json.dumps(spec)  # how every worker learns what to serve
        where = {"host": host, "port": port, "log_level": log_level}
        if workers == 1:
            _serve_here(run_dir, ann_spec, where)
        else:
            _serve_in_workers(run_dir, workers, threads, spec, where, scratch)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the service as an exception would, so its scratch directory is removed:
    uvicorn shuts down gracefully, then raises the signal again under the handler set here."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_flags(port: int, workers: int, threads: int, batch_size: int) -> None:
    """Refuse counts below 1 and a port outside 1..65535."""
    for name, value in (("workers", workers), ("threads", threads), ("batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _admin_note(host: str, admin_token: str | None) -> None:
    """Say that /admin/* is off when the service answers other machines without a token."""
    if admin_token is None and host not in LOOPBACK:
        print(f"note: --host {host} is not loopback and there is no --admin-token: "
              "/admin/* is off (404)")  # fmt: skip


def _onnx_file(
    run_dir: Path, backend: str, onnx: Path | None, ann: str | None, scratch: Path
) -> str | None:
    """The ONNX file every worker loads for --backend onnx: --onnx, else one exported into
    `scratch` now (once for all workers, and failing before the port is bound; the session
    encoder with --ann, else the scoring); None for torch."""
    from sessionrec.serving.recommender import check_backend

    check_backend(backend)
    if onnx is not None and backend != "onnx":
        raise ConfigError("--onnx is for --backend onnx")
    if backend != "onnx" or onnx is not None:
        return None if onnx is None else str(onnx)
    from sessionrec.serving.onnx import export_run

    path = scratch / "model.onnx"
    export_run(run_dir, path, computes="scores" if ann is None else "session_vectors")
    return str(path)


def _serve_here(run_dir: Path, ann_spec: str | None, where: dict) -> None:
    """One process: load (and fail) before binding the port, then serve."""
    import uvicorn

    from sessionrec.serving.app import app_from_env

    app = app_from_env()
    how = "" if ann_spec is None else f" (top-k index: {ann_spec})"
    name = app.state.reloader.now.rec.model.name
    print(f"serving {name} from {run_dir} on http://{where['host']}:{where['port']}{how}")
    uvicorn.run(app, **where)


def _serve_in_workers(
    run_dir: Path,
    workers: int,
    threads: int,
    spec: dict,
    where: dict,
    scratch: Path,
) -> None:
    """Several processes, each with its own model; the run is loaded here first to fail early,
    and an ANN index is built (and cached in the run directory) here once for all workers."""
    import gc

    import torch
    import uvicorn

    from sessionrec.serving.recommender import SessionRecommender, load_options

    SessionRecommender.load(run_dir, **load_options(spec))
    gc.collect()
    _metrics_dir(scratch)
    torch.set_num_threads(threads)
    print(f"serving {run_dir} with {workers} workers on http://{where['host']}:{where['port']}")
    uvicorn.run("sessionrec.serving.app:app_from_env", factory=True, workers=workers, **where)


def _metrics_dir(scratch: Path) -> None:
    """Workers write their metrics into one fresh directory that every worker's /metrics sums
    (prometheus_client's multiprocess mode, serving/metrics.py); a directory already set in
    $PROMETHEUS_MULTIPROC_DIR is used as it is."""
    import os

    from sessionrec.serving.metrics import MULTIPROC_ENV

    if MULTIPROC_ENV not in os.environ:
        (scratch / "metrics").mkdir()
        os.environ[MULTIPROC_ENV] = str(scratch / "metrics")
