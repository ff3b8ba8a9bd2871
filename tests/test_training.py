import json

import pytest
import torch
from safetensors.torch import load_file

from sessionrec.errors import ConfigError, RunError
from sessionrec.models import create
from sessionrec.training import trainer as trainer_module
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import evaluate_run, prepare_resume, train_and_evaluate

FAST = dict(epochs=2, batch_size=128, lr=3e-3, checkpoint_seconds=0.0, log_every=10)


def _weights(model):
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def test_run_directory_contents_and_reevaluation(tiny, tmp_path):
    model = create("stamp", tiny.num_items, seed=0)
    metrics = train_and_evaluate(model, tiny, TrainConfig(**FAST), tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.json",
        "model.json",
        "model.safetensors",
        "metrics.json",
        "log.jsonl",
        "checkpoint.pt",
    ):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp"))
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "stamp" and config["dataset"]["dataset"] == "synthetic"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"] == metrics["test"] and set(saved["valid"]) >= {
        "hr@20",
        "mrr@20",
        "ndcg@20",
    }
    # `sessionrec evaluate` path: rebuilt dataset + saved weights give the same numbers
    assert evaluate_run(run)["test"] == pytest.approx(metrics["test"], abs=1e-12)
    # the saved weights are those of the best validation epoch
    epochs = [
        r
        for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
        if r["event"] == "epoch"
    ]
    best = max(epochs, key=lambda r: r["valid"]["mrr@20"])
    assert saved["best_epoch"] == best["epoch"]
    assert saved["valid"]["mrr@20"] == pytest.approx(best["valid"]["mrr@20"], abs=1e-12)


def test_a_test_curve_is_logged_and_changes_nothing(tiny, tmp_path):
    """`test_curve`: each epoch's test figures in the log, the selected epoch's equal to the
    final test, and the same weights and metrics as without it (it never selects)."""
    config = dict(FAST, epochs=3, patience=5)
    plain = train_and_evaluate(
        create("narm", tiny.num_items, seed=1), tiny, TrainConfig(**config), tmp_path / "a"
    )
    model = create("narm", tiny.num_items, seed=1)
    traced = train_and_evaluate(model, tiny, TrainConfig(**config, test_curve=True), tmp_path / "b")
    assert traced["test"] == plain["test"] and traced["valid"] == plain["valid"]
    epochs = [
        r
        for r in map(json.loads, (tmp_path / "b" / "log.jsonl").read_text().splitlines())
        if r["event"] == "epoch"
    ]
    assert [r["epoch"] for r in epochs if "test" in r] == [1, 2, 3]
    selected = next(r for r in epochs if r["epoch"] == traced["best_epoch"])
    assert selected["test"]["hr@20"] == pytest.approx(traced["test"]["hr@20"], abs=1e-12)
    assert selected["test"]["mrr@20"] == pytest.approx(traced["test"]["mrr@20"], abs=1e-12)
    plain_log = (tmp_path / "a" / "log.jsonl").read_text()
    assert '"test"' not in plain_log


def test_same_seed_same_weights(tiny):
    a = create("narm", tiny.num_items, seed=3).fit(tiny, TrainConfig(**FAST, seed=3))
    b = create("narm", tiny.num_items, seed=3).fit(tiny, TrainConfig(**FAST, seed=3))
    for k, v in _weights(a).items():
        assert torch.equal(v, b.net.state_dict()[k]), k


def test_interrupted_run_resumes_to_identical_weights(tiny, tmp_path, monkeypatch):
    cfg = dict(FAST, epochs=3, patience=5)
    reference = create("narm", tiny.num_items, seed=0)
    train_and_evaluate(reference, tiny, TrainConfig(**cfg), tmp_path / "ref")

    calls = {"n": 0}
    real_collate = trainer_module.collate

    def dying_collate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 180:  # in the middle of the second epoch
            raise KeyboardInterrupt
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(
            create("narm", tiny.num_items, seed=0), tiny, TrainConfig(**cfg), tmp_path / "cut"
        )
    monkeypatch.setattr(trainer_module, "collate", real_collate)
    assert not (tmp_path / "cut" / "metrics.json").exists()

    model, data, config = prepare_resume(tmp_path / "cut", "narm")
    resumed = train_and_evaluate(model, data, config, tmp_path / "cut", resume=True)
    ref_w = load_file(tmp_path / "ref" / "model.safetensors")
    cut_w = load_file(tmp_path / "cut" / "model.safetensors")
    for k, v in ref_w.items():
        assert torch.equal(v, cut_w[k]), k
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert resumed["test"] == ref_metrics["test"]


def test_resume_refuses_a_corrupt_checkpoint_or_another_model(tiny, tmp_path):
    train_and_evaluate(
        create("stamp", tiny.num_items), tiny, TrainConfig(**dict(FAST, epochs=1)), tmp_path / "run"
    )
    with pytest.raises(RunError, match="holds a 'stamp' run"):
        prepare_resume(tmp_path / "run", "narm")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    model, data, config = prepare_resume(tmp_path / "run", "stamp")
    with pytest.raises(RunError, match="corrupted or unsafe checkpoint"):
        model.fit(data, config, tmp_path / "run", resume=True)


