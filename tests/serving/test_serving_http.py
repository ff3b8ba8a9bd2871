"""The HTTP service: answers and every bad request, through TestClient and a live uvicorn
server on a free loopback port; the `serve` and `recommend` commands as a user runs them."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

import helpers
from sessionrec.commands.serve import serve
from sessionrec.errors import ConfigError, RunError
from sessionrec.serving import SessionRecommender
from sessionrec.serving.app import ServeSettings, create_app

LIMITS = ServeSettings(max_k=50, max_sessions=4, max_body_bytes=2000, max_wait_ms=0.0)

# (path, JSON body or raw bytes, status, a piece of the message)
BAD_REQUESTS = [
    ("/recommend", {"session": []}, 422, "session is empty: give at least one item id"),
    ("/recommend", {"session": "3,17"}, 422, "session: Input should be a valid list"),
    ("/recommend", {"session": 3}, 422, "session: Input should be a valid list"),
    ("/recommend", {"session": [1.5]}, 422, "session.0: item ids must be strings or integers"),
    ("/recommend", {"session": [None]}, 422, "item ids must be strings or integers, got None"),
    ("/recommend", {"session": [3], "k": 0}, 422, "k must be between 1 and 50, got 0"),
    ("/recommend", {"session": [3], "k": -2}, 422, "k must be between 1 and 50, got -2"),
    ("/recommend", {"session": [3], "k": 51}, 422, "k must be between 1 and 50, got 51"),
    ("/recommend", {"session": [3], "k": "5"}, 422, "k: Input should be a valid integer"),
    ("/recommend", {"session": [999, "x"]}, 422, "none of its items is known to the model"),
    ("/recommend", {}, 422, "session: Field required"),
    ("/recommend", {"items": [3]}, 422, "items: Extra inputs are not permitted"),
    ("/recommend", [3, 17], 422, "Input should be a valid dictionary"),
    ("/recommend", b"{not json", 422, "JSON decode error"),
    ("/recommend", {"session": list(range(1, 1000))}, 413, "request body too large"),
    ("/recommend/batch", {"sessions": []}, 422, "sessions is empty"),
    ("/recommend/batch", {"sessions": [[1]] * 5}, 422, "too many sessions: 5 (at most 4"),
    ("/recommend/batch", {"sessions": [3]}, 422, "sessions.0: Input should be a valid list"),
    ("/recommend/batch", {"sessions": [[3], []]}, 422, "sessions[1] is empty"),
    ("/recommend/batch", {"sessions": [[3], ["x"]]}, 422, "sessions[1]: none of its items"),
    ("/recommend/batch", {"sessions": [[3]], "k": 0}, 422, "k must be between 1 and 50"),
    ("/recommend/batch", {"sessions": [[3]], "exclude": []}, 422, "one list per session"),
    ("/metrics", {}, 405, "Method Not Allowed"),
    ("/admin/reload", {}, 404, "admin endpoints are off: start serve with --admin-token"),
]


def post(client, path, body):
    if isinstance(body, bytes):
        return client.post(path, content=body, headers={"content-type": "application/json"})
    return client.post(path, json=body)


@pytest.fixture(scope="module")
def rec(stamp_run):
    return SessionRecommender.load(stamp_run)


@pytest.fixture(scope="module")
def client(rec):
    with TestClient(create_app(rec, LIMITS)) as c:
        yield c


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(app):
    """uvicorn serving `app` in a thread on a free loopback port; yields the base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def live(rec):
    app = create_app(rec, ServeSettings(**{**vars(LIMITS), "max_wait_ms": 20}))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def check_answers(c, rec):
    r = c.post("/recommend", json={"session": [3, 17, "nope", 5], "k": 5})
    assert r.status_code == 200, r.text
    want = rec.recommend([3, 17, 5], k=5)
    body = r.json()
    assert body["items"] == want.items and body["unknown_items"] == ["nope"]
    assert body["scores"] == pytest.approx(want.scores, abs=1e-5)
    r = c.post("/recommend", json={"session": [3, 17, 5], "k": 5, "exclude": [want.items[0]]})
    assert r.json()["items"] == want.items[1:] + r.json()["items"][4:]
    r = c.post("/recommend/batch", json={"sessions": [[3, 17, 5], [42]], "k": 3})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["items"] for x in results] == [want.items[:3], rec.recommend([42], k=3).items]
    assert c.get("/health").json() == {"status": "ok", "model": "stamp", "num_items": 300}
    info = c.get("/model").json()
    assert info["model"] == "stamp" and info["num_items"] == 300
    assert "hr@20" in info["metrics"]["test"] and "dim" in str(info["params"])
    assert info["serving"]["max_k"] == 50
    paths = c.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/recommend/batch", "/health", "/model"} <= set(paths)
    assert "swagger" in c.get("/docs").text.lower()


