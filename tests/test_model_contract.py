"""The contract every registered model must pass: fit, score, recommend, save, load, beat pop."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import small_hparams
from sessionrec.data.batching import collate
from sessionrec.errors import ConfigError, RunError
from sessionrec.evaluation import evaluate
from sessionrec.models import Recommender, available, create, get
from sessionrec.training.config import TrainConfig

CONTRACT_TRAINING = TrainConfig(epochs=2, batch_size=64, lr=3e-3, patience=2, eval_batch_size=1000)


@pytest.fixture(scope="module")
def fitted(tiny):
    """fitted(name): the model trained briefly on the tiny synthetic data (trained once, lazily)."""
    cache = {}

    def get_fitted(name):
        if name not in cache:
            model = create(name, tiny.num_items, seed=0, **small_hparams(name))
            cache[name] = model.fit(tiny, CONTRACT_TRAINING)
        return cache[name]

    return get_fitted


def _test_hr20(fitted, tiny, name):
    return evaluate(fitted(name), tiny.test, ks=(20,)).metrics["hr@20"]


@pytest.mark.parametrize("name", list(available()))
def test_registry_entry(name):
    cls = get(name)
    assert cls.name == name and issubclass(cls, Recommender)
    assert cls.description and len(cls.description) < 120
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        create(name, 10, no_such_setting=1)


@pytest.mark.parametrize("name", list(available()))
def test_scores_and_recommendations(name, fitted, tiny):
    model = fitted(name)
    idx = np.arange(16)
    scores = model.score_batch(collate(tiny.test, idx))
    assert scores.shape == (16, tiny.num_items + 1)
    assert torch.isfinite(scores[:, 1:]).all()

    session = tiny.test.sequence(0).tolist()
    recs = model.recommend(session, k=10)
    items = [i for i, _ in recs]
    assert len(items) == 10 == len(set(items))
    assert all(1 <= i <= tiny.num_items for i in items)
    values = [s for _, s in recs]
    assert values == sorted(values, reverse=True)
    excluded = model.recommend(session, k=10, exclude=items[:3])
    assert not set(items[:3]) & {i for i, _ in excluded}
    batched = model.recommend_batch([session, session[:1]], k=10)[0]
    assert [i for i, _ in batched] == items  # scores may differ in the last float bit
    assert [s for _, s in batched] == pytest.approx(values, rel=1e-5)
    with pytest.raises(ConfigError, match="empty"):
        model.recommend([], k=5)
    with pytest.raises(ConfigError, match="out of range"):
        model.recommend([tiny.num_items + 1], k=5)
    with pytest.raises(ConfigError):
        model.recommend(session, k=0)


@pytest.mark.parametrize("name", list(available()))
def test_save_and_load_round_trip(name, fitted, tiny, tmp_path):
    model = fitted(name)
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert type(loaded) is type(model) and loaded.params == model.params
    batch = collate(tiny.test, np.arange(32))
    assert torch.equal(loaded.score_batch(batch), model.score_batch(batch))
    assert get(name).load(tmp_path).name == name
    other = next(n for n in available() if n != name)
    with pytest.raises(RunError, match=f"holds a '{name}' model"):
        get(other).load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunError, match="corrupted weights"):
        Recommender.load(tmp_path)


@pytest.mark.parametrize("name", [n for n in available() if n != "pop"])
def test_beats_popularity(name, fitted, tiny):
    hr, pop = _test_hr20(fitted, tiny, name), _test_hr20(fitted, tiny, "pop")
    assert hr > 1.5 * pop, (name, hr, pop)


GOLDEN = Path(__file__).parent / "golden" / "contract_fits.json"
RECORD_ENV = "SESSIONREC_RECORD_GOLDEN"


def _behaviour(model, tiny) -> dict[str, float]:
    """What a refactor of training must not change: test metrics, best epoch, a score digest."""
    metrics = evaluate(model, tiny.test, ks=(20,)).metrics
    scores = model.score_batch(collate(tiny.test, np.arange(64)))[:, 1:].double()
    return {
        "hr@20": metrics["hr@20"],
        "mrr@20": metrics["mrr@20"],
        "best_epoch": float(getattr(model, "best_epoch", -1) or -1),
        "score_digest": float((scores * torch.linspace(0.5, 1.5, scores.shape[1])).sum()),
    }


def _machine(cpu: bool = False) -> str:
    """SIMD level and threads; with `cpu`, also the vendor and AMX, which pick other kernels."""
    kind = f"{torch.backends.cpu.get_cpu_capability()}-{torch.get_num_threads()}threads"
    if not cpu:
        return kind  # how the file-wide "machine" was written
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    vendor = next((ln.split(":")[1].strip() for ln in info.splitlines() if "vendor_id" in ln), "")
    return f"{kind}-{vendor or 'unknown'}" + ("-amx" if " amx_tile" in info else "")


@pytest.mark.parametrize("name", list(available()))
def test_training_behaviour_is_unchanged(name, fitted, tiny):
    """Every model's contract fit against the values recorded before the training refactor.

    On the machine kind they were recorded on (same SIMD level and thread count) training is
    bit-reproducible, so the values must agree to rounding; elsewhere torch's kernels round
    differently and only the metrics are compared, within 0.05. Record again (after a change
    that is meant to change training) with SESSIONREC_RECORD_GOLDEN=1 and `-k` for the
    models concerned: an entry recorded on another machine kind than the file's carries its
    own, vendor and AMX included.
    """
    got = _behaviour(fitted(name), tiny)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get(RECORD_ENV):  # an entry recorded elsewhere names its own machine
        same = golden.setdefault("machine", _machine()) == _machine()
        golden.setdefault("models", {})[name] = got if same else {**got, "machine": _machine(True)}
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    want = dict(golden["models"][name])
    recorded_on = want.pop("machine", None)
    if (recorded_on or golden["machine"]) == _machine(cpu=recorded_on is not None):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), name
    else:
        assert got["hr@20"] == pytest.approx(want["hr@20"], abs=0.05), name
        assert got["mrr@20"] == pytest.approx(want["mrr@20"], abs=0.05), name


@pytest.fixture(scope="module")
def small():
    from sessionrec.data.synthetic import make_synthetic

    return make_synthetic(num_items=120, num_categories=6, num_sessions=400, seed=3)


@pytest.mark.parametrize("name", list(available()))
def test_trains_under_bf16_autocast(name, small, monkeypatch):
    """`amp=True` on a CPU with native bf16 (forced here, so it runs on any CPU): every model
    that trains with the Trainer takes its steps under bf16 autocast and ends with finite
    weights and scores (DHCN's sparse product has no bf16 kernel: it must cast, not fail)."""
    from sessionrec.models.base import NeuralRecommender
    from sessionrec.training import trainer

    model = create(name, small.num_items, seed=0, **small_hparams(name))
    if not isinstance(model, NeuralRecommender):
        pytest.skip(f"{name} has no Trainer loop (amp does not apply)")
    monkeypatch.setattr(trainer, "native_bf16", lambda device: True)
    model.fit(small, TrainConfig(epochs=1, batch_size=64, lr=3e-3, amp=True, device="cpu"))
    for key, value in model.net.state_dict().items():
        assert not value.is_floating_point() or torch.isfinite(value).all(), key
    assert not torch.isnan(model.score_batch(collate(small.test, np.arange(32)))).any()


@pytest.mark.parametrize("name", list(available()))
def test_a_training_step_leaves_dense_gradients(name, fitted, tiny):
    """A loss's gradients reach Adam dense, whatever sparse lookups (`lookup_rows`) they add up
    from, except for tables that declare sparse gradients (`nn.Embedding(sparse=True)`, whose
    models train with their own optimiser). A batch of 64 runs in length groups where a model
    opts in, so each group's lookup adds its sparse rows."""
    from sessionrec.models.base import NeuralRecommender
    from sessionrec.training.trainer import batch_loss

    model = fitted(name)
    if not isinstance(model, NeuralRecommender):
        pytest.skip(f"{name} has no gradient step")
    net = model.net
    declared = {
        id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Embedding) and m.sparse
    }
    with torch.random.fork_rng():
        net.train()
        try:
            batch_loss(net, collate(tiny.train, np.arange(64))).backward()
            grads = {n: p.grad for n, p in net.named_parameters() if id(p) not in declared}
        finally:
            net.eval()
            net.zero_grad(set_to_none=True)
    if not grads:
        pytest.skip(f"{name}: every table declares sparse gradients")
    sparse = [n for n, g in grads.items() if g is not None and g.layout != torch.strided]
    assert not sparse, (name, sparse)
