"""Batching for pairwise training: one padded tensor holds chosen and rejected, grouped by length."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Optional

import torch
from torch.utils.data import BatchSampler, Sampler


class PairCollator:
    """Pads a list of tokenized pairs into one batch for a single forward pass.

    For pairs ``[(c0, r0), (c1, r1)]`` it returns::

        input_ids       LongTensor [2B, T]: rows c0, c1, r0, r1 (chosen first, then rejected)
        attention_mask  LongTensor [2B, T]: 1 on real tokens, 0 on padding
        margin          FloatTensor [B]   : only when the pairs carry a margin

    ``T`` is the longest sequence in the batch (dynamic padding), rounded up to
    ``pad_to_multiple_of`` when set.

    Args:
        pad_token_id: Id written into padding positions (never read: the mask excludes them).
        padding_side: ``right`` or ``left``; pooling reads the mask, so both give the same rewards.
        pad_to_multiple_of: Round ``T`` up to a multiple of this (tensor-core friendly shapes).
    """

    def __init__(
        self,
        pad_token_id: int,
        padding_side: Literal["right", "left"] = "right",
        pad_to_multiple_of: Optional[int] = None,
    ):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seqs = [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features]
        width = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            width = math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            n = len(seq)
            cols = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            input_ids[row, cols] = torch.as_tensor(seq, dtype=torch.long)
            attention_mask[row, cols] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "margin" in features[0]:
            batch["margin"] = torch.tensor([float(f["margin"]) for f in features], dtype=torch.float32)
        return batch


class LengthGroupedBatchSampler(BatchSampler):
    """Batches of similar length, so little compute is spent on padding.

    Indices drawn from ``sampler`` (random for training; under distributed training Lightning
    swaps in a ``DistributedSampler`` here and the grouping happens per rank) are taken in
    windows of ``batch_size * mega_batch_factor``; each window is sorted by length and cut into
    batches. The batch holding the longest sequence is yielded first, so running out of memory
    shows up in the first step rather than hours in. ``mega_batch_factor=None`` sorts everything
    (evaluation).

    Args:
        sampler: Where indices come from.
        batch_size: Pairs per batch.
        drop_last: Drop a final short batch.
        lengths: Length of each dataset item (tokens of its longer sequence).
        mega_batch_factor: Window size in batches; larger pads less but shuffles less.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        mega_batch_factor: Optional[int] = 50,
    ):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = lengths
        self.mega_batch_factor = mega_batch_factor

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(iter(self.sampler))
        window = len(indices) if self.mega_batch_factor is None else self.batch_size * self.mega_batch_factor
        batches: list[list[int]] = []
        for start in range(0, len(indices), max(window, 1)):
            chunk = sorted(indices[start : start + window], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if batches:
            longest = max(range(len(batches)), key=lambda k: self.lengths[batches[k][0]])
            batches[0], batches[longest] = batches[longest], batches[0]
        yield from batches

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if not self.drop_last:
            return math.ceil(n / self.batch_size)
        if self.mega_batch_factor is None:
            return n // self.batch_size
        window = self.batch_size * self.mega_batch_factor
        full, rest = divmod(n, window)
        return full * self.mega_batch_factor + rest // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