def test_budget_stops_training(tiny):
    model = create("stamp", tiny.num_items)
    model.fit(tiny, TrainConfig(**dict(FAST, epochs=50, max_minutes=1e-6)))
    epochs = [r for r in model.fit_history if r["event"] == "epoch"]
    assert len(epochs) == 1 and epochs[0]["out_of_budget"] and epochs[0]["steps_done"] == 1


def test_an_epoch_the_budget_cut_is_finished_by_a_resume_with_more_time(tiny, tmp_path):
    cfg = dict(FAST, epochs=2, patience=5)
    whole = create("stamp", tiny.num_items, seed=0)
    train_and_evaluate(whole, tiny, TrainConfig(**cfg), tmp_path / "whole")
    cut = create("stamp", tiny.num_items, seed=0)
    train_and_evaluate(cut, tiny, TrainConfig(**dict(cfg, max_minutes=1e-6)), tmp_path / "cut")
    (record,) = [r for r in cut.fit_history if r["event"] == "epoch"]
    assert record["partial"] and record["steps_done"] == 1 < record["steps"]
    assert cut.best_epoch == 1 and "valid" in record  # the only weights there are, validated
    model, data, config = prepare_resume(tmp_path / "cut", "stamp", {"max_minutes": "60"})
    resumed = train_and_evaluate(model, data, config, tmp_path / "cut", resume=True)
    for name, value in whole.net.state_dict().items():
        assert torch.equal(value, model.net.state_dict()[name]), name
    assert resumed["best_epoch"] == whole.best_epoch


def test_resume_can_extend_the_budget_but_not_change_the_model(tiny, tmp_path):
    from sessionrec.errors import ConfigError

    run = tmp_path / "run"
    train_and_evaluate(
        create("stamp", tiny.num_items), tiny, TrainConfig(**dict(FAST, epochs=1)), run
    )
    with pytest.raises(ConfigError, match="'lr' cannot change"):
        prepare_resume(run, "stamp", {"lr": "0.1"})
    with pytest.raises(ConfigError, match="'embedding_dim' cannot change"):
        prepare_resume(run, "stamp", {"embedding_dim": "50"})
    # the first command's settings, repeated with --resume, change nothing and are accepted
    same = {"lr": str(FAST["lr"]), "embedding_dim": "100", "batch_size": str(FAST["batch_size"])}
    model, data, config = prepare_resume(run, "stamp", {"epochs": "2", **same})
    assert (
        config.epochs == 2 and json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    )
    train_and_evaluate(model, data, config, run, resume=True)
    epochs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["event"] == "epoch"] == [1, 2]


