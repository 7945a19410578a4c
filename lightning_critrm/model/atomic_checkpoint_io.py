"""Checkpoints that are either complete or absent.

Lightning writes a local checkpoint through fsspec, into a temporary file in the system's temp
folder, then moves it. Across filesystems that move is a copy, and nothing is flushed to disk: a
job killed (``kill -9``, a node lost) while saving can leave a truncated ``last.ckpt``, and
``--ckpt_path last`` then fails on the one file it needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a hidden file in its own folder, flushes it to disk, then renames it
    over the target, which the operating system does atomically. Remote paths (``s3://`` ...) keep
    Lightning's own transaction."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
