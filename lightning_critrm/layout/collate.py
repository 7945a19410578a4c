"""Collation for pairwise training: one :class:`~lightning_critrm.layout.batch.RewardBatch` holds
chosen and rejected sequences for a single forward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.layout.options import Layout


class PairCollator:
    """Lays a list of tokenized pairs out as one batch, as ``layout`` says.

    For pairs ``[(c0, r0), (c1, r1)]`` under the default (padded) layout it returns::

        input_ids       LongTensor [4, T]: rows c0, c1, r0, r1 (chosen first, then rejected)
        attention_mask  LongTensor [4, T]: 1 on real tokens, 0 on padding
        position_ids    LongTensor [4, T]: positions of the real tokens, from 0 in each row
        first/last_token_index  LongTensor [4]: where each sequence starts and ends
        num_pairs       2
        margin          FloatTensor [2]: only when the pairs carry a margin
        ids             LongTensor [2]: the pairs' ``index`` fields, when they carry one
    critique_index/labels   the critique tokens to predict, when the pairs carry
                    ``chosen_critique_span``/``rejected_critique_span`` (a model that writes critiques)

    ``T`` is the longest sequence in the batch (dynamic padding). Under ``shared_prompt`` each
    pair is one group: its prompt once, then both completions.
    """

    def __init__(self, pad_token_id: int, layout: Layout = Layout()):
        self.pad_token_id = pad_token_id
        self.layout = layout

    def __call__(self, features: Sequence[dict[str, Any]]) -> RewardBatch:
        n = len(features)
        return self.layout.batch(
            [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features],
            self.pad_token_id,
            groups=[[i, n + i] for i in range(n)],
            num_pairs=n,
            margin=[f["margin"] for f in features] if "margin" in features[0] else None,
            ids=[f["index"] for f in features] if "index" in features[0] else None,
            critique_spans=(
                [_span(f["chosen_critique_span"]) for f in features]
                + [_span(f["rejected_critique_span"]) for f in features]
                if "chosen_critique_span" in features[0] else None
            ),
        )


def _span(stored: Sequence[int]) -> Optional[tuple[int, int]]:
    """A critique span as the tokenized cache stores it: ``[start, end]``, or ``[]`` for none."""
    return (int(stored[0]), int(stored[1])) if len(stored) == 2 else None
