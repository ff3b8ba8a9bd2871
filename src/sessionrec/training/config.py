"""Training settings, separate from model hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sessionrec.errors import ConfigError


@dataclass
class TrainConfig:
    """Adam with coupled L2 decay and early stopping on a validation metric (FOCOL protocol)."""

    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_decay: float = 1.0  # multiply lr by this every lr_decay_every epochs (SR-GNN: 0.1)
    lr_decay_every: int = 0  # 0 = constant lr (SR-GNN: 3)
    grad_clip: float | None = None  # max gradient norm (RepeatNet's code: 5)
    patience: int = 3  # epochs without validation improvement before stopping
    metric: str = "mrr@20"  # validation metric for early stopping and model selection
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # bf16 autocast for training steps on CUDA (no effect on CPU)
    eval_batch_size: int = 500
    max_len: int | None = None  # keep only the last max_len clicks of each input
    max_minutes: float | None = None  # wall-clock budget for training (stops after a step)
    checkpoint_seconds: float = 60.0  # also checkpoint mid-epoch this often (for --resume)
    log_every: int = 100  # steps between loss lines in log.jsonl
    ks: tuple[int, ...] = (5, 10, 20)
    tie_policy: str = "expected"
    num_threads: int | None = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.patience < 0:
            raise ConfigError("lr must be > 0, weight_decay >= 0 and patience >= 0")
        if self.metric.split("@")[0] not in ("hr", "mrr", "ndcg") or "@" not in self.metric:
            raise ConfigError(
                f"metric must look like mrr@20, hr@10 or ndcg@20, got '{self.metric}'"
            )
        if int(self.metric.split("@")[1]) not in self.ks:
            raise ConfigError(f"metric {self.metric} needs its K in ks={list(self.ks)}")
        resolve_device(self.device)


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
