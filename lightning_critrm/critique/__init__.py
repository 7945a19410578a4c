"""Critique generation: the critic config, its backends, the SQLite cache, and the store that
training and evaluation share."""

from lightning_critrm.critique.cache import CritiqueCache
from lightning_critrm.critique.config import CachePolicy, CriticConfig, Endpoint, Engine, Sampling
from lightning_critrm.critique.fill import (
    CritiqueSummary,
    attach_critiques,
    fill_cache,
    pair_items,
    requests_for,
)
from lightning_critrm.critique.store import CritiqueStore

__all__ = [
    "CachePolicy",
    "CriticConfig",
    "CritiqueCache",
    "CritiqueStore",
    "CritiqueSummary",
    "Endpoint",
    "Engine",
    "Sampling",
    "attach_critiques",
    "fill_cache",
    "pair_items",
    "requests_for",
]
