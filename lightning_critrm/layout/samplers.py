"""Which pairs go into which batch, in an order an interrupted run can replay.

Training order depends only on (seed, epoch), and the loader
(:class:`~lightning_critrm.data.loaders.ResumableDataLoader`) tells the sampler how many batches to
skip, so a run resumed from a mid-epoch checkpoint continues with the next unseen batch instead of
starting the epoch over in a new order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal, Optional

import torch
from torch.utils.data import BatchSampler, DistributedSampler, Sampler

from lightning_critrm.layout.ranks import deal, rank_and_world


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
    """Batches of similar length, so little compute is spent on padding, dealt out across ranks.

    Indices drawn from ``sampler`` (the same random permutation on every rank for training) are
    taken in windows of ``batch_size * window_batches``; each window is sorted by length and
    cut into batches. The batch holding the longest sequence is yielded first, so running out of
    memory shows up in the first step rather than hours in. ``window_batches=None`` sorts
    everything (evaluation).

    Under distributed training (``torch.distributed`` initialized) rank ``r`` of ``w`` takes
    batches ``r::w``, so the order depends on the data seed alone, whatever the number of ranks,
    and every rank runs the same number of steps (sharded models need that): ``uneven="drop"``
    drops the last ``< w`` batches, ``"pad"`` repeats the first ones (evaluation, where every pair
    must be seen; the repeats count twice, as with a ``DistributedSampler``). When Lightning has
    already put a ``DistributedSampler`` in (``use_distributed_sampler: true``), nothing more is
    dealt.

    Args:
        sampler: Where indices come from.
        batch_size: Pairs per batch.
        drop_last: Drop a final short batch.
        lengths: Length of each dataset item (tokens of its longer sequence).
        window_batches: Window size in batches; larger pads less but shuffles less.
        uneven: ``drop`` or ``pad`` the batches that do not divide among the ranks.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        window_batches: Optional[int] = 50,
        uneven: Literal["drop", "pad"] = "drop",
    ):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = lengths
        self.window_batches = window_batches
        self.uneven = uneven
        # Set by ResumableDataLoader before each pass (a DataLoader with workers iterates the batch
        # sampler twice when it starts a pass).
        self.skip_batches = 0

    def _replicas(self) -> tuple[int, int]:
        if isinstance(self.sampler, DistributedSampler):
            return 0, 1  # Lightning sharded the indices already
        return rank_and_world()

    def _deal(self, batches: list[list[int]]) -> list[list[int]]:
        return deal(batches, *self._replicas(), uneven=self.uneven)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(iter(self.sampler))
        window = len(indices) if self.window_batches is None else self.batch_size * self.window_batches
        batches: list[list[int]] = []
        for start in range(0, len(indices), max(window, 1)):
            chunk = sorted(indices[start : start + window], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if batches:
            longest = max(range(len(batches)), key=lambda k: self.lengths[batches[k][0]])
            batches[0], batches[longest] = batches[longest], batches[0]
        batches = self._deal(batches)
        # Built now, not lazily: a set_epoch() after iter() must not change this iteration.
        return iter(batches[self.skip_batches :])

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if not self.drop_last:
            total = math.ceil(n / self.batch_size)
        elif self.window_batches is None:
            total = n // self.batch_size
        else:
            window = self.batch_size * self.window_batches
            full, rest = divmod(n, window)
            total = full * self.window_batches + rest // self.batch_size
        world = self._replicas()[1]
        return math.ceil(total / world) if self.uneven == "pad" else total // world

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class TokenBudgetBatchSampler(LengthGroupedBatchSampler):
    """Training batches filled up to a token budget rather than a number of pairs.

    Short pairs then travel many to a batch and long ones few, so every step does about the same
    work and none runs out of memory on an unlucky draw. A batch's tokens are counted as the
    forward pass runs them: padded, ``rows x pairs x longest``; packed (``packed=True``),
    ``rows x`` the sum of the pairs' lengths. With ``rows=2`` (chosen and rejected in rows of their
    own) a pair's length is its longer sequence, an upper bound on each; with ``rows=1`` (a pair
    laid out as one shared-prompt row) it is that row's. A pair longer than the budget on its own
    travels alone.

    The batches are composed once per run (pairs drawn in a ``seed``-shuffled order, sorted by
    length within windows of ``window_pairs`` pairs, then cut at the budget) and each epoch shuffles
    their order with ``seed + epoch``: every epoch has the same number of steps, which the
    learning-rate schedule and Lightning's epoch length rely on. The heaviest batch comes first, so
    running out of memory shows in the first step; dealing across ranks and resuming mid-epoch work
    as for :class:`LengthGroupedBatchSampler`.

    Args:
        n: Pairs in the dataset.
        max_tokens: The budget.
        lengths: Tokens of each pair (see ``rows``).
        seed: Seed of the composition and of each epoch's order.
        packed: Count tokens as packed rows hold them instead of padded ones.
        window_pairs: Pairs sorted together; larger pads less, smaller mixes lengths more. ``None``:
            no sorting, batches cut in the shuffled order.
        rows: Rows of ``lengths[i]`` tokens at most that pair ``i`` takes: 2, or 1 for shared-prompt rows.
    """

    def __init__(self, n: int, max_tokens: int, lengths: Sequence[int], seed: int, packed: bool = False,
                 window_pairs: Optional[int] = 400, rows: int = 2):
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        super().__init__(EpochShuffleSampler(n, seed), batch_size=1, drop_last=False, lengths=lengths,
                         uneven="drop")
        self.max_tokens = max_tokens
        self.packed = packed
        self.rows = rows
        self.seed = seed
        self.window_pairs = window_pairs
        self._composed: Optional[list[list[int]]] = None

    def cost(self, batch: Sequence[int]) -> int:
        """Tokens of ``batch`` as the budget counts them."""
        lengths = [self.lengths[i] for i in batch]
        return self.rows * (sum(lengths) if self.packed else len(lengths) * max(lengths, default=0))

    def composed(self) -> list[list[int]]:
        """The run's batches, before each epoch's order."""
        if self._composed is None:
            order = torch.randperm(self.sampler.n,
                                   generator=torch.Generator().manual_seed(self.seed)).tolist()
            batches: list[list[int]] = []
            window = max(self.window_pairs or len(order), 1)
            for start in range(0, len(order), window):
                chunk = order[start : start + window]
                current: list[int] = []
                for i in sorted(chunk, key=lambda i: -self.lengths[i]) if self.window_pairs else chunk:
                    if current and self.cost(current + [i]) > self.max_tokens:
                        batches.append(current)
                        current = []
                    current.append(i)
                if current:
                    batches.append(current)
            self._composed = batches
        return self._composed

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.composed()
        generator = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
        batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
        if batches:
            heaviest = max(range(len(batches)), key=lambda k: self.cost(batches[k]))
            batches[0], batches[heaviest] = batches[heaviest], batches[0]
        return iter(self._deal(batches)[self.skip_batches :])

    def __len__(self) -> int:
        return len(self.composed()) // self._replicas()[1]
