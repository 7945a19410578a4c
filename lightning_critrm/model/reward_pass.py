"""One reward pass over the batches of a :class:`~lightning_critrm.layout.SequenceBatches`: how
RewardBench gets rewards, each sequence scored once across ranks.

The caller hands in the model to call: ``trainer.strategy.model`` inside a run (DDP, FSDP and
FSDP2 only gather sharded parameters inside their wrapper), or a plain module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.layout import RewardBatch, SequenceBatches
from lightning_critrm.layout.ranks import rank_and_world
from lightning_critrm.layout.sequences import DUMMY_ID, collect


def score_batches(
    model: Callable[[RewardBatch], torch.Tensor],
    batches: SequenceBatches,
    device: torch.device,
    progress: bool = False,
    desc: str = "rewards",
) -> dict[int, float]:
    """{sequence index: reward} of this rank's share, scored in eval mode without gradients.
    ``progress`` shows a bar counting this rank's sequences, with ETA."""
    rank, world = rank_and_world()
    plan = batches.plan(rank, world)
    was_training = model.training if isinstance(model, nn.Module) else False
    if isinstance(model, nn.Module):
        model.eval()
    bar = tqdm(total=sum(map(len, plan)), desc=desc, unit="seq", disable=not progress,
               file=console.progress_stream())
    out: dict[int, float] = {}
    try:
        with torch.no_grad():
            for batch in batches.build(plan):
                out.update(collect(batch.ids, model(batch.to(device))))
                bar.update(int((batch.ids != DUMMY_ID).sum()))
    finally:
        bar.close()
        if isinstance(model, nn.Module):
            model.train(was_training)
    return out


def gather_rewards(local: dict[int, float]) -> dict[int, float]:
    """Every rank's rewards merged, on every rank (a collective under distributed runs)."""
    rank, world = rank_and_world()
    if world == 1:
        return dict(local)
    parts: list[Optional[Any]] = [None] * world
    dist.all_gather_object(parts, local)
    merged: dict[int, float] = {}
    for part in parts:
        merged.update(part or {})
    return merged
