"""Preference data: sources, formatting with critiques, caching, splits and batching.

``PreferenceDataModule`` is imported on first use, so modules that only need formatting (the
evaluation code's :mod:`~lightning_critrm.data.completion_encoder`) do not load the data module.
"""

from typing import Any

__all__ = ["PreferenceDataModule"]


def __getattr__(name: str) -> Any:
    if name == "PreferenceDataModule":
        from lightning_critrm.data.datamodule import PreferenceDataModule

        return PreferenceDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
