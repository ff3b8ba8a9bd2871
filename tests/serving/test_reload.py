"""Hot reload: POST /admin/reload swaps the served run without losing a request."""

import threading
import time

from fastapi.testclient import TestClient

from sessionrec.serving import SessionRecommender
from sessionrec.serving.app import ServeSettings, create_app

AUTH = {"authorization": "Bearer s3cret"}


def client_for(run, **settings) -> TestClient:
    return TestClient(create_app(SessionRecommender.load(run), ServeSettings(**settings)))


def test_a_reload_under_load_loses_no_request_and_switches_at_once(pop_run, stamp_run):
    statuses, stop = [], threading.Event()
    with client_for(pop_run, admin_token="s3cret") as client:

        def load() -> None:
            while not stop.is_set():
                answer = client.post("/recommend", json={"session": [3, 17], "k": 10})
                statuses.append(answer.status_code)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        reload = client.post("/admin/reload", json={"run_dir": str(stamp_run)}, headers=AUTH)
        after = client.get("/model").json()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
    assert reload.status_code == 200 and reload.json()["model"] == "stamp", reload.text
    assert after["model"] == "stamp" and after["reloads"] == 1  # the very next request
    assert len(statuses) > 20 and set(statuses) == {200}


def test_reload_needs_its_token_and_a_good_run(pop_run, tmp_path):
    with client_for(pop_run) as off:
        assert off.post("/admin/reload", json={}, headers=AUTH).status_code == 404
    with client_for(pop_run, admin_token="s3cret") as client:
        assert client.post("/admin/reload", json={}).status_code == 401
        bad = client.post("/admin/reload", json={"run_dir": str(tmp_path)}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["detail"].startswith("not reloaded: ")
        assert client.get("/model").json()["model"] == "pop"  # the old run still serves
        same = client.post("/admin/reload", json={}, headers=AUTH)  # the same run, again
        assert same.status_code == 200 and same.json()["run_dir"] == str(pop_run)


def test_every_worker_follows_a_reload(pop_run, stamp_run, tmp_path):
    shared = {"admin_token": "s3cret", "reload_file": str(tmp_path / "reload")}
    with client_for(pop_run, **shared) as one, client_for(pop_run, **shared) as two:
        one.post("/admin/reload", json={"run_dir": str(stamp_run)}, headers=AUTH)
        deadline = time.monotonic() + 30
        while two.get("/model").json()["model"] != "stamp":  # each request checks the file
            assert time.monotonic() < deadline, "the second worker did not follow"
            time.sleep(0.05)
        assert two.post("/recommend", json={"session": [3, 17]}).status_code == 200
