"""Batches for scoring token sequences (RewardBench, ``score``): each sequence scored exactly once.

Sequences are dealt out across ranks so each is scored once, never padded with duplicates as a
``DistributedSampler`` would; every rank runs the same number of forward passes (short shares add
a one-token dummy batch), so sharded collectives never wait on a rank that has finished.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Optional

import torch

from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.layout.options import Layout
from lightning_critrm.layout.ranks import deal, rank_and_world

DUMMY_ID = -1  # the id of the sequence in a padding batch; its reward is discarded


class SequenceBatches:
    """Batches of token sequences, each tagged with the sequences' indices (``RewardBatch.ids``).

    Iterating yields this rank's share, read from ``torch.distributed`` at iteration time (so the
    object can be built before the processes exist, e.g. as a ``predict`` data source): units
    sorted by length (little padding) are dealt ``rank::world_size``, cut into batches, and padded
    with dummy batches to the same count on every rank.

    A unit is a sequence, or under ``layout.shared_prompt`` a whole group (the completions of one
    prompt), laid out with its prompt once; a batch holds whole groups up to ``batch_size``
    sequences, and a larger group is cut into groups of ``batch_size`` (a group is one row, whose
    attention mask costs its length squared: 10,000 completions of a prompt must not be one row).

    Args:
        sequences: Token ids of each sequence.
        batch_size: Sequences per forward pass.
        pad_token_id: Id written into padding.
        layout: How a batch's sequences share rows (see :meth:`Layout.for_scoring`).
        sort_by_length: Batch sequences of similar length together.
        groups: Indices of the sequences that share a prompt, each sequence in one group (default:
            each on its own).
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        batch_size: int,
        pad_token_id: int,
        layout: Layout = Layout(),
        sort_by_length: bool = True,
        groups: Optional[Sequence[Sequence[int]]] = None,
    ):
        self.sequences = sequences
        self.batch_size = batch_size
        self.pad_token_id = pad_token_id
        self.layout = layout
        self.sort_by_length = sort_by_length
        self.groups = None
        if layout.shared_prompt and groups is not None:
            if sorted(k for g in groups for k in g) != [*range(len(sequences))]:
                raise ValueError(
                    f"groups must split the {len(sequences)} sequences, each in exactly one group")
            self.groups = [list(g[start:start + batch_size]) for g in groups
                           for start in range(0, len(g), batch_size)]

    def _units(self) -> list[list[int]]:
        """What is sorted, dealt and batched: single sequences, or whole groups."""
        return self.groups if self.groups is not None else [[i] for i in range(len(self.sequences))]

    @cached_property
    def _ordered_units(self) -> list[list[int]]:
        """The units in the order they are dealt: by the tokens they lay out, when sorting."""
        units = self._units()
        if not self.sort_by_length:
            return units
        tokens = [self.layout.group_tokens([self.sequences[i] for i in u]) for u in units]
        return [units[k] for k in sorted(range(len(units)), key=lambda k: tokens[k])]

    def _own_batches(self, rank: int, world: int) -> list[list[int]]:
        batches: list[list[int]] = []
        for unit in deal(self._ordered_units, rank, world):
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
        return self.batches_per_rank(rank_and_world()[1])

    def __iter__(self) -> Iterator[RewardBatch]:
        return self.build(self.plan(*rank_and_world()))

    def build(self, plan: list[list[int]]) -> Iterator[RewardBatch]:
        """The batches of a ``plan`` (from :meth:`plan`), one at a time."""
        group_of = {k: g for g, members in enumerate(self._units()) for k in members}
        for indices in plan:
            if not indices:
                yield RewardBatch.padded([[self.pad_token_id]], self.pad_token_id, ids=[DUMMY_ID])
                continue
            groups: dict[int, list[int]] = {}
            for position, i in enumerate(indices):
                groups.setdefault(group_of[i], []).append(position)
            yield self.layout.batch([self.sequences[i] for i in indices], self.pad_token_id,
                                    groups=list(groups.values()), ids=indices)


def collect(ids: torch.Tensor, rewards: torch.Tensor) -> dict[int, float]:
    """{sequence index: reward} of one batch, without the dummy sequences."""
    return {i: r for i, r in zip(ids.tolist(), rewards.float().cpu().tolist()) if i != DUMMY_ID}
