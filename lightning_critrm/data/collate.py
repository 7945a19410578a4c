"""Collation for pairwise training: one :class:`~lightning_critrm.batch.RewardBatch` holds chosen
and rejected sequences for a single forward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from lightning_critrm.batch import PaddingSide, RewardBatch


class PairCollator:
    """Lays a list of tokenized pairs out as one batch.

    For pairs ``[(c0, r0), (c1, r1)]`` it returns a padded :class:`RewardBatch` with::

        input_ids       LongTensor [4, T]: rows c0, c1, r0, r1 (chosen first, then rejected)
        attention_mask  LongTensor [4, T]: 1 on real tokens, 0 on padding
        position_ids    LongTensor [4, T]: positions of the real tokens, from 0 in each row
        first/last_token_index  LongTensor [4]: where each sequence starts and ends
        num_pairs       2
        margin          FloatTensor [2]: only when the pairs carry a margin
        ids             LongTensor [2]: the pairs' ``index`` fields, when they carry one

    ``T`` is the longest sequence in the batch (dynamic padding), rounded up to
    ``pad_to_multiple_of`` when set.

    Args:
        pad_token_id: Id written into padding positions (never read: the batch says where each
            sequence lies).
        padding_side: ``right`` or ``left``; rewards are the same either way.
        pad_to_multiple_of: Round ``T`` up to a multiple of this (tensor-core friendly shapes).
        pack: Lay the sequences out packed instead (``RewardBatch.packed``: several per row, no
            padding between sequences).
        row_tokens: Tokens per packed row (default: the whole batch in one row, padding-free).
        shared_prompt: Lay each pair out as one ``prompt | chosen rest | rejected rest`` group
            (``RewardBatch.shared_prefix``), the prompt once; with ``pack``, several groups per row.
    """

    def __init__(
        self,
        pad_token_id: int,
        padding_side: PaddingSide = "right",
        pad_to_multiple_of: Optional[int] = None,
        pack: bool = False,
        row_tokens: Optional[int] = None,
        shared_prompt: bool = False,
    ):
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pack = pack
        self.row_tokens = row_tokens
        self.shared_prompt = shared_prompt

    def __call__(self, features: Sequence[dict[str, Any]]) -> RewardBatch:
        seqs = [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features]
        pairs = {
            "num_pairs": len(features),
            "margin": [f["margin"] for f in features] if "margin" in features[0] else None,
            "ids": [f["index"] for f in features] if "index" in features[0] else None,
        }
        # Packed without a row size: one row holds the whole batch, so nothing is padded.
        row_tokens = self.row_tokens or sum(len(s) for s in seqs)
        if self.shared_prompt:
            groups = [[i, len(features) + i] for i in range(len(features))]
            return RewardBatch.shared_prefix(seqs, groups, self.pad_token_id, self.pack, row_tokens, **pairs)
        if self.pack:
            return RewardBatch.packed(seqs, self.pad_token_id, row_tokens, **pairs)
        return RewardBatch.padded(seqs, self.pad_token_id, self.padding_side, self.pad_to_multiple_of, **pairs)
