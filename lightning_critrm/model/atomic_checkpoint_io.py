"""Checkpoints that are either complete or absent.

Lightning writes a local checkpoint through fsspec, into a temporary file in the system's temp
folder, then moves it. Across filesystems that move is a copy, and nothing is flushed to disk: a
job killed (``kill -9``, a node lost) while saving can leave a truncated ``last.ckpt``, and
``--ckpt_path last`` then fails on the one file it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from lightning_critrm.atomic_write import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint through :func:`~lightning_critrm.atomic_write.atomic_file` (a hidden
    file in its own folder, flushed to disk, renamed over the target). Remote paths (``s3://`` ...)
    keep Lightning's own transaction."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path,
                        storage_options: Optional[Any] = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(Path(path), "wb") as fh:
            torch.save(checkpoint, fh)
