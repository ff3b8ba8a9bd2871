"""`sessionrec serve RUN_DIR`: the HTTP service (FastAPI + uvicorn) for a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.errors import ConfigError


def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (from `sessionrec train`).")],
    host: Annotated[
        str, typer.Option(help="Address to bind; the default answers only this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes, each with its own copy of the model.")
    ] = 1,
    threads: Annotated[int, typer.Option(help="Torch threads per worker.")] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Sessions merged into one forward pass (1: no batching).")
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(help="Extra wait for more requests before a forward pass.")
    ] = 0.0,
    model_thread: Annotated[
        bool, typer.Option(help="Run forward passes on a thread beside the event loop.")
    ] = True,
    max_k: Annotated[int, typer.Option(help="Largest k a request may ask for.")] = 1000,
    max_sessions: Annotated[int, typer.Option(help="Sessions per batch request.")] = 256,
    max_body_bytes: Annotated[int, typer.Option(help="Larger request bodies get 413.")] = 1 << 20,
    max_len: Annotated[
        int | None, typer.Option(help="Clicks kept per session (default: the model's maximum).")
    ] = None,
    ann: Annotated[
        str | None,
        typer.Option(
            help="Approximate top-k for dot-product models: hnsw, ivf or flat, with options "
            "such as 'hnsw,ef_search=256' or 'ivf,nprobe=64' (needs faiss-cpu; default exact)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="SESSIONREC_ADMIN_TOKEN",
            help="Enable POST /admin/reload (hot reload) for requests with this bearer token.",
        ),
    ] = None,
) -> None:
    """Serve a trained run over HTTP: POST /recommend, /recommend/batch, /sessions,
    /admin/reload; GET /health, /model."""
    import gc
    import json
    import os
    import tempfile

    import torch
    import uvicorn

    from sessionrec.serving.ann import AnnConfig
    from sessionrec.serving.app import SETTINGS_ENV, ServeSettings, app_from_env
    from sessionrec.serving.recommender import SessionRecommender

    for name, value in (("workers", workers), ("threads", threads), ("batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    ann_spec = None if ann is None else AnnConfig.parse(ann).spec()
    reload_file = None  # how a reload reaches every worker (serving/app.py: Reloader)
    if admin_token is not None:
        reload_file = str(Path(tempfile.mkdtemp(prefix="sessionrec-serve-")) / "reload")
    settings = ServeSettings(
        max_k, max_sessions, max_body_bytes, batch_size, max_wait_ms, model_thread,
        admin_token, reload_file,
    )  # fmt: skip
    spec = {
        "run_dir": str(run_dir),
        "threads": threads,
        "max_len": max_len,
        "ann": ann_spec,
        "settings": vars(settings),
    }
    os.environ[SETTINGS_ENV] = json.dumps(spec)
    if workers == 1:
        app = app_from_env()  # load (and fail) before binding the port
        how = "" if ann_spec is None else f" (approximate top-k: {ann_spec})"
        name = app.state.reloader.now.rec.model.name
        print(f"serving {name} from {run_dir} on http://{host}:{port}{how}")
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    else:
        # Fail early, in this process; an ANN index is built (and cached) here once, and
        # each worker reads it from the run directory.
        SessionRecommender.load(run_dir, max_len=max_len, ann=ann_spec)
        gc.collect()
        torch.set_num_threads(threads)
        print(f"serving {run_dir} with {workers} workers on http://{host}:{port}")
        uvicorn.run(
            "sessionrec.serving.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
