"""Each model's own training settings (the authors'): declared, shown, applied, overridable."""

import json

import pytest

from helpers import run_cli
from sessionrec.data.synthetic import make_synthetic
from sessionrec.errors import ConfigError
from sessionrec.models import available, get
from sessionrec.models.params import build_params
from sessionrec.models.registry import train_config
from sessionrec.reproduce.budget import Budget
from sessionrec.reproduce.runner import make_job, split_sets
from sessionrec.training.config import TrainConfig

AUTHORS = {  # the authors' code, as docs/baselines-*.md record it
    "srgnn": dict(batch_size=100, lr=1e-3, weight_decay=1e-5, lr_decay=0.1, lr_decay_every=3),
    "gcegnn": dict(batch_size=100, lr=1e-3, weight_decay=1e-5, lr_decay=0.1, lr_decay_every=3),
    "dhcn": dict(batch_size=100, lr=1e-3, weight_decay=0.0, lr_decay_every=0),
    "narm": dict(batch_size=512, lr=1e-3, weight_decay=0.0),
    "stamp": dict(batch_size=512, lr=3e-3, weight_decay=0.0),
    "repeatnet": dict(batch_size=1024, weight_decay=0.0, grad_clip=5.0, lr_decay=0.5),
    "focol": dict(batch_size=100, lr=1e-3, weight_decay=1e-5, lr_decay_every=0),
}


@pytest.mark.parametrize("model", sorted(AUTHORS))
def test_models_carry_their_authors_training_settings(model):
    config = train_config(model)
    for key, value in AUTHORS[model].items():
        assert getattr(config, key) == value, key
    assert get(model).train_source  # says where they come from


def test_every_declared_default_is_a_valid_training_setting():
    for name in available():
        cls = get(name)
        assert set(cls.train_defaults) <= set(TrainConfig.__dataclass_fields__), name
        assert not set(cls.train_defaults) & set(cls.own_train_settings), name
        train_config(name).validate()


def test_user_settings_win_over_the_models():
    config = train_config("srgnn", {"lr": "0.01", "lr_decay_every": "0"})
    assert (config.lr, config.lr_decay_every, config.lr_decay) == (0.01, 0, 0.1)


def test_reproduce_jobs_get_model_defaults_below_sets_and_rows_can_set_training():
    data = make_synthetic(num_items=100, num_categories=5, num_sessions=200, seed=0)
    job = make_job("srgnn", {}, data, Budget(sets={"lr": "0.002"}), seed=0)
    assert (job.train["lr"], job.train["lr_decay"], job.train["batch_size"]) == (0.002, 0.1, 100)
    row = make_job("srgnn", {"lr_decay": 1.0, "hidden_size": 16}, data, Budget(), seed=0)
    assert row.train["lr_decay"] == 1.0 and row.params["hidden_size"] == 16
    with pytest.raises(ConfigError, match="'warmup' is no setting of srgnn"):
        make_job("srgnn", {"warmup": 3}, data, Budget(), seed=0)


def test_authors_per_dataset_settings_apply_below_the_users_own():
    """GCE-GNN's main.py sets 2 hops and GCN dropout 0.2 for Diginetica; GRU4Rec's paramfile."""
    data = make_synthetic(num_items=100, num_categories=5, num_sessions=200, seed=0)
    assert make_job("gcegnn", {}, data, Budget(), seed=0).params["hops"] == 1  # no preset
    data.name = "diginetica"
    job = make_job("gcegnn", {}, data, Budget(sets={"dropout_gcn": "0.1"}), seed=0)
    assert (job.params["hops"], job.params["dropout_gcn"]) == (2, 0.1)
    gru = make_job("gru4rec", {}, data, Budget(), seed=0).params
    assert (gru["layers"], gru["batch_size"], gru["final_act"]) == ([512], 128, "elu")
    assert (gru["learning_rate"], gru["momentum"], gru["sample_alpha"]) == (0.05, 0.15, 0.3)
    for name in available():  # every preset is a valid configuration of its model
        for preset in get(name).dataset_presets.values():
            model_hp, train_hp = split_sets(name, preset)
            assert set(model_hp) | set(train_hp) == set(preset), name
            build_params(get(name).Params, model_hp, name)
            assert get(name).presets_source


def test_srgnn_lr_per_epoch_follows_its_step_schedule(tiny, tmp_path):
    """SR-GNN's code: lr 1e-3, × 0.1 after every 3 epochs (set at each epoch's start)."""
    from sessionrec.models import create
    from sessionrec.training.run import train_and_evaluate

    model = create("srgnn", tiny.num_items, hidden_size=8)
    config = train_config("srgnn", {"epochs": 7, "patience": 99, "batch_size": 512})
    train_and_evaluate(model, tiny, config, tmp_path / "run")
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    lrs = [r["lr"] for r in map(json.loads, log) if r["event"] == "epoch"]
    assert lrs == pytest.approx([1e-3] * 3 + [1e-4] * 3 + [1e-5])


