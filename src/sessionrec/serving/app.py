"""The HTTP service (FastAPI): `/recommend`, `/recommend/batch`, `/health`, `/model`,
`/metrics`, `/docs`.

Every 4xx answer is JSON `{"detail": "<one-line message>"}` (422 for a bad request, 413 for an
oversize body); a validation error also lists pydantic's `errors`. Requests go through a
`DynamicBatcher`, so concurrent requests share forward passes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from sessionrec.errors import ConfigError, SessionrecError
from sessionrec.io import atomic_write_text
from sessionrec.serving.batcher import DynamicBatcher
from sessionrec.serving.metrics import CONTENT_TYPE, RequestMetrics, ServiceMetrics
from sessionrec.serving.recommender import SessionRecommender, load_options

log = logging.getLogger(__name__)
SETTINGS_ENV = "SESSIONREC_SERVE"  # JSON settings for worker processes (--workers > 1)


@dataclass
class ServeSettings:
    """Request limits and batching; the `serve` command's flags."""

    max_k: int = 1000  # largest k a request may ask for
    max_sessions: int = 256  # sessions in one /recommend/batch request
    max_body_bytes: int = 1 << 20  # larger bodies get 413
    batch_size: int = 64  # sessions merged into one forward pass (1: batching off)
    max_wait_ms: float = 0.0  # extra wait for more requests before a forward pass
    threaded: bool = True  # forward passes on a model thread (False: on the event loop)
    admin_token: str | None = None  # enables /admin/* (POST /admin/reload) for `Bearer <token>`
    reload_file: str | None = None  # where a reload's run directory is announced to workers


def _check_item(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"item ids must be strings or integers, got {value!r}")
    return value


ItemIdIn = Annotated[int | str, BeforeValidator(_check_item)]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"session": ["item-a", "item-b"], "k": 20}]},
    )
    session: list[ItemIdIn] = Field(
        description="Item ids in click order (the dataset's original ids); "
        "the most recent clicks are kept when longer than the model's maximum."
    )
    k: int = Field(20, strict=True, description="How many items to return.")
    exclude: list[ItemIdIn] | None = Field(None, description="Item ids never to return.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"sessions": [["item-a"], ["item-b", "item-c"]]}]},
    )
    sessions: list[list[ItemIdIn]] = Field(description="Sessions, each as in /recommend.")
    k: int = Field(20, strict=True)
    exclude: list[list[ItemIdIn]] | None = Field(
        None, description="One list of item ids to leave out per session."
    )


class SessionsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"sessions": [["item-a", "item-b", "item-c"]]}]},
    )
    sessions: list[list[ItemIdIn]] = Field(
        description="Completed sessions, each its item ids in click order (original ids)."
    )


class SessionsResponse(BaseModel):
    sessions: int = Field(description="Sessions taken (logged and folded into the model).")
    clicks: int = Field(description="Their clicks on items the model knows.")
    unknown_items: list[int | str] = Field(description="Ids the model does not know (skipped).")
    live_sessions: int = Field(description="Sessions folded in live since the run was trained.")


class RecommendResponse(BaseModel):
    items: list[int | str] = Field(description="Recommended item ids, best first.")
    scores: list[float] = Field(description="The model's score of each item.")
    unknown_items: list[int | str] = Field(description="Session ids the model does not know.")


class BatchResponse(BaseModel):
    results: list[RecommendResponse]


def _message(error: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in error.get("loc", ()) if x != "body") or "body"
    return f"{loc}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over `max_bytes` (read bounded)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(int(declared), scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(len(body), scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, size: int, scope: dict, receive: Any, send: Any) -> None:
        detail = f"request body too large: {size} bytes or more (at most {self.max_bytes})"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class AdminGuard:
    """ASGI middleware: /admin/* answers 404 without an admin token (the endpoints are off)
    and 401 to a request without `Authorization: Bearer <token>`, before its body is read."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/admin" or path.startswith("/admin/")):
            return await self.app(scope, receive, send)
        if self.token is None:
            detail, status = "admin endpoints are off: start serve with --admin-token", 404
        else:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if hmac.compare_digest(given, b"Bearer " + self.token.encode()):
                return await self.app(scope, receive, send)
            why = "a wrong" if given else "no"
            detail, status = f"{why} admin token: send 'Authorization: Bearer <token>'", 401
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        await JSONResponse({"detail": detail}, status, headers)(scope, receive, send)


def _answer(rec: SessionRecommender, top: list[tuple[int, float]], unknown: list) -> dict:
    r = rec.to_original(top, unknown)
    return {"items": r.items, "scores": r.scores, "unknown_items": r.unknown_items}


@dataclass
class Serving:
    """What answers requests now: a recommender and its batcher, swapped whole by a reload,
    so one request never mixes two models' item ids."""

    rec: SessionRecommender
    batcher: DynamicBatcher


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_dir: str | None = Field(None, description="Run directory to serve (default: the same).")


