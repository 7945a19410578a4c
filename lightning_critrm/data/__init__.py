"""Preference data: sources, formatting with critiques, caching, splits and batching."""

from lightning_critrm.data.datamodule import PreferenceDataModule

__all__ = ["PreferenceDataModule"]
