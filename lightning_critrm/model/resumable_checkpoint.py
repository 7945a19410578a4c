"""``last.ckpt`` always holds where training stopped: at the end of ``fit`` and on SIGTERM."""

from __future__ import annotations

import logging
import os

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class ResumableCheckpoint(L.Callback):
    """Writes ``last.ckpt`` (into the ModelCheckpoint folder) where ModelCheckpoint would not:

    - on SIGTERM (what SLURM, ``timeout`` and container runtimes send), at the end of the current
      training batch, where Lightning stops, so ``--ckpt_path last`` continues with the next
      unseen batch;
    - at the end of ``fit`` when the last save is older than the last step (a run that stops at
      ``max_steps`` between validations), so ``last.ckpt`` is never stale.
    """

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.training:
            path = self._save(trainer)
            if rank_zero_only.rank == 0:
                log.info(f"SIGTERM at step {trainer.global_step}: saved {path}; resume with --ckpt_path last")

    def __init__(self):
        self._saved_at_step: int | None = None  # of the last checkpoint written, by anyone

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._saved_at_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (ModelCheckpoint's own bookkeeping can claim a save it deferred, so count real writes.)
        if self._saved_at_step != trainer.global_step:
            self._save(trainer)

    @staticmethod
    def _save(trainer: L.Trainer) -> str:
        callback = trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None) or os.path.join(trainer.default_root_dir, "checkpoints")
        path = os.path.join(folder, "last.ckpt")
        if callback is not None:
            # Recorded in the checkpoint itself, so a resumed ModelCheckpoint overwrites this file
            # instead of writing last-v1.ckpt beside it.
            callback.last_model_path = path
        trainer.save_checkpoint(path)  # every rank: a collective under sharded strategies
        return path
