"""One reward pass over token sequences: how RewardBench and ``score`` get rewards.

The caller hands in the model to call: ``trainer.strategy.model`` inside a run (DDP, FSDP and
FSDP2 only gather sharded parameters inside their wrapper), or a plain module. Sequences are dealt
out across ranks so each is scored exactly once, never padded with duplicates as a
``DistributedSampler`` would; every rank runs the same number of forward passes (short shares add
a one-token dummy batch), so sharded collectives never wait on a rank that has finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.batch import PaddingSide, RewardBatch, shared_prefix_tokens

DUMMY_ID = -1  # the id of the sequence in a padding batch; its reward is discarded


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SequenceBatches:
    """Batches of token sequences, each tagged with the sequences' indices (``RewardBatch.ids``).

    Iterating yields this rank's share, read from ``torch.distributed`` at iteration time (so the
    object can be built before the processes exist, e.g. as a ``predict`` data source): sequences
    sorted by length (little padding) are dealt ``rank::world_size``, cut into batches, and padded
    with dummy batches to the same count on every rank.

    With ``shared_prompt`` the units sorted, dealt and batched are the ``groups`` (the completions
    of one prompt), kept whole: each is laid out with its prompt once
    (``RewardBatch.shared_prefix``), and a batch holds whole groups up to ``batch_size`` sequences
    (a larger group travels alone).

    Args:
        sequences: Token ids of each sequence.
        batch_size: Sequences per forward pass.
        pad_token_id: Id written into padding.
        sort_by_length: Batch sequences of similar length together.
        padding_side: Side to pad on.
        groups: Indices of the sequences that share a prompt, each sequence in one group (default:
            each on its own).
        shared_prompt: Score each group's shared prompt once.
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        batch_size: int,
        pad_token_id: int,
        sort_by_length: bool = True,
        padding_side: PaddingSide = "right",
        groups: Optional[Sequence[Sequence[int]]] = None,
        shared_prompt: bool = False,
    ):
        self.sequences = sequences
        self.batch_size = batch_size
        self.pad_token_id = pad_token_id
        self.sort_by_length = sort_by_length
        self.padding_side = padding_side
        self.shared_prompt = shared_prompt
        self.groups = [list(g) for g in groups] if shared_prompt and groups is not None else None
        if self.groups is not None and sorted(k for g in self.groups for k in g) != list(range(len(sequences))):
            raise ValueError(f"groups must split the {len(sequences)} sequences, each in exactly one group")

    def _units(self) -> list[list[int]]:
        """What is sorted, dealt and batched: single sequences, or whole groups."""
        return self.groups if self.groups is not None else [[i] for i in range(len(self.sequences))]

    @cached_property
    def _ordered_units(self) -> list[list[int]]:
        """The units in the order they are dealt: by the tokens they lay out, when sorting."""
        units = self._units()
        if not self.sort_by_length:
            return units
        if self.shared_prompt:
            tokens = [shared_prefix_tokens([self.sequences[i] for i in u]) for u in units]
        else:
            tokens = [len(self.sequences[u[0]]) for u in units]
        return [units[k] for k in sorted(range(len(units)), key=lambda k: tokens[k])]

    def _own_batches(self, rank: int, world: int) -> list[list[int]]:
        batches: list[list[int]] = []
        for unit in self._ordered_units[rank::world]:
            if not batches or len(batches[-1]) + len(unit) > self.batch_size:
                batches.append([])
            batches[-1].extend(unit)
        return batches

    def plan(self, rank: int, world: int) -> list[list[int]]:
        """The batches (sequence indices; empty for a dummy batch) that ``rank`` scores."""
        batches = self._own_batches(rank, world)
        return batches + [[]] * (self.batches_per_rank(world) - len(batches))

    def batches_per_rank(self, world: int) -> int:
        if self.groups is None:
            return math.ceil(math.ceil(len(self.sequences) / world) / self.batch_size)
        return max(len(self._own_batches(rank, world)) for rank in range(world))

    def __len__(self) -> int:
        return self.batches_per_rank(_world()[1])

    def __iter__(self) -> Iterator[RewardBatch]:
        return self.build(self.plan(*_world()))

    def build(self, plan: list[list[int]]) -> Iterator[RewardBatch]:
        """The batches of a ``plan`` (from :meth:`plan`), one at a time."""
        group_of = {k: g for g, members in enumerate(self._units()) for k in members} if self.shared_prompt else {}
        for indices in plan:
            if not indices:
                yield RewardBatch.padded([[self.pad_token_id]], self.pad_token_id, ids=[DUMMY_ID])
                continue
            seqs = [self.sequences[i] for i in indices]
            if not self.shared_prompt:
                yield RewardBatch.padded(seqs, self.pad_token_id, self.padding_side, ids=indices)
                continue
            groups: dict[int, list[int]] = {}
            for position, i in enumerate(indices):
                groups.setdefault(group_of[i], []).append(position)
            yield RewardBatch.shared_prefix(seqs, list(groups.values()), self.pad_token_id, ids=indices)


def collect(ids: torch.Tensor, rewards: torch.Tensor) -> dict[int, float]:
    """{sequence index: reward} of one batch, without the dummy sequences."""
    return {i: r for i, r in zip(ids.tolist(), rewards.float().cpu().tolist()) if i != DUMMY_ID}


def score_batches(
    model: Callable[[RewardBatch], torch.Tensor],
    batches: SequenceBatches,
    device: torch.device,
    progress: bool = False,
    desc: str = "rewards",
) -> dict[int, float]:
    """{sequence index: reward} of this rank's share, scored in eval mode without gradients.
    ``progress`` shows a bar counting this rank's sequences, with ETA."""
    rank, world = _world()
    plan = batches.plan(rank, world)
    was_training = model.training if isinstance(model, nn.Module) else False
    if isinstance(model, nn.Module):
        model.eval()
    bar = tqdm(total=sum(map(len, plan)), desc=desc, unit="seq", disable=not progress, file=console.progress_stream())
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
    rank, world = _world()
    if world == 1:
        return dict(local)
    parts: list[Optional[Any]] = [None] * world
    dist.all_gather_object(parts, local)
    merged: dict[int, float] = {}
    for part in parts:
        merged.update(part or {})
    return merged
