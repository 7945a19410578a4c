"""Collation for pairwise training: one padded tensor holds chosen and rejected."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Optional

import torch


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
