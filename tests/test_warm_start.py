"""--init-from: continue from a trained run on data with a grown, renumbered item vocabulary."""

import numpy as np
import pytest
import torch

from helpers import run_cli
from sessionrec.data.prepared import write_prepared
from sessionrec.data.sessions import Sessions
from sessionrec.data.sources import load_dataset
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.models.registry import load_run
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate
from sessionrec.training.warm_start import warm_start

N, NEW = 300, 20
HP = {"embedding_dim": 16}


@pytest.fixture(scope="module")
def data(tiny, tmp_path_factory):
    """Yesterday's data (ids sku-1..sku-300) and today's: the same items numbered in reverse,
    20 new items, and sessions that use them."""
    root = tmp_path_factory.mktemp("warm")
    sessions = tiny.train_sessions.select(np.arange(1500))
    test = tiny.train_sessions.select(np.arange(1500, 1700))
    old = write_prepared(root / "old", sessions, test, [f"sku-{i}" for i in range(1, N + 1)], {})
    flip = np.concatenate([[0], np.arange(N, 0, -1)])  # old internal id -> new internal id
    rng = np.random.default_rng(0)
    extra = Sessions.from_lists(rng.integers(N + 1, N + NEW + 1, (200, 4)).tolist())
    renumbered = Sessions(flip[sessions.items], sessions.offsets).concat(extra)
    ids = [f"sku-{i}" for i in range(N, 0, -1)] + [f"new-{k}" for k in range(NEW)]
    new = write_prepared(
        root / "new", renumbered, Sessions(flip[test.items], test.offsets), ids, {}
    )
    run = root / "run"
    config = TrainConfig(epochs=1, batch_size=256, num_threads=1)
    train_and_evaluate(create("stamp", N, **HP), load_dataset(old), config, run)
    return run, new


def test_known_items_keep_their_rows_and_new_items_start_fresh(data):
    run, new = data
    dataset = load_dataset(new)
    model, fresh = create("stamp", N + NEW, **HP), create("stamp", N + NEW, **HP)
    report = warm_start(model, dataset, run)
    assert report == {"items_kept": N, "items_new": NEW, "items_dropped": 0, "fresh_tensors": []}
    old = load_run(run)[0].net.state_dict()
    now, init = model.net.state_dict(), fresh.net.state_dict()
    table = next(k for k, v in old.items() if v.shape[0] == N + 1)
    assert torch.equal(now[table][1 : N + 1], old[table].flip(0)[:N])  # sku-300 is now id 1
    assert torch.equal(now[table][N + 1 :], init[table][N + 1 :])
    others = [k for k, v in old.items() if v.shape[0] != N + 1]
    assert others and all(torch.equal(now[k], old[k]) for k in others)


def test_another_model_or_other_hyper_parameters_are_refused(data):
    run, new = data
    dataset = load_dataset(new)
    with pytest.raises(ConfigError, match="holds a 'stamp' run, not 'narm'"):
        warm_start(create("narm", N + NEW), dataset, run)
    with pytest.raises(ConfigError, match="needs the run's hyper-parameters"):
        warm_start(create("stamp", N + NEW, embedding_dim=8), dataset, run)


def test_cli_trains_from_the_run(data, tmp_path):
    run, new = data
    done = run_cli(
        "train", "stamp", "--dataset", new, "--init-from", run, "--epochs", 1,
        "--set", "embedding_dim=16", "--set", "num_threads=1", "--out", tmp_path / "today",
        "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{N:,} items kept, {NEW} new, 0 no longer in the data" in done.stdout