class Reloader:
    """Hot reload: load the new run beside the old one, swap between requests, drain the old
    batcher. Workers of one service follow `reload_file`, so a reload reaches every one."""

    def __init__(self, now: Serving, cfg: ServeSettings, metrics: ServiceMetrics) -> None:
        self.now, self.cfg, self.metrics = now, cfg, metrics
        self.lock = asyncio.Lock()
        self.seen = self._stamp()
        self.reloads = 0
        self.task: asyncio.Task | None = None  # a reload another worker announced

    def _stamp(self) -> tuple[int, int] | None:
        if self.cfg.reload_file is None:
            return None
        try:
            stat = os.stat(self.cfg.reload_file)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    async def swap(self, run_dir: str) -> dict[str, Any]:
        async with self.lock:
            started = time.perf_counter()
            rec = await asyncio.to_thread(self.now.rec.reloaded, run_dir)
            batcher = _batcher(rec, self.cfg, self.metrics)
            await batcher.start()
            old, self.now = self.now, Serving(rec, batcher)
            await old.batcher.drain()
            self.reloads += 1
            await asyncio.to_thread(self.metrics.serving, rec.model.name, rec.run_dir, self.reloads)
            seconds = round(time.perf_counter() - started, 3)
            return {"model": rec.model.name, "run_dir": run_dir, "seconds": seconds}

    async def announce(self, run_dir: str) -> dict[str, Any]:
        """Reload here and tell the other workers (through `reload_file`)."""
        if self.cfg.reload_file is not None:
            atomic_write_text(self.cfg.reload_file, run_dir)
            self.seen = self._stamp()
        return await self.swap(run_dir)

    def follow(self) -> None:
        """Start a reload in the background when another worker announced one."""
        stamp = self._stamp()
        if stamp is None or stamp == self.seen or self.lock.locked():
            return
        self.seen = stamp
        run_dir = Path(str(self.cfg.reload_file)).read_text().strip()
        self.task = asyncio.get_running_loop().create_task(self._follow(run_dir))

    async def _follow(self, run_dir: str) -> None:
        try:
            await self.swap(run_dir)
        except SessionrecError as e:  # the old model keeps serving
            log.warning("not reloaded from %s: %s", run_dir, e)


def _batcher(
    rec: SessionRecommender, cfg: ServeSettings, metrics: ServiceMetrics
) -> DynamicBatcher:
    observe = metrics.batch.observe
    return DynamicBatcher(rec.top_k, cfg.batch_size, cfg.max_wait_ms, cfg.threaded, observe)


