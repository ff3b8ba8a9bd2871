"""The model registry: every model, neural or not, is created by name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sessionrec.errors import ConfigError
from sessionrec.models.base import REGISTRY as _REGISTRY
from sessionrec.models.base import Recommender
from sessionrec.models.params import build_params
from sessionrec.rundir import read_config
from sessionrec.training.config import TrainConfig, resolve_device
from sessionrec.training.trainer import not_applied_error


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


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[Recommender, dict[str, Any]]:
    """The trained model of a run directory (on `device`: auto | cpu | cuda) and its checked
    config.json: what `create` built, with the weights it learned."""
    config = read_config(run_dir)
    return Recommender.load(run_dir, resolve_device(device)), config


def split_settings(
    name: str, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """`values` for model `name`: (its hyper-parameters, training settings it uses, the rest).

    A key is a hyper-parameter when the model's Params has it, else a training setting unless
    the model sets that one through its own hyper-parameters (`own_train_settings`). The one
    decision on the rest: a command for one model (`train`, `tune`) refuses it with
    `unused_setting_error`; `reproduce`, whose `--set` spans several models, applies each key
    where it is a setting, notes a model that owns it, and refuses a key no model knows.
    """
    cls = get(name)
    params = set(cls.Params.__dataclass_fields__)
    usable = set(TrainConfig.__dataclass_fields__) - set(cls.own_train_settings)
    usable -= set(not_applied(name))
    model_hp = {k: v for k, v in values.items() if k in params}
    train_hp = {k: v for k, v in values.items() if k not in params and k in usable}
    return model_hp, train_hp, [k for k in values if k not in model_hp and k not in train_hp]


def not_applied(name: str) -> tuple[str, ...]:
    """Training settings model `name` does not read because its trainer's steps are its own
    (GRU4Rec, BPR-MF: `Trainer.not_applied`)."""
    trainer = getattr(get(name), "trainer_class", None)
    return trainer.not_applied() if trainer is not None else ()


def unused_setting_error(name: str, key: str) -> ConfigError:
    """The error for a setting model `name` does not use: its own, not applied, or unknown."""
    cls = get(name)
    params = ", ".join(sorted(cls.Params.__dataclass_fields__)) or "none"
    if key in cls.own_train_settings:
        return ConfigError(
            f"{name} sets '{key}' through its own hyper-parameters (see its Params: {params})"
        )
    if key in not_applied(name):
        return not_applied_error(name, key)
    return ConfigError(
        f"unknown setting '{key}' for {name}; model hyper-parameters: {params}; "
        f"training settings: {', '.join(TrainConfig.__dataclass_fields__)}"
    )


def dataset_preset(name: str, dataset: str) -> dict[str, Any]:
    """The authors' settings of model `name` for the benchmark named `dataset` ({} if none)."""
    return dict(get(name).dataset_presets.get(dataset, {}))


def recipe_settings(name: str, recipe: str | None) -> dict[str, Any]:
    """The settings of model `name`'s recipe `recipe` ({} for None); an unknown one is refused."""
    if recipe is None:
        return {}
    recipes = get(name).recipes
    if recipe not in recipes:
        known = ", ".join(sorted(recipes)) or "none"
        raise ConfigError(f"{name} has no recipe '{recipe}' (its recipes: {known})")
    return dict(recipes[recipe])


def train_config(name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Training settings for model `name`: TrainConfig's defaults < the model's < `overrides`."""
    return build_params(TrainConfig, {**get(name).train_defaults, **(overrides or {})}, "training")
