"""Training settings, separate from model hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sessionrec.errors import ConfigError
from sessionrec.evaluation import TIE_POLICIES
from sessionrec.training.schedule import HORIZONS, SCHEDULES


@dataclass
class TrainConfig:
    """Adam with coupled L2 decay and early stopping on a validation metric (FOCOL protocol)."""

    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_decay: float = 1.0  # multiply lr by this every lr_decay_every epochs (SR-GNN: 0.1)
    lr_decay_every: int = 0  # 0 = constant lr (SR-GNN: 3)
    # step: lr_decay every lr_decay_every epochs; linear | cosine: per step, from lr down to
    # lr_final × lr over the horizon: `epochs`, or `budget` (max_minutes) (training.schedule)
    lr_schedule: str = "step"
    lr_final: float = 0.0
    lr_horizon: str = "epochs"
    lr_warmup_steps: int = 0  # linear warm-up over this many optimiser steps (any schedule)
    grad_clip: float | None = None  # max gradient norm (RepeatNet's code: 5)
    grad_clip_per_param: bool = False  # clip each parameter's norm apart (STAMP's code)
    loss_reduction: Literal["mean", "sum"] = "mean"  # sum: the batch's total (STAMP's code)
    # 0: uniform batches, as the reference codes (sorting by length within windows of this
    # many batches cost SR-GNN 0.8 HR@20 after 2 epochs: docs/results.md, batch composition)
    bucket_batches: int = 0
    # examples: batches of examples (as above); sessions: STAMP's code, sessions of one
    # length in chunks of batch_size, each chunk's prefixes as consecutive batches
    batching: Literal["examples", "sessions"] = "examples"
    patience: int = 3  # epochs without validation improvement before stopping
    metric: str = "mrr@20"  # validation metric for early stopping and model selection
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # bf16 autocast for training steps: true where bf16 is native (native_bf16); auto where
    # native and also measured faster than float32 for this model on this machine (a few
    # timed steps before training; the choice is logged and kept on resume)
    amp: bool | Literal["auto"] = False
    eval_batch_size: int = 500
    max_len: int | None = None  # keep only the last max_len clicks of each input
    max_minutes: float | None = None  # wall-clock budget for training (stops after a step)
    checkpoint_seconds: float = 60.0  # also checkpoint mid-epoch this often (for --resume)
    log_every: int = 100  # steps between loss lines in log.jsonl
    ks: tuple[int, ...] = (5, 10, 20)
    tie_policy: str = "expected"
    num_threads: int | None = None
    # also test after every epoch, logged as `test`, never used for selection: the authors'
    # scripts report the best epoch on the test set (docs/results.md#selection-on-test)
    test_curve: bool = False

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bucket_batches < 0:
            raise ConfigError(f"bucket_batches must be >= 0, got {self.bucket_batches}")
        if self.batching not in ("examples", "sessions"):
            raise ConfigError(f"batching must be examples or sessions, got {self.batching!r}")
        if self.batching == "sessions" and self.bucket_batches:
            raise ConfigError("bucket_batches applies to batching=examples only")
        if self.loss_reduction not in ("mean", "sum"):
            raise ConfigError(f"loss_reduction must be mean or sum, got {self.loss_reduction!r}")
        if self.amp not in (True, False, "auto"):
            raise ConfigError(f"amp must be true, false or auto, got {self.amp!r}")
        for name in ("max_len", "num_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 (or unset), got {value}")
        # `not x > 0` rather than `x <= 0`: NaN fails every comparison and must be refused too.
        if not self.lr > 0 or not self.weight_decay >= 0 or not self.patience >= 0:
            raise ConfigError("lr must be > 0, weight_decay >= 0 and patience >= 0")
        if not (self.max_minutes is None or self.max_minutes > 0):
            raise ConfigError(f"max_minutes must be > 0 (or unset), got {self.max_minutes}")
        if not 0 < self.lr_decay <= 1 or self.lr_decay_every < 0:
            raise ConfigError("lr_decay must be in (0, 1] and lr_decay_every >= 0")
        self._validate_schedule()
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"ks must be positive cut-offs, got {list(self.ks)}")
        kind, _, cutoff = self.metric.partition("@")
        if kind not in ("hr", "mrr", "ndcg") or not cutoff.isdigit():
            raise ConfigError(
                f"metric must look like mrr@20, hr@10 or ndcg@20, got '{self.metric}'"
            )
        if int(cutoff) not in self.ks:
            raise ConfigError(f"metric {self.metric} needs its K in ks={list(self.ks)}")
        if self.tie_policy not in TIE_POLICIES:
            raise ConfigError(
                f"tie_policy must be one of {', '.join(TIE_POLICIES)}, got '{self.tie_policy}'"
            )
        resolve_device(self.device)

    def _validate_schedule(self) -> None:
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(SCHEDULES)}, got '{self.lr_schedule}'"
            )
        if self.lr_horizon not in HORIZONS:
            raise ConfigError(
                f"lr_horizon must be one of {', '.join(HORIZONS)}, got '{self.lr_horizon}'"
            )
        if self.lr_horizon == "budget" and not self.max_minutes:
            raise ConfigError("lr_horizon=budget needs a time budget (max_minutes)")
        if not 0 <= self.lr_final <= 1 or self.lr_warmup_steps < 0:
            raise ConfigError("lr_final must be in [0, 1] and lr_warmup_steps >= 0")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; an unavailable device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products natively: CUDA, or a CPU with AMX or
    AVX-512 BF16 (checked at run time). On an AVX2-only CPU bf16 matmuls are emulated and
    were measured 9x slower than float32 (docs/performance.md), so `amp` trains in float32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    cpu = torch.cpu
    return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())


def use_threads(config: TrainConfig | None) -> None:
    """Run torch on `config.num_threads` threads, when the config sets a number."""
    if config is not None and config.num_threads:
        torch.set_num_threads(config.num_threads)
