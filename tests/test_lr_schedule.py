"""Learning-rate schedules: hand-computed factors, the rate of every step in a real fit, exact
resumption, and the budget horizon's last (cut) epoch as a selection candidate."""

import itertools
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.training import trainer as trainer_module
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import prepare_resume, train_and_evaluate
from sessionrec.training.schedule import decay_factor, warmup_factor

FAST = dict(epochs=2, batch_size=128, lr=3e-3, checkpoint_seconds=0.0, log_every=10)


def test_factors_by_hand():
    assert decay_factor("linear", 0.0, 0.1) == 1.0
    assert decay_factor("linear", 0.5, 0.1) == pytest.approx(0.55)
    assert decay_factor("linear", 1.0, 0.1) == pytest.approx(0.1)
    assert decay_factor("linear", 1.7, 0.0) == 0.0  # past the horizon: the final rate
    assert decay_factor("cosine", 0.5, 0.1) == pytest.approx(0.55)
    # 0.1 + 0.9 * (1 + cos(pi / 4)) / 2 = 0.1 + 0.9 * 0.8535534
    assert decay_factor("cosine", 0.25, 0.1) == pytest.approx(0.8681981, abs=1e-7)
    assert [warmup_factor(u, 4) for u in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def _step_lrs(model, data, config, run_dir=None):
    """The learning rate of every optimiser step of a fit."""
    seen = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"])
    )
    try:
        train_and_evaluate(model, data, config, run_dir)
    finally:
        handle.remove()
    return seen


def test_linear_decay_with_warmup_sets_every_steps_rate(tiny, tmp_path):
    config = TrainConfig(**FAST, lr_schedule="linear", lr_warmup_steps=3, patience=5)
    lrs = _step_lrs(create("stamp", tiny.num_items), tiny, config, tmp_path / "run")
    total = len(lrs)
    assert total == 2 * math.ceil(len(tiny.train) / 128)
    # before step i: progress i / total, warm-up min(1, (i + 1) / 3)
    expected = [3e-3 * (1 - i / total) * min(1.0, (i + 1) / 3) for i in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_step_schedule_is_unchanged(tiny):
    config = TrainConfig(**dict(FAST, epochs=3), lr_decay=0.5, lr_decay_every=2, patience=5)
    lrs = _step_lrs(create("stamp", tiny.num_items), tiny, config)
    n = len(lrs) // 3
    assert lrs == [3e-3] * (2 * n) + [1.5e-3] * n


def test_a_run_cut_mid_schedule_resumes_to_identical_weights(tiny, tmp_path, monkeypatch):
    cfg = dict(FAST, patience=5, lr_schedule="cosine", lr_final=0.1, lr_warmup_steps=5)
    reference = create("stamp", tiny.num_items, seed=0)
    train_and_evaluate(reference, tiny, TrainConfig(**cfg), tmp_path / "ref")
    calls = itertools.count(1)
    real_collate = trainer_module.collate

    def dying_collate(*args, **kwargs):
        if next(calls) == 130:  # 35 steps into the second epoch (95 an epoch)
            raise KeyboardInterrupt
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(
            create("stamp", tiny.num_items, seed=0), tiny, TrainConfig(**cfg), tmp_path / "cut"
        )
    monkeypatch.setattr(trainer_module, "collate", real_collate)
    model, data, config = prepare_resume(tmp_path / "cut", "stamp")
    train_and_evaluate(model, data, config, tmp_path / "cut", resume=True)
    for name, value in reference.net.state_dict().items():
        assert torch.equal(value, model.net.state_dict()[name]), name


class _Clock:
    """A monotonic clock that advances one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


def _fit_on_clock(tiny, monkeypatch, **settings):
    clock = _Clock()
    monkeypatch.setattr(trainer_module, "time", clock)
    model = create("stamp", tiny.num_items, seed=0)
    model.fit(tiny, TrainConfig(**dict(FAST, patience=5, **settings)))
    return model, [r for r in model.fit_history if r["event"] == "epoch"]


def test_budget_horizon_decays_to_the_final_rate_and_keeps_the_cut_epoch(tiny, monkeypatch):
    _, whole = _fit_on_clock(tiny, monkeypatch)
    budget = 1.5 * whole[0]["seconds"] / 60  # the clock's minutes for one and a half epochs
    settings = dict(max_minutes=budget, lr_schedule="linear", lr_final=0.05)
    model, epochs = _fit_on_clock(tiny, monkeypatch, lr_horizon="budget", **settings)
    assert [e.get("partial", False) for e in epochs] == [False, True]
    assert epochs[-1]["lr"] == pytest.approx(3e-3 * 0.05)  # the budget is spent: final rate
    assert epochs[-1]["valid"]["mrr@20"] > epochs[0]["valid"]["mrr@20"]
    assert model.best_epoch == 2  # the cut epoch, better on validation, is kept
    # over the epochs instead, the cut epoch is no candidate (a resume would finish it)
    model, epochs = _fit_on_clock(tiny, monkeypatch, **settings)
    assert epochs[-1]["partial"] and model.best_epoch == 1


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(lr_schedule="exponential"), "lr_schedule must be one of step, linear, cosine"),
        (dict(lr_horizon="budget"), "lr_horizon=budget needs a time budget"),
        (dict(lr_horizon="steps"), "lr_horizon must be one of epochs, budget"),
        (dict(lr_final=1.5), "lr_final must be in"),
        (dict(lr_warmup_steps=-1), "lr_warmup_steps >= 0"),
    ],
)
def test_bad_schedule_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings).validate()
