"""The typed options of how pairs become batches: which pairs go together (:class:`Batching`,
``data.batching``) and how a batch's sequences share rows (:class:`Layout`, ``data.layout``).

Training, validation, RewardBench and ``score`` all build their batches through
:meth:`Layout.batch`, so a layout chosen for training is the one every evaluation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.errors import InputError
from lightning_critrm.layout.batch import PaddingSide, RewardBatch, shared_prompt_tokens
from lightning_critrm.layout.samplers import (
    EpochShuffleSampler,
    LengthGroupedBatchSampler,
    TokenBudgetBatchSampler,
)


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
        critique_spans: Optional[Sequence[Optional[tuple[int, int]]]] = None,
    ) -> RewardBatch:
        """``sequences`` as one batch. ``groups`` (indices of the sequences that share a prompt,
        each sequence in one) matter under ``shared_prompt``; by default each sequence stands alone.
        Packed without a row size, one row holds the whole batch, so nothing is padded.
        ``critique_spans`` (each sequence's critique tokens, for a model that learns to write
        them) become the batch's critique targets."""
        batch = self._batch(sequences, pad_token_id, groups, num_pairs, margin, ids)
        return batch if critique_spans is None else batch.with_critique_targets(critique_spans)

    def _batch(self, sequences, pad_token_id, groups, num_pairs, margin, ids) -> RewardBatch:
        fields = {"num_pairs": num_pairs, "margin": margin, "ids": ids}
        row_tokens = self.row_tokens or sum(len(s) for s in sequences)
        pad = pad_token_id
        if self.shared_prompt:
            groups = groups if groups is not None else [[k] for k in range(len(sequences))]
            return RewardBatch.shared_prompt(sequences, groups, pad, self.packing, row_tokens, **fields)
        if self.packing:
            return RewardBatch.packed(sequences, pad, row_tokens, **fields)
        return RewardBatch.padded(sequences, pad, self.padding_side, self.pad_to_multiple_of, **fields)

    def group_tokens(self, sequences: Sequence[Sequence[int]]) -> int:
        """Tokens a group of sequences lays out as one unit: the prompt once under ``shared_prompt``."""
        if self.shared_prompt:
            return shared_prompt_tokens(sequences)
        return max(len(s) for s in sequences)

    def for_scoring(self) -> "Layout":
        """The layout of evaluation and ``score`` batches: sequences (or shared-prompt groups) one per
        row, padded; packing would only save the little padding that length-sorted batches have."""
        return Layout(padding_side=self.padding_side, shared_prompt=self.shared_prompt)


@dataclass(frozen=True)
class Batching:
    """Which pairs go into which batch.

    Args:
        batch_size: Pairs per training batch (each pair is two sequences).
        eval_batch_size: Pairs per validation and test batch (default: ``batch_size``).
        max_tokens_per_batch: Fill each training batch with pairs up to this many tokens instead of
            ``batch_size`` pairs (padded batches count ``2 x pairs x longest``, packed ones their
            sequences' tokens): steps of even work, many short pairs or few long ones. Composed
            once per run and shuffled in order each epoch, so every epoch has as many steps.
        group_by_length: Batch pairs of similar length together (sorted within windows of
            ``50 x batch_size`` pairs) to cut padding.
        num_workers: DataLoader worker processes.
    """

    batch_size: int = 8
    eval_batch_size: Optional[int] = None
    max_tokens_per_batch: Optional[int] = None
    group_by_length: bool = True
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"data.batching.{name} must be >= 1, got {value}")
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < 2:
            raise InputError(f"data.batching.max_tokens_per_batch must be >= 2 (a pair is two sequences), "
                             f"got {self.max_tokens_per_batch}")

    def sampler(self, lengths: Sequence[int], seed: int, train: bool,
                layout: Layout) -> LengthGroupedBatchSampler:
        """The batch sampler of a set of pairs of ``lengths`` (tokens as ``layout`` lays each out):
        training batches shuffled by ``seed`` and the epoch, dropping what does not divide among
        ranks; evaluation batches in order, every pair seen."""
        grouped, pairs = self.group_by_length, len(lengths)
        if not train:
            size = self.eval_batch_size or self.batch_size
            return LengthGroupedBatchSampler(range(pairs), size, False, lengths,
                                             window_batches=None if grouped else 1, uneven="pad")
        if self.max_tokens_per_batch is not None:
            window = 50 * self.batch_size if grouped else None
            return TokenBudgetBatchSampler(pairs, self.max_tokens_per_batch, lengths, seed,
                                           packed=layout.packing, window_pairs=window,
                                           rows=1 if layout.shared_prompt else 2)
        # A window of one batch keeps the random composition: grouping off.
        return LengthGroupedBatchSampler(EpochShuffleSampler(pairs, seed), self.batch_size, False, lengths,
                                         window_batches=50 if grouped else 1, uneven="drop")
