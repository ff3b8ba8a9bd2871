"""Serving: `SessionRecommender` (Python), the FastAPI app (`serving.app`) and its batcher.

`SessionRecommender.load(run_dir).recommend(["item-a", "item-b"], k=20)` answers in the
dataset's original item ids; see docs/serving.md.
"""

from sessionrec.serving.recommender import (
    Recommendation,
    SessionRecommender,
    UnknownItemsError,
)
from sessionrec.serving.vocab import ItemVocabulary

__all__ = ["ItemVocabulary", "Recommendation", "SessionRecommender", "UnknownItemsError"]
