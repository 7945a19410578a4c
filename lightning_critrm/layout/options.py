"""How a batch's sequences are laid out in rows: the one options object every consumer takes.

Training (``data.layout``), validation, RewardBench and ``score`` all build their batches through
:meth:`Layout.batch`, so a layout chosen for training is the one every evaluation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.errors import InputError
from lightning_critrm.layout.batch import PaddingSide, RewardBatch, shared_prefix_tokens


@dataclass(frozen=True)
class Layout:
    """How sequences share rows.

    Args:
        padding_side: Side to pad on; rewards are the same either way.
        pad_to_multiple_of: Round padded rows up to a multiple of this many tokens.
        packing: Several sequences per row with no padding between them (position ids restart
            per sequence; attention stays within each). Same rewards and gradients as padding,
            fewer tokens processed. Needs a decoder backbone that reads position ids.
        row_tokens: Tokens per packed row. Default: the whole batch in one row where the model
            attends one sequence at a time (``sdpa`` on CPUs, flash-attention 2), else
            ``data.max_length`` (masked attention costs the square of the row).
        shared_prompt: Score each prompt once: a pair is one row ``prompt | chosen rest | rejected
            rest``, both completions attending to the prompt and not to each other. Same rewards
            and gradients as scoring each sequence alone; causal decoders with ``sdpa`` or
            ``eager`` attention only. With ``packing``, several pairs share a row.
    """

    padding_side: PaddingSide = "right"
    pad_to_multiple_of: Optional[int] = None
    packing: bool = False
    row_tokens: Optional[int] = None
    shared_prompt: bool = False

    def __post_init__(self) -> None:
        for name in ("pad_to_multiple_of", "row_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"data.layout.{name} must be >= 1, got {value}")

    def batch(
        self,
        sequences: Sequence[Sequence[int]],
        pad_token_id: int,
        groups: Optional[Sequence[Sequence[int]]] = None,
        num_pairs: int = 0,
        margin: Optional[Sequence[float]] = None,
        ids: Optional[Sequence[int]] = None,
    ) -> RewardBatch:
        """``sequences`` as one batch. ``groups`` (indices of the sequences that share a prompt,
        each sequence in one) matter under ``shared_prompt``; by default each sequence stands alone.
        Packed without a row size, one row holds the whole batch, so nothing is padded."""
        fields = {"num_pairs": num_pairs, "margin": margin, "ids": ids}
        row_tokens = self.row_tokens or sum(len(s) for s in sequences)
        if self.shared_prompt:
            groups = groups if groups is not None else [[k] for k in range(len(sequences))]
            return RewardBatch.shared_prefix(sequences, groups, pad_token_id, self.packing, row_tokens, **fields)
        if self.packing:
            return RewardBatch.packed(sequences, pad_token_id, row_tokens, **fields)
        return RewardBatch.padded(sequences, pad_token_id, self.padding_side, self.pad_to_multiple_of, **fields)

    def group_tokens(self, sequences: Sequence[Sequence[int]]) -> int:
        """Tokens a group of sequences lays out as one unit: the prompt once under ``shared_prompt``."""
        if self.shared_prompt:
            return shared_prefix_tokens(sequences)
        return max(len(s) for s in sequences)

    def for_scoring(self) -> "Layout":
        """The layout of evaluation and ``score`` batches: sequences (or shared-prompt groups) one per
        row, padded; packing would only save the little padding that length-sorted batches have."""
        return Layout(padding_side=self.padding_side, shared_prompt=self.shared_prompt)
