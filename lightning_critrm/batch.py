"""The batch the reward model reads: the one place where a batch's layout is defined.

Collators build a :class:`RewardBatch`; the model reads each reward at the indices the batch gives
and never infers the layout from padding. Two layouts: padded rows (``RewardBatch.padded``) and
packed rows (``RewardBatch.packed``: several sequences per row, no padding between them), read by
the same model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal, Optional

import torch

PaddingSide = Literal["right", "left"]


@dataclass
class RewardBatch:
    """Sequences scored in one forward pass, and where each one's reward is read.

    For ``N`` sequences laid out in ``B`` rows of ``T`` tokens::

        input_ids          LongTensor [B, T]
        attention_mask     LongTensor [B, T]: 1 on real tokens, 0 on padding; None for a packed
                           layout, where restarting ``position_ids`` mark the sequence boundaries
        position_ids       LongTensor [B, T]: each token's position in its own sequence (0 first)
        first_token_index  LongTensor [N]: flat index (row * T + column) of each sequence's first token
        last_token_index   LongTensor [N]: flat index of each sequence's last token (its EOS/[SEP])
        num_pairs          P: sequences [0, P) are the chosen and [P, 2P) the rejected completions
                           of P pairs, in the same order; 0 when sequences are scored on their own
        margin             FloatTensor [P]: per-pair loss margin, or None
        ids                LongTensor [N] (sequences) or [P] (pairs): caller's index of each item,
                           so results can be matched back (dataset rows, RewardBench sequences)
    """

    input_ids: torch.Tensor
    attention_mask: Optional[torch.Tensor]
    position_ids: torch.Tensor
    first_token_index: torch.Tensor
    last_token_index: torch.Tensor
    num_pairs: int = 0
    margin: Optional[torch.Tensor] = None
    ids: Optional[torch.Tensor] = None

    @classmethod
    def padded(
        cls,
        sequences: Sequence[Sequence[int]],
        pad_token_id: int,
        padding_side: PaddingSide = "right",
        pad_to_multiple_of: Optional[int] = None,
        num_pairs: int = 0,
        margin: Optional[Sequence[float]] = None,
        ids: Optional[Sequence[int]] = None,
    ) -> "RewardBatch":
        """One sequence per row, padded to the longest (rounded up to ``pad_to_multiple_of``).
        Position ids count real tokens only, so left and right padding give the same rewards."""
        if not sequences:
            raise ValueError("a batch needs at least one sequence")
        if num_pairs and len(sequences) != 2 * num_pairs:
            raise ValueError(f"{num_pairs} pairs need {2 * num_pairs} sequences, got {len(sequences)}")
        width = max(len(s) for s in sequences)
        if pad_to_multiple_of:
            width = math.ceil(width / pad_to_multiple_of) * pad_to_multiple_of
        input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        starts = []
        for row, seq in enumerate(sequences):
            if not seq:
                raise ValueError(f"sequence {row} of the batch is empty")
            start = 0 if padding_side == "right" else width - len(seq)
            input_ids[row, start : start + len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            attention_mask[row, start : start + len(seq)] = 1
            starts.append(row * width + start)
        first = torch.tensor(starts, dtype=torch.long)
        last = first + torch.tensor([len(s) - 1 for s in sequences], dtype=torch.long)
        return cls(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0),
            first_token_index=first,
            last_token_index=last,
            num_pairs=num_pairs,
            margin=None if margin is None else torch.tensor([float(m) for m in margin], dtype=torch.float32),
            ids=None if ids is None else torch.tensor(list(ids), dtype=torch.long),
        )

    @classmethod
    def packed(
        cls,
        sequences: Sequence[Sequence[int]],
        pad_token_id: int,
        row_tokens: Optional[int] = None,
        num_pairs: int = 0,
        margin: Optional[Sequence[float]] = None,
        ids: Optional[Sequence[int]] = None,
    ) -> "RewardBatch":
        """Several sequences per row, without padding between them: each row holds up to
        ``row_tokens`` tokens (default: the longest sequence), filled longest first. Position ids
        restart at 0 for every sequence, and there is no attention mask: transformers (5.x) reads
        the restarts as sequence boundaries and attends within each sequence only (for models
        whose attention goes through ``masking_utils``, such as Llama-style decoders). Rows are
        padded at their end only, as a sequence of their own."""
        if not sequences:
            raise ValueError("a batch needs at least one sequence")
        if num_pairs and len(sequences) != 2 * num_pairs:
            raise ValueError(f"{num_pairs} pairs need {2 * num_pairs} sequences, got {len(sequences)}")
        if any(not s for s in sequences):
            raise ValueError("a batch's sequences must not be empty")
        capacity = max(row_tokens or 0, max(len(s) for s in sequences))
        rows: list[list[int]] = []  # sequence indices per row
        fill: list[int] = []
        for k in sorted(range(len(sequences)), key=lambda k: -len(sequences[k])):  # first fit, longest first
            row = next((r for r, used in enumerate(fill) if used + len(sequences[k]) <= capacity), None)
            if row is None:
                rows.append([])
                fill.append(0)
                row = len(rows) - 1
            rows[row].append(k)
            fill[row] += len(sequences[k])
        width = max(fill)
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        first = [0] * len(sequences)
        for r, members in enumerate(rows):
            column = 0
            for k in members:
                n = len(sequences[k])
                input_ids[r, column : column + n] = torch.as_tensor(sequences[k], dtype=torch.long)
                position_ids[r, column : column + n] = torch.arange(n)
                first[k] = r * width + column
                column += n
            position_ids[r, column:] = torch.arange(width - column)  # the tail: a sequence of its own
        first_index = torch.tensor(first, dtype=torch.long)
        return cls(
            input_ids=input_ids,
            attention_mask=None,
            position_ids=position_ids,
            first_token_index=first_index,
            last_token_index=first_index + torch.tensor([len(s) - 1 for s in sequences], dtype=torch.long),
            num_pairs=num_pairs,
            margin=None if margin is None else torch.tensor([float(m) for m in margin], dtype=torch.float32),
            ids=None if ids is None else torch.tensor(list(ids), dtype=torch.long),
        )

    # -- reading ------------------------------------------------------------------------------
    @property
    def num_sequences(self) -> int:
        return int(self.last_token_index.numel())

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.last_token_index.sum() - self.first_token_index.sum()) + self.num_sequences

    @property
    def num_positions(self) -> int:
        """Tokens the forward pass processes, padding included."""
        return int(self.input_ids.numel())

    def split_pairs(self, rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen rewards [P], rejected rewards [P]) from the rewards [2P] of a pair batch."""
        if not self.num_pairs:
            raise ValueError("this batch holds sequences scored on their own, not pairs")
        return rewards[: self.num_pairs], rewards[self.num_pairs : 2 * self.num_pairs]

    # -- moving -------------------------------------------------------------------------------
    def to(self, device: torch.device | str, non_blocking: bool = False) -> "RewardBatch":
        """A copy on ``device`` (Lightning moves any batch that has ``to``)."""
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)
