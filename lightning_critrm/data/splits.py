"""Train/validation splits by prompt, and seeded subsamples for data-efficiency runs."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Optional

from lightning_critrm.errors import InputError


def split_by_prompt(
    prompt_keys: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Row indices of (train, validation), with every row of a prompt on the same side.

    Splitting rows instead would put the same prompt on both sides (the MT-Bench pairs repeat each
    prompt ~60 times) and overstate validation accuracy. The prompts are ranked by a seeded hash,
    so the split does not depend on row order, and ``ceil(val_fraction * prompts)`` of them
    (at least one when ``val_fraction > 0``) go to validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    distinct = sorted(set(prompt_keys), key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
    n_val = math.ceil(val_fraction * len(distinct)) if val_fraction > 0 else 0
    if n_val >= len(distinct) and n_val > 0:
        raise InputError(
            f"only {len(distinct)} distinct prompt(s): cannot hold out {val_fraction:.0%} of them "
            f"and keep any for training; give a separate data.val_source instead"
        )
    val_keys = set(distinct[:n_val])
    train = [i for i, k in enumerate(prompt_keys) if k not in val_keys]
    val = [i for i, k in enumerate(prompt_keys) if k in val_keys]
    return train, val


def subsample(indices: Sequence[int], max_items: Optional[int], seed: int) -> list[int]:
    """At most ``max_items`` of ``indices``, chosen with ``seed``, in their original order.

    Nested for growing sizes with one seed (the first 100 of a 1000-subsample are the 100-subsample),
    so data-efficiency curves compare supersets, not unrelated draws.
    """
    if max_items is None or max_items >= len(indices):
        return list(indices)
    if max_items < 1:
        raise InputError(f"data.max_train_pairs and data.max_val_pairs must be >= 1, got {max_items}")
    order = list(indices)
    random.Random(seed).shuffle(order)
    return sorted(order[:max_items])


def rows_read(
    prompt_keys: Sequence[str], held_out_source_rows: Optional[int], val_fraction: float, seed: int,
    max_train: Optional[int], max_val: Optional[int], sample_seed: int
) -> tuple[list[int], list[int]]:
    """(training rows, held-out rows) a run reads: of the source whose ``prompt_keys`` are given,
    split by prompt, and each side subsampled. Where the held-out pairs have a source of their
    own (``held_out_source_rows`` rows), every row of this one trains and the held-out rows are
    that source's."""
    if held_out_source_rows is not None:
        train, val = list(range(len(prompt_keys))), list(range(held_out_source_rows))
    else:
        train, val = split_by_prompt(prompt_keys, val_fraction, seed)
    return subsample(train, max_train, sample_seed), subsample(val, max_val, seed)
