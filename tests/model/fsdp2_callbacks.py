"""Loaded by the 2-process runs of test_fsdp2.py through --trainer.callbacks (not a test module)."""

import os

import lightning as L
import torch


class SaveFullStateDict(L.Callback):
    """At the end of training, the consolidated weights go to ``$FULL_STATE_DICT_PATH`` (rank 0)."""

    def on_train_end(self, trainer, module):
        state = module.full_state_dict()  # every rank: a collective under FSDP2
        if trainer.is_global_zero:
            torch.save(state, os.environ["FULL_STATE_DICT_PATH"])
