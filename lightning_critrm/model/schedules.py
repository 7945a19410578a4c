"""Learning-rate schedules, built by LightningCLI as callables of (optimizer, total_steps)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosineLR(LambdaLR):
    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup_ratio: float = 0.05,
        warmup_steps: int | None = None,
        min_lr_ratio: float = 0.0,
    ):
        """Linear warmup from 0, then cosine decay to ``min_lr_ratio * lr`` at ``total_steps``.

        Args:
            optimizer: Filled in by the model.
            total_steps: Filled in by the model (the trainer's estimated optimizer steps).
            warmup_ratio: Share of ``total_steps`` spent warming up (ignored if ``warmup_steps``).
            warmup_steps: Exact warmup length in steps.
            min_lr_ratio: Final learning rate as a share of the peak.
        """
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = warmup_steps if warmup_steps is not None else int(warmup_ratio * self.total_steps)
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer, self.factor)

    def state_dict(self) -> dict:
        # The horizon comes from the run that loads the state, not from the checkpoint: a run
        # resumed with a larger max_steps must not keep the old one (its learning rate would sit
        # at the end of the old schedule, 0 by default, for every added step).
        state = super().state_dict()
        for key in ("total_steps", "warmup_steps", "min_lr_ratio"):
            state.pop(key, None)
        return state

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class ConstantLR(LambdaLR):
    def __init__(self, optimizer: Optimizer, total_steps: int):
        """Keep the learning rate fixed (``total_steps`` is accepted and ignored)."""
        super().__init__(optimizer, lambda step: 1.0)
