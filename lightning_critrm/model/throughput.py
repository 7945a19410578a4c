"""Training speed in TensorBoard, measured beside training rather than inside the model.

Lightning's ``ThroughputMonitor`` times whole batches (data loading included) and counts samples;
a reward model's work is tokens, and with packing or a shared prompt the tokens the data holds
(real) differ from the positions the hardware runs (processed), so both are logged.
"""

from __future__ import annotations

import time
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torchmetrics import MaxMetric, SumMetric

from lightning_critrm.hardware import peak_flops
from lightning_critrm.layout import RewardBatch


def model_flops_utilization(parameters: int, tokens_per_s: float, peak: float) -> float:
    """Share of the hardware's peak FLOP/s that training's matmuls use: 6 FLOPs per parameter per
    processed token (forward 2, backward 4), the usual estimate; attention scores, recomputation
    under gradient checkpointing and frozen (LoRA) weights' skipped gradients are not counted."""
    return 6.0 * parameters * tokens_per_s / peak


class _EpochTotals(nn.Module):
    """Tokens and compute time of the training batches of the current epoch, over all ranks."""

    def __init__(self):
        super().__init__()
        # tokens of the sequences (a shared prompt counts once per sequence: the work it stands for)
        self.real = SumMetric()
        self.processed = SumMetric()  # positions the forward pass ran over, padding included
        self.padding = SumMetric()  # positions holding no token
        self.seconds = MaxMetric()  # the slowest rank's time in training steps (data loading excluded)
        self.elapsed = 0.0

    def update(self, batch: RewardBatch, seconds: float) -> None:
        self.elapsed += seconds
        self.real.update(float(batch.num_tokens))
        self.processed.update(float(batch.num_positions))
        self.padding.update(float(batch.num_padding))

    def compute(self) -> dict[str, torch.Tensor]:
        self.seconds.update(self.elapsed)
        real, processed = self.real.compute(), self.processed.compute()
        seconds = self.seconds.compute().clamp(min=1e-9)
        return {"real_tokens_per_s": real / seconds, "processed_tokens_per_s": processed / seconds,
                "padded_share": self.padding.compute() / processed.clamp(min=1)}

    def reset(self) -> None:
        for metric in (self.real, self.processed, self.padding, self.seconds):
            metric.reset()
        self.elapsed = 0.0


class TrainingThroughput(Callback):
    """Logs ``train/tokens_per_s`` each step (real tokens over every rank / the step's time) and,
    each epoch over all ranks, ``train/real_tokens_per_s``, ``train/processed_tokens_per_s``,
    ``train/padded_share`` and, on GPUs of known peak, ``train/mfu``. The CLI adds it to ``fit``."""

    def __init__(self):
        self.totals = _EpochTotals()
        self._started = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.totals.to(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.totals.reset()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        _synchronize(pl_module.device)
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        _synchronize(pl_module.device)
        elapsed = time.perf_counter() - self._started
        tokens = batch.num_tokens * trainer.world_size
        pl_module.log("train/tokens_per_s", tokens / max(elapsed, 1e-9), on_step=True, on_epoch=False)
        self.totals.update(batch, elapsed)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Real tokens/s (what the data holds), processed tokens/s (what the hardware ran, padding
        # included; below real tokens when prompts are shared), the share of processed positions
        # that were padding, and on GPUs the model FLOPs utilization.
        if not self.totals.real.update_called:
            return
        speeds = self.totals.compute()
        for name, value in speeds.items():
            pl_module.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=False)
        peak: Optional[float] = peak_flops(pl_module.device, str(trainer.precision))
        if peak:
            parameters = sum(p.numel() for p in pl_module.parameters())  # DTensors count whole
            mfu = model_flops_utilization(parameters, float(speeds["processed_tokens_per_s"]),
                                          peak * trainer.world_size)
            pl_module.log("train/mfu", mfu, on_step=False, on_epoch=True, sync_dist=False)


def _synchronize(device: torch.device) -> None:
    # GPU kernels run asynchronously: without waiting, a step would be timed by its launches.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