def test_answers_testclient(client, rec):
    check_answers(client, rec)


def test_answers_live(live, rec):
    check_answers(live, rec)


@pytest.mark.parametrize("path,body,status,message", BAD_REQUESTS)
def test_bad_requests_testclient(client, path, body, status, message):
    r = post(client, path, body)
    assert r.status_code == status and message in r.json()["detail"], r.text


@pytest.mark.parametrize("path,body,status,message", BAD_REQUESTS)
def test_bad_requests_live(live, path, body, status, message):
    r = post(live, path, body)
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_live_oversize_chunked_body_and_wrong_method(live):
    def chunks():
        for _ in range(10):
            yield b" " * 500

    r = live.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most 2000" in r.json()["detail"]
    assert live.get("/recommend").status_code == 405
    assert live.post("/recommend", json={"session": [3]}).status_code == 200  # still serving


def test_live_concurrent_requests_share_forward_passes(live, rec):
    before = live.get("/model").json()["batcher"]
    sessions = [[i, i + 1] for i in range(1, 25)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda s: live.post("/recommend", json={"session": s, "k": 5}), sessions)
        )
    assert all(a.status_code == 200 for a in answers)
    for s, a in zip(sessions, answers, strict=True):
        assert a.json()["items"] == rec.recommend(s, k=5).items
    after = live.get("/model").json()["batcher"]
    assert after["requests"] - before["requests"] == len(sessions)
    assert after["batches"] - before["batches"] < len(sessions)  # some requests were merged


run_cli = partial(helpers.run_cli, check=True, timeout=120)


def cli_items(stdout: str) -> list[str]:
    rows = [line.strip("│ ").split("│") for line in stdout.splitlines()]
    return [r[1].strip() for r in rows if len(r) == 3 and r[0].strip().isdigit()]


@pytest.mark.parametrize("which", ["stamp_run", "prepared_run"])
def test_cli_recommend_prints_the_apis_top_k(which, request, sku):
    run_dir = request.getfixturevalue(which)
    unknown = 9999 if which == "stamp_run" else "unknown-1"
    session = [3, 17, unknown, 5] if which == "stamp_run" else [sku(3), sku(17), unknown, sku(5)]
    with TestClient(create_app(SessionRecommender.load(run_dir))) as c:
        api = c.post("/recommend", json={"session": session, "k": 10}).json()
    proc = run_cli("recommend", run_dir, "--session", ",".join(map(str, session)), "--k", 10)
    assert cli_items(proc.stdout) == [str(i) for i in api["items"]]
    assert api["unknown_items"] == [unknown]
    assert f"unknown items (dropped): {unknown}" in proc.stdout


def test_cli_recommend_errors(stamp_run, prepared_run):
    from sessionrec.commands.recommend import recommend

    with pytest.raises(ConfigError, match="comma-separated integer item ids"):
        recommend(stamp_run, "3,x", 5)
    with pytest.raises(ConfigError, match="none of its items is known"):
        recommend(prepared_run, "nope,3", 5)


def test_serve_command(prepared_run, sku, serve_cli):
    with serve_cli(prepared_run) as url:
        r = httpx.post(f"{url}/recommend", json={"session": [sku(3), "zz"], "k": 3})
        assert r.status_code == 200 and r.json()["unknown_items"] == ["zz"]
        assert all(i.startswith("sku-") for i in r.json()["items"])
        assert json.loads(httpx.get(f"{url}/model").text)["item_ids"] == "original"


def test_serve_refuses_bad_flags_and_runs(prepared_run, tmp_path):
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        serve(prepared_run, workers=0)
    with pytest.raises(ConfigError, match="--port must be in 1..65535"):
        serve(prepared_run, port=70000)
    with pytest.raises(RunError, match="not a run directory"):
        serve(tmp_path / "nonexistent")
