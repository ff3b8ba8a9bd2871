"""The model registry: every model, neural or not, is created by name."""

from __future__ import annotations

from typing import Any

import torch

from sessionrec.errors import ConfigError
from sessionrec.models.base import REGISTRY as _REGISTRY
from sessionrec.models.base import Recommender
from sessionrec.models.params import build_params
from sessionrec.training.config import TrainConfig


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make `cls` available under `cls.name`."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"model name {cls.name!r} is empty or registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Recommender]:
    """The model class registered as `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model '{name}' (available: {', '.join(sorted(_REGISTRY))})"
        ) from None


def available() -> dict[str, str]:
    """Registered names with their one-line descriptions, sorted by name."""
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def create(name: str, num_items: int, seed: int | None = 0, **hparams: Any) -> Recommender:
    """Build model `name` for items 1..num_items; `seed` fixes its initial weights."""
    cls = get(name)
    params = build_params(cls.Params, hparams, name)
    try:
        if seed is None:
            return cls(num_items, params)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(num_items, params)
    except (RuntimeError, ValueError, MemoryError) as e:  # e.g. a negative layer size
        given = ", ".join(f"{k}={getattr(params, k)!r}" for k in hparams) or "the defaults"
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise ConfigError(
            f"cannot build a '{name}' model with {num_items:,} items and {given} ({reason})"
        ) from None


def dataset_preset(name: str, dataset: str) -> dict[str, Any]:
    """The authors' settings of model `name` for the benchmark named `dataset` ({} if none)."""
    return dict(get(name).dataset_presets.get(dataset, {}))


def train_config(name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Training settings for model `name`: TrainConfig's defaults < the model's < `overrides`."""
    return build_params(TrainConfig, {**get(name).train_defaults, **(overrides or {})}, "training")
