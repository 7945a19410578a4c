"""``--ckpt_path last`` and ``--ckpt_path best`` for the commands that read a trained model.

Lightning resolves ``best`` from its ModelCheckpoint's memory, which only the process that trained
has: ``validate``, ``test``, ``rewardbench`` and ``export`` run in new processes and would stop
with "ModelCheckpoint is not configured to save the best model". And where no ``last`` exists it
only warns and goes on with the untrained model, whose scores would then pass for the run's. Here
both names become paths found in the checkpoint folder: ``best`` is what the run's last save
recorded as its best (the ModelCheckpoint state inside ``last.ckpt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from lightning.fabric.utilities.load import _METADATA_FILENAME

from lightning_critrm.errors import InputError, MissingInputError
from lightning_critrm.locations import file_of_kind

LAST = "last.ckpt"


def resolve_checkpoint(ckpt_path: str, folder: Optional[str | Path]) -> Path:
    """The checkpoint ``ckpt_path`` names: ``last`` and ``best`` in ``folder`` (the run's
    ``checkpoint.dirpath``), anything else as a path; a file, or the folder of a sharded (FSDP2)
    save. Raises :class:`MissingInputError` naming what is missing."""
    if ckpt_path not in ("last", "best"):
        path = Path(ckpt_path)
        if not path.exists():
            raise MissingInputError(f"--ckpt_path {ckpt_path}: no such checkpoint")
        if path.is_dir() and not (path / _METADATA_FILENAME).is_file():
            raise InputError(f"--ckpt_path {ckpt_path}: a folder, but not a sharded checkpoint (no "
                             f"{_METADATA_FILENAME}); give a .ckpt file or the folder an FSDP2 run saved")
        return path if path.is_dir() else file_of_kind(path, "--ckpt_path", "checkpoint")
    if folder is None:
        raise MissingInputError(f"--ckpt_path {ckpt_path}: no checkpoint folder is configured "
                                "(checkpoint.dirpath)")
    last = Path(folder) / LAST
    if not last.exists():
        raise MissingInputError(
            f"--ckpt_path {ckpt_path}: no {last}; train first with the same --config and "
            "--trainer.default_root_dir, or give the checkpoint's path"
        )
    if ckpt_path == "last":
        return last
    recorded = _best_recorded_in(last)
    if not recorded:
        raise MissingInputError(
            f"--ckpt_path best: {last} records no best checkpoint (the run never validated with "
            "checkpoint.monitor set); use --ckpt_path last"
        )
    for path in (Path(recorded), Path(folder) / Path(recorded).name):  # the folder may have moved
        if path.exists():
            return path
    raise MissingInputError(
        f"--ckpt_path best: {last} names {recorded} as the best checkpoint, which is gone")


def checkpoint_metadata(path: Path) -> dict:
    """A checkpoint's contents without reading its tensors (mapped from the file: a 135M model's
    checkpoint is 1.6 GB): ``global_step``, ``epoch``, ``callbacks``... A sharded save keeps them
    in its metadata file."""
    path = Path(path)
    if path.is_dir():
        return torch.load(path / _METADATA_FILENAME, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _best_recorded_in(last: Path) -> Optional[str]:
    """The best checkpoint path the first ModelCheckpoint recorded in a save."""
    state = checkpoint_metadata(last)
    for key, callback_state in (state.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and callback_state.get("best_model_path"):
            return str(callback_state["best_model_path"])
    return None
