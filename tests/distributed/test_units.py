"""Without launching processes: batch sharding, the torchrun environment, refusals, amp on CPU."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.data.batching import batch_indices, shard_batches
from sessionrec.errors import ConfigError
from sessionrec.evaluation import evaluate
from sessionrec.models import create
from sessionrec.training import trainer
from sessionrec.training.config import TrainConfig, native_bf16
from sessionrec.training.distributed import env_world
from sessionrec.training.run import train_and_evaluate


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 40))
def test_ranks_together_take_the_single_process_epoch_once(n, world, start):
    batches = [np.array([i]) for i in range(n)]
    start = min(start, n)
    shards = [shard_batches(batches, r, world, start) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank takes part in every step
    taken = [int(b[0]) for step in zip(*shards, strict=True) for b in step if b is not None]
    assert taken == list(range(start, n))  # step by step, in the single-process order
    assert all(b is not None for b in shards[0])  # rank 0 always has a batch


def test_sharding_real_batches_keeps_each_example_once(tiny):
    batches = batch_indices(tiny.train, 64, shuffle=True, seed=3)
    shards = [shard_batches(batches, r, 3) for r in range(3)]
    flat = np.concatenate([b for s in shards for b in s if b is not None])
    assert sorted(flat.tolist()) == list(range(len(tiny.train)))
    assert shards[1][0] is batches[1] and shards[2][1] is batches[5]


def test_world_comes_from_torchrun_environment(monkeypatch):
    assert not env_world().enabled
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = env_world()
    assert (world.rank, world.world_size, world.local_rank) == (3, 4, 1)
    assert world.enabled and not world.is_main


@pytest.mark.parametrize(
    ("name", "why"),
    [("pop", "has its own fit"), ("gru4rec", "GRU4RecTrainer trains in one process only"),
     ("bprmf", "BPRMFTrainer trains in one process only")],
)  # fmt: skip
def test_models_that_train_in_one_process_are_refused_on_many(name, why, tiny, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=f"{why}.*run it as one process"):
        train_and_evaluate(create(name, tiny.num_items), tiny, TrainConfig(epochs=1))
    assert create("narm", tiny.num_items).trainer_class.multi_process


AMP_RUN = dict(epochs=1, batch_size=256, lr=3e-3, device="cpu")


def test_amp_trains_in_float32_on_a_cpu_without_native_bf16(tiny, monkeypatch, capsys):
    monkeypatch.setattr(trainer, "native_bf16", lambda device: False)
    plain = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**AMP_RUN))
    amp = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**AMP_RUN, amp=True))
    for k, v in plain.net.state_dict().items():
        assert torch.equal(v, amp.net.state_dict()[k]), k
    assert "no native bf16" in capsys.readouterr().err


def test_amp_trains_under_bf16_autocast_where_the_cpu_has_it(tiny, monkeypatch):
    """Where native_bf16 says yes (AMX or AVX-512 BF16; forced here, so the test runs on any
    CPU), the steps run in bf16: other weights than float32's, the same accuracy."""
    monkeypatch.setattr(trainer, "native_bf16", lambda device: True)
    plain = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**AMP_RUN))
    amp = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**AMP_RUN, amp=True))
    weights = plain.net.state_dict()
    assert any(not torch.equal(v, weights[k]) for k, v in amp.net.state_dict().items())
    hr = [evaluate(m, tiny.test, ks=(20,)).metrics["hr@20"] for m in (plain, amp)]
    assert abs(hr[0] - hr[1]) < 0.03, hr


def test_native_bf16_follows_the_cpu_flags(monkeypatch):
    cpu = torch.device("cpu")
    for amx, avx512_bf16, want in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert native_bf16(cpu) is want