def test_cli_shows_and_applies_the_defaults(tmp_path):
    def cli(*args):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = cli("models", "show", "srgnn")
    assert "lr_decay_every" in shown and "SR-GNN code, pytorch_code/main.py" in shown
    assert "on diginetica: hops=2 dropout_gcn=0.2" in cli("models", "show", "gcegnn")
    run = tmp_path / "run"
    cli(
        "train",
        "stamp",
        "--epochs",
        "1",
        "--out",
        str(run),
        "--no-progress",
        "--set",
        "max_minutes=0.05",
        "--set",
        "embedding_dim=8",
    )
    train = json.loads((run / "config.json").read_text())["train"]
    assert (train["lr"], train["batch_size"], train["weight_decay"]) == (3e-3, 512, 0.0)


def test_paper_protocol_refits_on_every_example_for_the_selected_epochs(tiny, tmp_path):
    from sessionrec.data.sources import reload_dataset
    from sessionrec.models import create
    from sessionrec.training.run import evaluate_run, train_paper_protocol

    run = tmp_path / "paper"
    config = train_config("stamp", {"epochs": 3, "patience": 5, "batch_size": 256})
    metrics = train_paper_protocol(
        lambda: create("stamp", tiny.num_items, embedding_dim=8),
        lambda fraction: reload_dataset(dict(tiny.source, valid_fraction=fraction)),
        0.1,
        config,
        run,
    )

    def epochs(phase):
        log = (run / phase / "log.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, log) if r["event"] == "epoch"]

    selected = json.loads((run / "select" / "metrics.json").read_text())["best_epoch"]
    refit = epochs("refit")
    assert metrics["best_epoch"] == selected == len(refit) and len(epochs("select")) == 3
    fit_examples = len(tiny.train) + len(tiny.valid)  # every training example
    assert refit[0]["steps"] == -(-fit_examples // 256)
    assert metrics["valid"] == json.loads((run / "select" / "metrics.json").read_text())["valid"]
    assert metrics["test"] == json.loads((run / "refit" / "metrics.json").read_text())["test"]
    assert json.loads((run / "config.json").read_text())["protocol"] == "paper"
    assert evaluate_run(run)["test"] == pytest.approx(metrics["test"])


def test_settings_split_in_one_place_and_own_settings_are_said():
    from sessionrec.models.registry import split_settings, unused_setting_error
    from sessionrec.reproduce.pipeline import Options, reproduce

    values = {"learning_rate": 0.1, "lr": 1e-3, "epochs": 3, "foo": 1}
    assert split_settings("gru4rec", values) == (
        {"learning_rate": 0.1},
        {"epochs": 3},
        ["lr", "foo"],
    )
    assert "sets 'lr' through its own hyper-parameters" in str(
        unused_setting_error("gru4rec", "lr")
    )
    assert "unknown setting 'foo' for gru4rec" in str(unused_setting_error("gru4rec", "foo"))
    said: list[str] = []
    budget = Budget(epochs=1, sets={"lr": "0.01"})
    options = Options(
        budget=budget, datasets=["synthetic"], models=["gru4rec", "narm"], dry_run=True
    )
    reproduce("linet-table1", options, say=said.append)
    notes = [line for line in said if line.startswith("note:")]
    assert notes == [
        "note: gru4rec sets lr through its own hyper-parameters; --set lr does not apply to it"
    ]


def test_a_recipe_applies_above_the_authors_settings_and_below_the_users_own():
    from sessionrec.commands.train import _settings
    from sessionrec.errors import ConfigError

    said = []

    def settings(sets=None, recipe="cpu", **given):
        flags = {"epochs": None, "batch_size": None, "lr": None, **given}
        return _settings(
            "focol",
            "diginetica",
            sets,
            flags,
            0,
            "cpu",
            lambda text, **_: said.append(text),
            recipe,
        )[1]

    plain = settings(recipe=None)
    assert (plain.batch_size, plain.lr, plain.weight_decay, plain.lr_schedule) == (
        100,
        1e-3,
        1e-5,
        "step",
    )
    cpu = settings()
    assert (cpu.batch_size, cpu.lr, cpu.weight_decay, cpu.amp) == (512, 2e-3, 0.0, "auto")
    assert (cpu.lr_schedule, cpu.lr_decay, cpu.max_minutes) == ("step", 1.0, 150.0)  # constant
    assert said[-1] == (
        "recipe cpu: batch_size=512 lr=0.002 weight_decay=0.0 amp=auto max_minutes=150.0"
    )
    mine = settings(["max_minutes=60", "lr_final=0.1"], lr=1e-3)
    assert (mine.max_minutes, mine.lr_final, mine.lr, mine.batch_size) == (60.0, 0.1, 1e-3, 512)
    with pytest.raises(ConfigError, match="focol has no recipe 'gpu' \\(its recipes: cpu\\)"):
        settings(recipe="gpu")
    for name in available():  # every recipe is a valid configuration of its model
        for recipe in get(name).recipes.values():
            model_hp, train_hp = split_sets(name, recipe)
            assert set(model_hp) | set(train_hp) == set(recipe), name
            train_config(name, train_hp).validate()
