"""Without launching processes: batch sharding, the torchrun environment, refusals, amp on CPU."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.data.batching import batch_indices, shard_batches
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
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


def test_amp_is_a_no_op_on_cpu(tiny):
    cfg = dict(epochs=1, batch_size=256, lr=3e-3, device="cpu")
    plain = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**cfg))
    amp = create("stamp", tiny.num_items).fit(tiny, TrainConfig(**cfg, amp=True))
    for k, v in plain.net.state_dict().items():
        assert torch.equal(v, amp.net.state_dict()[k]), k