def create_app(rec: SessionRecommender, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving `rec` (already loaded: load-time work is done)."""
    cfg = settings or ServeSettings()
    metrics = ServiceMetrics()
    metrics.serving(rec.model.name, rec.run_dir, 0)
    reloader = Reloader(Serving(rec, _batcher(rec, cfg, metrics)), cfg, metrics)
    app = FastAPI(
        title="sessionrec",
        description=f"Next-item recommendations from a trained `{rec.model.name}` model.",
        version="1",
        lifespan=_lifespan,
    )
    app.state.reloader, app.state.settings = reloader, cfg
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ConfigError, _bad_request)
    app.include_router(routes)
    # Outermost last: metrics count what the admin guard and the body limit answer too.
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    app.add_middleware(AdminGuard, token=cfg.admin_token)
    paths = frozenset(str(getattr(r, "path", "")) for r in [*app.routes, *routes.routes])
    app.add_middleware(RequestMetrics, metrics=metrics, routes=paths)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the batcher of the model served now while the app runs."""
    reloader: Reloader = app.state.reloader
    await reloader.now.batcher.start()
    yield
    await reloader.now.batcher.stop()


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with a one-line `detail` and pydantic's errors (without the rejected input)."""
    errors = exc.errors()
    detail = "; ".join(_message(e) for e in errors[:3])
    safe = [{k: e.get(k) for k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse({"detail": detail, "errors": safe}, status_code=422)


async def _bad_request(request: Request, exc: ConfigError) -> JSONResponse:
    """422 with the ConfigError's message as `detail`."""
    return JSONResponse({"detail": str(exc)}, status_code=422)


# --------------------------------------------------------------------------- the routes
routes = APIRouter()


def _settings(request: Request) -> ServeSettings:
    return request.app.state.settings


def _reloader(request: Request) -> Reloader:
    return request.app.state.reloader


def _now(request: Request) -> Serving:
    """What answers this request, after taking up a reload another worker announced."""
    reloader = _reloader(request)
    reloader.follow()
    return reloader.now


def _check_k(k: int, cfg: ServeSettings) -> None:
    if not 1 <= k <= cfg.max_k:
        raise ConfigError(f"k must be between 1 and {cfg.max_k}, got {k}")


def _check_sessions(n: int, cfg: ServeSettings) -> None:
    if n > cfg.max_sessions:
        raise ConfigError(f"too many sessions: {n} (at most {cfg.max_sessions} per request)")


@routes.post("/recommend", response_model=RecommendResponse)
async def recommend(req: RecommendRequest, request: Request) -> JSONResponse:
    """Top-k next items for one session."""
    _check_k(req.k, _settings(request))
    rec, batcher = (serving := _now(request)).rec, serving.batcher
    p = rec.prepare(req.session)
    [top] = await batcher.submit([p.items], req.k, [rec.exclusions(req.exclude)])
    return JSONResponse(_answer(rec, top, p.unknown_items))


@routes.post("/recommend/batch", response_model=BatchResponse)
async def recommend_batch(req: BatchRequest, request: Request) -> JSONResponse:
    """Top-k next items for each of several sessions (one forward pass)."""
    cfg = _settings(request)
    _check_k(req.k, cfg)
    n = len(req.sessions)
    if n == 0:
        raise ConfigError("sessions is empty: give at least one session")
    _check_sessions(n, cfg)
    if req.exclude is not None and len(req.exclude) != n:
        raise ConfigError(
            f"exclude must have one list per session ({n} sessions, {len(req.exclude)} lists)"
        )
    rec, batcher = (serving := _now(request)).rec, serving.batcher
    prepared = [rec.prepare(s, f"sessions[{i}]") for i, s in enumerate(req.sessions)]
    exclude = [rec.exclusions(e) for e in req.exclude or []]
    top = await batcher.submit([p.items for p in prepared], req.k, exclude)
    results = [_answer(rec, t, p.unknown_items) for t, p in zip(top, prepared, strict=True)]
    return JSONResponse({"results": results})


@routes.post("/sessions", response_model=SessionsResponse)
async def sessions(req: SessionsRequest, request: Request) -> JSONResponse:
    """Completed sessions: logged in the run directory, then folded into the model (pop and
    the kNN models) before this answer, so the next /recommend reflects them."""
    _check_sessions(len(req.sessions), _settings(request))
    answer = await asyncio.to_thread(_now(request).rec.ingest, req.sessions)
    _reloader(request).metrics.ingested.inc(answer["sessions"])
    return JSONResponse(answer)


@routes.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Liveness: the model is loaded and the batcher runs."""
    model = _now(request).rec.model
    return {"status": "ok", "model": model.name, "num_items": model.num_items}


@routes.get("/model")
async def model_info(request: Request) -> dict[str, Any]:
    """Model name, hyper-parameters, item count, test metrics and serving limits."""
    serving = _now(request)
    limits = {k: v for k, v in asdict(_settings(request)).items() if k != "admin_token"}
    return {
        **serving.rec.info(),
        "serving": limits,
        "batcher": asdict(serving.batcher.stats),
        "reloads": _reloader(request).reloads,
    }


@routes.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format: requests by route and status, latency, batch sizes, model."""
    _now(request)  # take up a reload another worker announced, as every request does
    text = await asyncio.to_thread(_reloader(request).metrics.exposition)
    return Response(text, media_type=CONTENT_TYPE)


@routes.post("/admin/reload")
async def reload(req: ReloadRequest, request: Request) -> JSONResponse:
    """Serve another run (or the same one, retrained) without losing a request. AdminGuard
    has checked the bearer token before this runs."""
    reloader = _reloader(request)
    run_dir = req.run_dir or str(reloader.now.rec.run_dir)
    try:
        answer = await reloader.announce(run_dir)
    except SessionrecError as e:  # the old model keeps serving
        reloader.metrics.reloads.labels("failed").inc()
        return JSONResponse({"detail": f"not reloaded: {e}"}, 422)
    reloader.metrics.reloads.labels("ok").inc()
    return JSONResponse(answer)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings from `$SESSIONREC_SERVE`."""
    import torch

    spec = json.loads(os.environ[SETTINGS_ENV])
    torch.set_num_threads(int(spec.get("threads", 1)))
    rec = SessionRecommender.load(spec["run_dir"], **load_options(spec))
    rec.warmup()
    app = create_app(rec, ServeSettings(**spec["settings"]))
    if os.environ.get("SESSIONREC_GC_FREEZE", "1") == "1":
        import gc

        gc.collect()
        gc.freeze()  # long-lived objects leave the collector's view: shorter GC pauses
    return app