def test_resume_on_another_thread_count_says_it_is_not_bit_identical(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = TrainConfig(**dict(FAST, epochs=1, num_threads=1))
    train_and_evaluate(create("stamp", tiny.num_items), tiny, cfg, run)
    capsys.readouterr()
    before = torch.get_num_threads()
    try:
        for threads, noted in ((1, False), (2, True)):
            overrides = {"epochs": "2", "num_threads": str(threads)}
            model, data, config = prepare_resume(run, "stamp", overrides)
            model.fit(data, config, run, resume=True)
            err = capsys.readouterr().err
            assert ("resuming with 2 threads where the run used 1" in err) is noted, err
    finally:
        torch.set_num_threads(before)


def _first_step_grads(tiny, **settings):
    """The gradients the optimiser receives at the Trainer's first step."""
    model = create("stamp", tiny.num_items, seed=0)
    trainer = trainer_module.Trainer(model, TrainConfig(batch_size=16, lr=1e-3, **settings))
    trainer.optimizer = trainer.setup(tiny)
    grads = {}
    trainer.optimizer.step = lambda: grads.update(
        {n: p.grad.clone() for n, p in model.net.named_parameters() if p.grad is not None}
    )
    next(trainer.train_steps(tiny, 0, 0))
    return grads


def test_summed_loss_and_per_parameter_clipping_as_stamps_code(tiny):
    """loss_reduction=sum: the batch's summed loss (16 × the mean's gradients); with
    grad_clip_per_param each parameter's gradient is scaled to norm ≤ grad_clip on its own,
    as tf.clip_by_norm, where the global clip scales all of them by one factor."""
    mean = _first_step_grads(tiny)
    summed = _first_step_grads(tiny, loss_reduction="sum")
    for name, g in mean.items():
        torch.testing.assert_close(summed[name], 16 * g, rtol=1e-4, atol=1e-9)
    norms = {n: g.norm().item() for n, g in summed.items()}
    clip = sorted(norms.values())[len(norms) // 2]  # binds for about half of them
    each = _first_step_grads(tiny, loss_reduction="sum", grad_clip=clip, grad_clip_per_param=True)
    for name, g in summed.items():
        want = g * min(1.0, clip / (norms[name] + 1e-6))
        torch.testing.assert_close(each[name], want, rtol=1e-4, atol=1e-9)
    together = _first_step_grads(tiny, loss_reduction="sum", grad_clip=clip)
    factor = min(1.0, clip / (sum(n**2 for n in norms.values()) ** 0.5 + 1e-6))
    for name, g in summed.items():
        torch.testing.assert_close(together[name], g * factor, rtol=1e-4, atol=1e-9)


def test_a_trainer_with_its_own_steps_refuses_the_step_settings(tiny):
    for name, setting in (("gru4rec", {"batching": "sessions"}), ("bprmf", {"grad_clip": 5.0})):
        model = create(name, tiny.num_items, seed=0)
        with pytest.raises(ConfigError, match="does not apply"):
            model.fit(tiny, TrainConfig(epochs=1, **setting))
    with pytest.raises(ConfigError, match="bucket_batches"):
        TrainConfig(batching="sessions", bucket_batches=64).validate()


def test_stamps_code_batches_run_through_the_trainer(tiny):
    from sessionrec.data.batching import batch_indices

    cfg = TrainConfig(epochs=1, batch_size=64, lr=3e-3, weight_decay=0.0, batching="sessions")
    model = create("stamp", tiny.num_items, seed=0)
    trainer = trainer_module.Trainer(model, cfg)
    trainer.fit(tiny)
    seed = trainer_module.epoch_seed(cfg.seed, 0)
    chunks = batch_indices(tiny.train, 64, shuffle=True, seed=seed, sessions=True)
    epoch = next(r for r in trainer.history if r["event"] == "epoch")
    assert epoch["steps"] == epoch["steps_done"] == len(chunks) > len(tiny.train) / 64
    assert all(torch.isfinite(v).all() for v in model.net.state_dict().values())


def test_amp_auto_that_picks_float32_trains_as_amp_false(tiny, monkeypatch):
    """amp=auto times real forward + backward passes before training, yet leaves weights,
    gradients and the RNG as they were: where float32 wins, the run equals amp=false bit for
    bit. The choice is logged with its timings."""
    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: True)
    real = trainer_module.Trainer.time_precisions
    timed = []

    def measured_then_float32(self, dataset, rounds=4):
        timed.append(real(self, dataset, rounds))
        return {"float32": 1.0, "bf16": 0.96}  # not 5% faster: float32

    monkeypatch.setattr(trainer_module.Trainer, "time_precisions", measured_then_float32)
    plain = create("narm", tiny.num_items, seed=0).fit(tiny, TrainConfig(**FAST))
    auto = create("narm", tiny.num_items, seed=0).fit(tiny, TrainConfig(**FAST, amp="auto"))
    assert len(timed) == 1 and all(t > 0 for t in timed[0].values())
    for k, v in _weights(plain).items():
        assert torch.equal(v, _weights(auto)[k]), k
    (event,) = [r for r in auto.fit_history if r["event"] == "precision"]
    assert event == {
        "event": "precision",
        "bf16": False,
        "step_seconds": {"float32": 1.0, "bf16": 0.96},
    }


def test_amp_auto_choice_is_kept_on_resume(tiny, tmp_path, monkeypatch):
    """bf16 measured faster: the steps run under autocast; a resumed run does not measure
    again and keeps the choice, even where a new measurement would say otherwise."""
    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: True)
    speeds = iter([{"float32": 1.0, "bf16": 0.5}, {"float32": 0.5, "bf16": 1.0}])
    monkeypatch.setattr(trainer_module.Trainer, "time_precisions", lambda *a, **k: next(speeds))
    cfg = TrainConfig(**dict(FAST, epochs=1), amp="auto")
    model = create("narm", tiny.num_items, seed=0)
    trainer = trainer_module.Trainer(model, cfg, tmp_path / "run")
    trainer.fit(tiny)
    assert trainer.autocast.fast_dtype == torch.bfloat16 and trainer.autocast._enabled
    again = trainer_module.Trainer(
        create("narm", tiny.num_items, seed=0), TrainConfig(**FAST, amp="auto"), tmp_path / "run"
    )
    again.fit(tiny, resume=True)
    assert again.autocast._enabled and next(speeds) == {"float32": 0.5, "bf16": 1.0}


def test_amp_setting_takes_true_false_or_auto():
    from sessionrec.models.params import build_params

    assert build_params(TrainConfig, {"amp": "auto"}).amp == "auto"
    assert build_params(TrainConfig, {"amp": "true"}).amp is True
    with pytest.raises(ConfigError, match="'amp' of TrainConfig must be true, false or auto"):
        build_params(TrainConfig, {"amp": "fast"})
    with pytest.raises(ConfigError, match="amp must be true, false or auto, got 'fast'"):
        TrainConfig(amp="fast").validate()
    # a one-type union (`int | None`) keeps its type's own error
    with pytest.raises(ConfigError, match="'max_len' of TrainConfig must be int, got 'abc'"):
        build_params(TrainConfig, {"max_len": "abc"})
