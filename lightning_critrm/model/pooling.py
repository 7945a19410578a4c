"""Which position's hidden state becomes the reward."""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["last", "first"]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position where ``attention_mask == 1``, per row. [B, T] -> [B].

    Read from the mask, never by searching for the pad id: with pad == eos that search finds the
    real EOS of a shorter row or nothing at all. Correct for right and left padding alike.
    """
    width = attention_mask.shape[-1]
    return width - 1 - attention_mask.flip(-1).long().argmax(-1)


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the first real token per row ([CLS] of an encoder, with either padding side)."""
    return attention_mask.long().argmax(-1)


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, how: Pooling) -> torch.Tensor:
    """Gather one hidden state per row. hidden [B, T, H], mask [B, T] -> [B, H]."""
    index = last_token_index(attention_mask) if how == "last" else first_token_index(attention_mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index.to(hidden.device)]
