"""Which pairs go into which batch, in an order an interrupted run can replay.

Training order depends only on (seed, epoch), and the loader records how many batches the trainer
has consumed, so a run resumed from a mid-epoch checkpoint continues with the next unseen batch
instead of starting the epoch over in a new order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(n)`` fixed by ``seed + epoch``."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


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
        self.skip_batches = 0  # set by ResumableDataLoader; applies to the next iteration only

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
        skip, self.skip_batches = self.skip_batches, 0
        yield from batches[skip:]

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



class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning saves ``state_dict()`` with each checkpoint and calls ``load_state_dict()`` before
    iterating again on resume. ``batches_consumed`` is advanced by the data module as each batch
    reaches the training step (after Lightning's prefetching, so it counts trained batches, not
    fetched ones). Needs a :class:`LengthGroupedBatchSampler` as ``batch_sampler``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.batches_consumed = 0
        self._resume_at = 0

    def __iter__(self):
        self.batch_sampler.skip_batches = self._resume_at
        self.batches_consumed, self._resume_at = self._resume_at, 0
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        return {"batches_consumed": self.batches_consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = int(state.get("batches_consumed", 0))
