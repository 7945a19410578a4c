"""Which process this is, and its share of a list of work: one rule for training and scoring.

Shares are dealt ``rank::world``, so what each rank gets depends on the order of the list alone
(set by the data seed), never on the number of ranks that existed when it was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def deal(items: Sequence[T], rank: int, world: int,
         uneven: Literal["drop", "pad", "keep"] = "keep") -> list[T]:
    """``rank``'s share of ``items``: every ``world``-th one from ``rank`` on. When they do not divide,
    ``drop`` leaves out the last ``< world`` items (every rank gets as many), ``pad`` repeats the first
    ones (every item is seen; the repeats count twice), ``keep`` gives some ranks one more."""
    items = list(items)
    if world == 1 or not items:
        return items
    if uneven == "pad" and len(items) % world:
        items = items + items[: world - len(items) % world]
    end = len(items) - len(items) % world if uneven == "drop" else len(items)
    return items[rank:end:world]
