"""Sessions that update a served model live: POST /sessions, `sessionrec update`, the log."""

import shutil
import signal

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from helpers import run_cli
from sessionrec.data.batching import collate
from sessionrec.data.dataset import build_dataset
from sessionrec.data.sources import load_dataset
from sessionrec.models import create
from sessionrec.rundir import SESSIONS_LOG_FILE as LOG_FILE
from sessionrec.serving import SessionRecommender
from sessionrec.serving.app import create_app
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate

ONLINE = ("pop", "itemknn", "sknn", "vsknn", "stan")


@pytest.mark.parametrize("name", ONLINE)
def test_adding_sessions_equals_fitting_on_them(tiny, name):
    sessions = tiny.train_sessions
    cut = len(sessions) * 3 // 4
    first, rest = sessions.select(np.arange(cut)), sessions
    fitted = [
        create(name, tiny.num_items).fit(build_dataset("t", s, tiny.test, valid_fraction=0.0))
        for s in (first, rest)
    ]
    fitted[0].add_sessions(sessions.select(np.arange(cut, len(sessions))))
    batch = collate(tiny.test, np.arange(200))
    assert torch.allclose(fitted[0].score_batch(batch), fitted[1].score_batch(batch))


@pytest.fixture()
def sknn_run(prepared_dir, tmp_path):
    run = tmp_path / "sknn"
    config = TrainConfig(num_threads=1)
    train_and_evaluate(create("sknn", 300), load_dataset(prepared_dir), config, run)
    return run


def test_posted_sessions_change_the_next_answer_and_survive_a_restart(sknn_run, sku):
    with TestClient(create_app(SessionRecommender.load(sknn_run))) as client:
        after = _post_and_recommend(client, sku)
    assert (sknn_run / LOG_FILE).read_text().count("\n") == 1
    restarted = SessionRecommender.load(sknn_run)  # a restart replays the log
    assert restarted.live_sessions == 31 and restarted.recommend([sku(7)], 5).items == after


def test_ingested_sessions_survive_a_sigkill_of_the_service(sknn_run, sku, serve_cli):
    """Acknowledged sessions are in the log before the answer: a killed service restarts
    with them."""
    with serve_cli(sknn_run) as url:
        with httpx.Client(base_url=url) as client:
            after = _post_and_recommend(client, sku)
        serve_cli.procs[-1].send_signal(signal.SIGKILL)
        serve_cli.procs[-1].wait(30)
    with serve_cli(sknn_run) as url:
        again = httpx.post(f"{url}/recommend", json={"session": [sku(7)], "k": 5}).json()
    assert again["items"] == after


def _post_and_recommend(client, sku):
    session = {"session": [sku(7)], "k": 5}
    before = client.post("/recommend", json=session).json()["items"]
    new = [sku(i) for i in (7, 251, 252)]  # 7 followed by two items it never led to
    body = {"sessions": [new] * 30 + [[sku(7), "never-seen"]]}
    answer = client.post("/sessions", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "sessions": 31, "clicks": 91, "unknown_items": ["never-seen"], "live_sessions": 31,
    }  # fmt: skip
    after = client.post("/recommend", json=session).json()["items"]
    assert after != before and {sku(251), sku(252)} <= set(after)
    return after


def test_another_worker_sees_the_sessions_before_its_next_answer(sknn_run, sku):
    one, two = SessionRecommender.load(sknn_run), SessionRecommender.load(sknn_run)
    before = two.recommend([sku(7)], 5).items
    one.ingest([[sku(7), sku(251), sku(252)]] * 30)
    assert two.recommend([sku(7)], 5).items != before and two.live_sessions == 30


def test_bad_sessions_and_models_that_cannot_learn_live_get_one_clear_error(sknn_run, stamp_run):
    with TestClient(create_app(SessionRecommender.load(sknn_run))) as client:
        _refused(client)
    assert not (sknn_run / LOG_FILE).exists()  # nothing was logged
    with TestClient(create_app(SessionRecommender.load(stamp_run))) as neural:
        answer = neural.post("/sessions", json={"sessions": [[1, 2]]})
    assert answer.status_code == 422
    assert "stamp learns new sessions only by training again" in answer.json()["detail"]


def _refused(client):
    for body, message in (
        ({"sessions": []}, "sessions must be a non-empty list"),
        ({"sessions": [[]]}, "sessions[0] must be a non-empty list"),
        ({"session": [1]}, "sessions: Field required"),
    ):
        answer = client.post("/sessions", json=body)
        assert answer.status_code == 422 and message in answer.json()["detail"], answer.text


def test_cli_update_logs_a_click_file_for_the_service(sknn_run, sku, tmp_path):
    rows = ["SessionId,ItemId,Time"] + [
        f"u{s},{sku(i)},{100 * s + k}" for s in range(30) for k, i in enumerate((7, 251, 252))
    ]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    copy = tmp_path / "copy"
    shutil.copytree(sknn_run, copy)
    command = ["update", str(copy), "--events", str(tmp_path / "new.csv")]
    done = run_cli(*command)
    assert done.returncode == 0 and "logged 30 sessions (90 clicks" in done.stdout, done.stderr
    rec = SessionRecommender.load(copy)
    assert rec.live_sessions == 30 and {sku(251), sku(252)} <= set(rec.recommend([sku(7)], 5).items)
