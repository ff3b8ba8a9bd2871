"""Model registry: `create(name, num_items, **hparams)`, `available()`, `get(name)`.

Importing this package registers every model module listed below.
"""

from sessionrec.models import narm, pop, stamp  # noqa: F401  (registration side effects)
from sessionrec.models.base import NeuralRecommender, Recommender
from sessionrec.models.registry import available, create, get, register

__all__ = ["NeuralRecommender", "Recommender", "available", "create", "get", "register"]
