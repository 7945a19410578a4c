"""Loaded by the kill -9 runs of test_resumable_checkpoint.py through the config (not a test module)."""

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILLs its own process in the middle of training step ``step``: after the forward and
    backward pass, before the optimizer updates anything. Nothing gets to clean up or save."""

    def __init__(self, step: int):
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
