"""GET /metrics (Prometheus text format) and the admin rule: /admin/* needs a bearer token."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from sessionrec.commands.serve import _admin_note
from sessionrec.serving import SessionRecommender
from sessionrec.serving.app import ServeSettings, create_app
from sessionrec.serving.metrics import MULTIPROC_ENV, weights_id

AUTH = {"authorization": "Bearer s3cret"}


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics: (name, sorted labels) -> value."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def client_for(run, **settings) -> TestClient:
    return TestClient(create_app(SessionRecommender.load(run), ServeSettings(**settings)))


def send_requests(client: TestClient) -> None:
    """3 answered /recommend, 2 refused (422), 1 batch of 3 sessions, 1 oversize (413)."""
    for session in ([3], [3, 17], [42]):
        assert client.post("/recommend", json={"session": session}).status_code == 200
    assert client.post("/recommend", json={"session": []}).status_code == 422
    assert client.post("/recommend", content=b"{nope").status_code == 422
    batch = client.post("/recommend/batch", json={"sessions": [[1], [2, 3], [4]]})
    assert batch.status_code == 200
    assert client.post("/recommend", json={"session": list(range(900))}).status_code == 413


def test_metrics_count_exactly_what_was_sent(stamp_run):
    with client_for(stamp_run, max_body_bytes=2000) as client:
        send_requests(client)
        assert client.post("/metrics").status_code == 405
        samples = scrape(client)
    requests = "sessionrec_requests_total"
    assert value(samples, requests, route="/recommend", status="200") == 3
    assert value(samples, requests, route="/recommend", status="422") == 2
    assert value(samples, requests, route="/recommend", status="413") == 1
    assert value(samples, requests, route="/recommend/batch", status="200") == 1
    assert value(samples, requests, route="/metrics", status="405") == 1
    latency = "sessionrec_request_seconds_count"
    assert value(samples, latency, route="/recommend") == 6
    assert value(samples, "sessionrec_request_seconds_bucket", route="/recommend", le="+Inf") == 6
    # one forward pass per answered request (sequential): sizes 1, 1, 1 and 3
    assert value(samples, "sessionrec_batch_sessions_count") == 4
    assert value(samples, "sessionrec_batch_sessions_sum") == 6
    assert value(samples, "sessionrec_batch_sessions_bucket", le="2.0") == 3
    model = {"model": "stamp", "run_dir": str(stamp_run), "weights": weights_id(stamp_run)}
    assert len(model["weights"]) == 12
    assert value(samples, "sessionrec_model_info", **model) == 1
    assert value(samples, "sessionrec_model_generation") == 0


def test_paths_the_app_does_not_serve_share_one_label(stamp_run):
    with client_for(stamp_run) as client:
        for path in ("/nope", "/x/y", "/favicon.ico"):
            assert client.get(path).status_code == 404
        samples = scrape(client)
    assert value(samples, "sessionrec_requests_total", route="other", status="404") == 3
    assert not any(dict(labels).get("route") == "/nope" for _, labels in samples)


def test_ingested_sessions_and_reloads_are_counted(pop_run, stamp_run, tmp_path):
    with client_for(pop_run, admin_token="s3cret") as client:
        taken = client.post("/sessions", json={"sessions": [[3, 17, 5], [4, 2]]})
        assert taken.status_code == 200, taken.text
        bad = client.post("/admin/reload", json={"run_dir": str(tmp_path)}, headers=AUTH)
        assert bad.status_code == 422
        ok = client.post("/admin/reload", json={"run_dir": str(stamp_run)}, headers=AUTH)
        assert ok.status_code == 200, ok.text
        samples = scrape(client)
    assert value(samples, "sessionrec_ingested_sessions_total") == 2
    assert value(samples, "sessionrec_reloads_total", result="ok") == 1
    assert value(samples, "sessionrec_reloads_total", result="failed") == 1
    assert value(samples, "sessionrec_model_generation") == 1
    old = {"model": "pop", "run_dir": str(pop_run), "weights": weights_id(pop_run)}
    new = {"model": "stamp", "run_dir": str(stamp_run), "weights": weights_id(stamp_run)}
    assert value(samples, "sessionrec_model_info", **new) == 1
    assert ("sessionrec_model_info", tuple(sorted(old.items()))) in samples
    assert value(samples, "sessionrec_model_info", **old) == 0


def test_two_apps_in_one_process_count_apart(pop_run):
    with client_for(pop_run) as one, client_for(pop_run) as two:
        one.post("/recommend", json={"session": [3]})
        assert value(scrape(one), "sessionrec_requests_total", route="/recommend", status="200")
        assert not value(scrape(two), "sessionrec_requests_total", route="/recommend", status="200")


def test_workers_report_their_sum(pop_run, tmp_path, monkeypatch):
    """--workers N: every worker writes to $PROMETHEUS_MULTIPROC_DIR; /metrics sums them."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    clients = []
    for pid in (101, 102):  # two worker processes, as prometheus_client tells them apart
        monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda p=pid: p))
        clients.append(client_for(pop_run))
        with clients[-1] as client:
            for _ in range(pid - 99):  # 2 requests to the first, 3 to the second
                assert client.post("/recommend", json={"session": [3]}).status_code == 200
    with clients[0] as client:
        samples = scrape(client)
    assert value(samples, "sessionrec_requests_total", route="/recommend", status="200") == 5
    assert value(samples, "sessionrec_batch_sessions_count") == 5
    model = {"model": "pop", "run_dir": str(pop_run), "weights": weights_id(pop_run)}
    assert value(samples, "sessionrec_model_info", **model) == 1


@pytest.mark.parametrize(
    "path,headers,status,message",
    [
        ("/admin/reload", {}, 401, "no admin token: send 'Authorization: Bearer <token>'"),
        ("/admin/reload", {"authorization": "Bearer nope"}, 401, "a wrong admin token"),
        ("/admin/reload", {"authorization": "s3cret"}, 401, "a wrong admin token"),
        ("/admin/other", {}, 401, "no admin token"),
        ("/admin/other", AUTH, 404, "Not Found"),
    ],
)
def test_admin_needs_the_bearer_token(pop_run, path, headers, status, message):
    with client_for(pop_run, admin_token="s3cret") as client:
        r = client.post(path, content=b"{not json", headers=headers)  # refused before parsing
        assert r.status_code == status and message in r.json()["detail"], r.text
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"
        assert client.get("/model").json()["model"] == "pop"


def test_admin_is_off_without_a_token(pop_run):
    with client_for(pop_run) as client:
        for path in ("/admin/reload", "/admin/other"):
            r = client.post(path, json={}, headers=AUTH)
            assert r.status_code == 404
            assert r.json()["detail"] == "admin endpoints are off: start serve with --admin-token"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_no_note_on_loopback(host, capsys):
    _admin_note(host, None)
    assert capsys.readouterr().out == ""


def test_a_note_when_binding_other_machines_without_a_token(capsys):
    _admin_note("0.0.0.0", None)
    assert "/admin/* is off (404)" in capsys.readouterr().out
    _admin_note("0.0.0.0", "s3cret")
    assert capsys.readouterr().out == ""


def test_metrics_answer_while_requests_run(stamp_run):
    """A scrape between requests neither blocks nor breaks the batcher."""

    async def main() -> None:
        import httpx

        app = create_app(SessionRecommender.load(stamp_run))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
        ):
            answers = await asyncio.gather(
                *(c.post("/recommend", json={"session": [i]}) for i in range(1, 9)),
                c.get("/metrics"),
            )
        assert {a.status_code for a in answers} == {200}

    asyncio.run(main())
