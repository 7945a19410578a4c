"""Data loading that survives an interruption: a loader whose place in the epoch is checkpointed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from torch.utils.data import DataLoader, Dataset


class IndexedDataset(Dataset):
    """``dataset[i]`` with ``"index": i`` added, so a batch can name the rows it holds."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.dataset[i], "index": i}


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning saves ``state_dict()`` with each checkpoint and calls ``load_state_dict()`` before
    iterating again on resume. ``batches_consumed`` is advanced by the data module as each batch
    reaches the training step (after Lightning's prefetching, so it counts trained batches, not
    fetched ones). Needs a :class:`~lightning_critrm.layout.samplers.LengthGroupedBatchSampler` as
    ``batch_sampler``.

    The epoch that orders each pass is this loader's own count, not Lightning's ``set_epoch``
    calls: on resume Lightning may build the iterator before it calls them (worker processes then
    draw batches of the wrong epoch), and after a checkpoint taken at the end of an epoch it
    counts that epoch twice, which would skip a permutation. The first pass takes the epoch of the
    checkpoint (its unseen batches only) or, fresh, ``epoch_source()`` (the trainer's
    ``current_epoch``); each later pass the next epoch.
    """

    def __init__(self, *args: Any, epoch_source: Optional[Callable[[], int]] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epoch_source = epoch_source
        self.batches_consumed = 0
        self.epoch: Optional[int] = None  # of the pass under way; None before the first
        self._resume: Optional[tuple[int, int]] = None  # (epoch, batches consumed in it)

    def __iter__(self):
        skip = 0
        if self._resume is not None:
            self.epoch, skip = self._resume
            self._resume = None
        elif self.epoch is None:
            self.epoch = self._fresh_epoch()
        else:
            self.epoch += 1
        self.batch_sampler.set_epoch(self.epoch)
        self.batch_sampler.skip_batches = skip
        self.batches_consumed = skip
        return super().__iter__()

    def _fresh_epoch(self) -> int:
        if self.epoch_source is not None:
            return int(self.epoch_source())
        return int(getattr(self.batch_sampler.sampler, "epoch", 0))

    def state_dict(self) -> dict[str, int]:
        return {"batches_consumed": self.batches_consumed, "epoch": self.epoch or 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches_consumed"]))
