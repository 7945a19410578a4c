"""Which position's hidden state becomes the reward."""

from __future__ import annotations

from typing import Literal

import torch

from lightning_critrm.layout.batch import RewardBatch

Pooling = Literal["last", "first"]


def reward_positions(batch: RewardBatch, how: Pooling) -> torch.Tensor:
    """Flat indices [N] of the token each reward is read at: the ``last`` token of each sequence
    (what the chat template writes last, for decoders) or the ``first`` (the [CLS] of encoders).

    Read from the batch's layout, never by searching for the pad id: with pad == eos that search
    finds the real EOS of a shorter row, or nothing at all.
    """
    return batch.last_token_index if how == "last" else batch.first_token_index


def gather_hidden(hidden: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """One hidden state per sequence. hidden [B, T, H], flat_index [N] (row * T + column) -> [N, H]."""
    return hidden.reshape(-1, hidden.shape[-1])[flat_index.to(hidden.device)]
