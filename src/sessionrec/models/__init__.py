"""Model registry: `create(name, num_items, **hparams)`, `available()`, `get(name)`.

Importing this package imports every module in it, so a model file registers itself just by
existing (one model per file, decorated with `@register`).
"""

import importlib
import pkgutil

from sessionrec.models.base import NeuralRecommender, Recommender
from sessionrec.models.registry import available, create, get, register

_SUPPORT = {"base", "registry", "layers", "params"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SUPPORT and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["NeuralRecommender", "Recommender", "available", "create", "get", "register"]
