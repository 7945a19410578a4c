"""Critique generation: critic backends, the SQLite cache, and the fill / attach passes."""

from lightning_critrm.critique.cache import CritiqueCache
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.critique.generate import CritiqueSummary, attach_critiques, fill_cache, requests_for

__all__ = ["CriticConfig", "CritiqueCache", "CritiqueSummary", "attach_critiques", "fill_cache", "requests_for"]
