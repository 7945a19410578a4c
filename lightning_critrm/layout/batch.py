"""The batch the reward model reads: the one place where a batch's layout is defined.

Collators build a :class:`RewardBatch`; the model reads each reward at the indices the batch gives
and never infers the layout from padding. Three layouts, read by the same model code:

* padded rows (``RewardBatch.padded``): one sequence per row;
* packed rows (``RewardBatch.packed``): several sequences per row, no padding between them;
* shared prompts (``RewardBatch.shared_prompt``): sequences that start alike (a pair's prompt)
  laid out as ``prefix | rest 1 | rest 2 ...`` with the prefix once, each rest attending to the
  prefix and to itself only (causal decoders: the prefix's hidden states do not depend on what
  follows it, so every sequence gets exactly the reward it would get alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal, NamedTuple, Optional

import torch

PaddingSide = Literal["right", "left"]


class Segment(NamedTuple):
    """One causal sequence of a row, for attention computed sequence by sequence."""

    spans: tuple[tuple[int, int], ...]  # its column ranges [start, end), in order
    # first of its positions whose outputs it writes (a shared prefix's belong to its first sequence)
    owns_from: int


@dataclass
class RewardBatch:
    """Sequences scored in one forward pass, and where each one's reward is read.

    For ``N`` sequences laid out in ``B`` rows of ``T`` tokens::

        input_ids          LongTensor [B, T]
        attention_mask     LongTensor [B, T]: 1 on real tokens, 0 on padding; None for a packed
                           layout, where restarting ``position_ids`` mark the sequence boundaries
        position_ids       LongTensor [B, T]: each token's position in its own sequence (0 first)
        first_token_index  LongTensor [N]: flat index (row * T + column) of each sequence's first token
        last_token_index   LongTensor [N]: flat index of each sequence's last token (the reward's)
        num_pairs          P: sequences [0, P) are the chosen and [P, 2P) the rejected completions
                           of P pairs, in the same order; 0 when sequences are scored on their own
        margin             FloatTensor [P]: per-pair loss margin, or None
        ids                LongTensor [N] (sequences) or [P] (pairs): caller's index of each item,
                           so results can be matched back (dataset rows, RewardBench sequences)
        block_ids          LongTensor [B, T] (shared-prompt layout only, else None): which group of
                           sequences each token belongs to; a row's padding is a block of its own
        branch_ids         LongTensor [B, T] (shared-prompt layout only): 0 on a group's shared
                           prefix, k on the rest of its k-th sequence, -1 on padding
        critique_index     LongTensor [M] (models that learn to write critiques, else None): flat
                           index of each position whose next token is a critique token
        critique_labels    LongTensor [M]: that next token, the one the position's logits predict

    In the shared-prompt layout ``first_token_index`` points at the group's prefix (where the
    sequence starts) and position ids continue after the prefix, so the position of each
    sequence's last token is its length - 1, as in the other layouts.
    """

    input_ids: torch.Tensor
    attention_mask: Optional[torch.Tensor]
    position_ids: torch.Tensor
    first_token_index: torch.Tensor
    last_token_index: torch.Tensor
    num_pairs: int = 0
    margin: Optional[torch.Tensor] = None
    ids: Optional[torch.Tensor] = None
    block_ids: Optional[torch.Tensor] = None
    branch_ids: Optional[torch.Tensor] = None
    critique_index: Optional[torch.Tensor] = None
    critique_labels: Optional[torch.Tensor] = None

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
        _check_sequences(sequences, num_pairs)
        width = max(len(s) for s in sequences)
        if pad_to_multiple_of:
            width = math.ceil(width / pad_to_multiple_of) * pad_to_multiple_of
        input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        starts = []
        for row, seq in enumerate(sequences):
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
            **_pair_fields(num_pairs, margin, ids),
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
        restart at 0 for every sequence, and there is no attention mask: the model attends within
        each sequence (one at a time through :meth:`attention_segments` under sdpa; under other
        attention, transformers 5.x reads the restarts as sequence boundaries). Rows are padded at
        their end only, as a sequence of their own."""
        _check_sequences(sequences, num_pairs)
        capacity = max(row_tokens or 0, max(len(s) for s in sequences))
        rows = _first_fit([len(s) for s in sequences], capacity)  # sequence indices per row
        width = max(sum(len(sequences[k]) for k in row) for row in rows)
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
            **_pair_fields(num_pairs, margin, ids),
        )

    @classmethod
    def shared_prompt(
        cls,
        sequences: Sequence[Sequence[int]],
        groups: Sequence[Sequence[int]],
        pad_token_id: int,
        pack: bool = False,
        row_tokens: Optional[int] = None,
        num_pairs: int = 0,
        margin: Optional[Sequence[float]] = None,
        ids: Optional[Sequence[int]] = None,
    ) -> "RewardBatch":
        """Each group of sequences (indices into ``sequences``, e.g. a pair's chosen and rejected)
        laid out as its common prefix once, then each sequence's rest: ``prefix | rest 1 | rest 2``.
        The prefix is the group's longest common start, kept one token short of the shortest
        member so every sequence keeps its own last token (where its reward is read).

        One group per row, padded at the end; ``pack`` puts several groups in a row instead (up to
        ``row_tokens`` tokens, default the longest group; first fit, longest first). Rewards are
        those of the sequences scored alone, for causal decoders, when the model attends as
        :meth:`attention_blocks` says. ``sequences`` keep their order in the rewards."""
        _check_sequences(sequences, num_pairs)
        if sorted(k for g in groups for k in g) != list(range(len(sequences))) or any(not g for g in groups):
            raise ValueError(
                f"groups must split the {len(sequences)} sequences, each in exactly one non-empty group")
        prefixes = [shared_prompt_length([sequences[k] for k in g]) for g in groups]
        sizes = [shared_prompt_tokens([sequences[k] for k in g]) for g in groups]
        capacity = max(row_tokens or 0, max(sizes)) if pack else max(sizes)
        rows = _first_fit(sizes, capacity) if pack else [[g] for g in range(len(groups))]
        width = max(sum(sizes[g] for g in row) for row in rows)
        input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        block_ids = torch.zeros((len(rows), width), dtype=torch.long)
        branch_ids = torch.full((len(rows), width), -1, dtype=torch.long)
        first = [0] * len(sequences)
        last = [0] * len(sequences)
        block = 0
        for r, members in enumerate(rows):
            column = 0
            for g in members:
                p = prefixes[g]
                head = sequences[groups[g][0]][:p]
                input_ids[r, column : column + p] = torch.as_tensor(head, dtype=torch.long)
                position_ids[r, column : column + p] = torch.arange(p)
                block_ids[r, column : column + sizes[g]] = block
                branch_ids[r, column : column + p] = 0
                start = column
                column += p
                for branch, k in enumerate(groups[g], start=1):
                    rest = sequences[k][p:]
                    input_ids[r, column : column + len(rest)] = torch.as_tensor(rest, dtype=torch.long)
                    position_ids[r, column : column + len(rest)] = torch.arange(p, p + len(rest))
                    branch_ids[r, column : column + len(rest)] = branch
                    first[k] = r * width + start
                    last[k] = r * width + column + len(rest) - 1
                    column += len(rest)
                block += 1
            if column < width:  # the tail: a block of its own
                position_ids[r, column:] = torch.arange(width - column)
                block_ids[r, column:] = block
                block += 1
        return cls(
            input_ids=input_ids,
            attention_mask=None,
            position_ids=position_ids,
            first_token_index=torch.tensor(first, dtype=torch.long),
            last_token_index=torch.tensor(last, dtype=torch.long),
            **_pair_fields(num_pairs, margin, ids),
            block_ids=block_ids,
            branch_ids=branch_ids,
        )

    # -- reading ------------------------------------------------------------------------------
    @property
    def num_sequences(self) -> int:
        return int(self.last_token_index.numel())

    @property
    def num_tokens(self) -> int:
        """Tokens of the sequences scored (a shared prefix counts once per sequence that starts
        with it): the work a one-sequence-per-row pass does without its padding."""
        # Every layout numbers a sequence's tokens from 0, so its last token's position is its length - 1.
        return int(self.position_ids.reshape(-1)[self.last_token_index].sum()) + self.num_sequences

    @property
    def num_positions(self) -> int:
        """Tokens the forward pass processes, padding included."""
        return int(self.input_ids.numel())

    @property
    def is_right_padded(self) -> bool:
        """Padded layout with every sequence starting its row (padding only after the tokens)."""
        if self.attention_mask is None:
            return False
        return bool((self.first_token_index % self.input_ids.shape[1] == 0).all())

    @property
    def num_padding(self) -> int:
        """Positions that hold no token of any sequence."""
        if self.branch_ids is not None:
            return int((self.branch_ids < 0).sum())
        if self.attention_mask is not None:
            return self.num_positions - int(self.attention_mask.sum())
        return self.num_positions - self.num_tokens

    def attention_segments(self) -> list[list[Segment]]:
        """Each row's sequences as :data:`Segment` s, for the packed and shared-prompt layouts:
        attending within each segment, causally, is what :meth:`attention_blocks` allows."""
        width = self.input_ids.shape[1]
        rows: list[list[Segment]] = [[] for _ in range(self.input_ids.shape[0])]
        if self.block_ids is None:
            if self.attention_mask is not None:
                raise ValueError("a padded batch has no segments: its rows are its sequences")
            for first, last in zip(self.first_token_index.tolist(), self.last_token_index.tolist()):
                rows[first // width].append(Segment(((first % width, last % width + 1),), 0))
            return rows
        for r, (blocks, branches) in enumerate(zip(self.block_ids.tolist(), self.branch_ids.tolist())):
            spans: dict[tuple[int, int], list[int]] = {}  # (block, branch) -> [first column, end]
            for column, key in enumerate(zip(blocks, branches)):
                if key[1] >= 0:
                    spans.setdefault(key, [column, column])[1] = column + 1
            for (block, branch), (start, end) in spans.items():
                if branch == 0:
                    continue
                prefix = spans.get((block, 0))
                if prefix is None:
                    rows[r].append(Segment(((start, end),), 0))
                else:
                    rows[r].append(Segment((tuple(prefix), (start, end)),
                                           0 if branch == 1 else prefix[1] - prefix[0]))
        return rows

    def attention_blocks(self) -> torch.Tensor:
        """BoolTensor [B, 1, T, T] of the shared-prompt layout: query ``t`` may attend key ``s``
        when both lie in the same block, ``s`` is not after ``t``, and ``s`` is on the prefix or on
        the same sequence's rest as ``t`` (so two completions never see each other)."""
        if self.block_ids is None or self.branch_ids is None:
            raise ValueError("only the shared-prompt layout carries attention blocks")
        width = self.input_ids.shape[1]
        same_block = self.block_ids[:, :, None] == self.block_ids[:, None, :]
        key_branch = self.branch_ids[:, None, :]
        visible = (key_branch == 0) | (key_branch == self.branch_ids[:, :, None])
        causal = torch.ones(width, width, dtype=torch.bool, device=self.input_ids.device).tril()
        return (same_block & visible & causal)[:, None]

    def token_index(self, k: int) -> torch.Tensor:
        """LongTensor [L]: the flat index of each of sequence ``k``'s tokens, in order (in the
        shared-prompt layout its prefix, then its own rest)."""
        first, last = int(self.first_token_index[k]), int(self.last_token_index[k])
        length = int(self.position_ids.reshape(-1)[last]) + 1
        own = length  # tokens laid out contiguously up to the last one
        if self.branch_ids is not None:
            width = self.input_ids.shape[1]
            row = last // width
            same = (self.block_ids[row] == self.block_ids[row, last % width]) & (
                self.branch_ids[row] == self.branch_ids[row, last % width])
            own = int(same.sum())
        prefix = torch.arange(first, first + length - own)
        return torch.cat([prefix, torch.arange(last - own + 1, last + 1)])

    def with_critique_targets(self, spans: Sequence[Optional[tuple[int, int]]]) -> "RewardBatch":
        """This batch with :attr:`critique_index` and :attr:`critique_labels` set from each sequence's
        critique tokens ``spans[k] = (start, end)`` (positions in sequence ``k``; None: it has
        none): every critique token is predicted from the position before it, in any layout."""
        if len(spans) != self.num_sequences:
            raise ValueError(f"{len(spans)} critique spans for {self.num_sequences} sequences")
        sources, labels = [], []
        flat_ids = self.input_ids.reshape(-1)
        for k, span in enumerate(spans):
            if span is None:
                continue
            start, end = span
            if not 1 <= start <= end:
                raise ValueError(f"sequence {k}: critique span {span} must start after the first token")
            index = self.token_index(k).to(flat_ids.device)
            sources.append(index[start - 1 : end - 1])
            labels.append(flat_ids[index[start:end]])
        empty = torch.zeros(0, dtype=torch.long, device=flat_ids.device)
        return replace(self, critique_index=torch.cat(sources) if sources else empty,
                       critique_labels=torch.cat(labels) if labels else empty)

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


def _pair_fields(num_pairs: int, margin: Optional[Sequence[float]], ids: Optional[Sequence[int]]) -> dict:
    return {
        "num_pairs": num_pairs,
        "margin": None if margin is None else torch.tensor([float(m) for m in margin], dtype=torch.float32),
        "ids": None if ids is None else torch.tensor(list(ids), dtype=torch.long),
    }


def _check_sequences(sequences: Sequence[Sequence[int]], num_pairs: int) -> None:
    if not sequences:
        raise ValueError("a batch needs at least one sequence")
    if num_pairs and len(sequences) != 2 * num_pairs:
        raise ValueError(f"{num_pairs} pairs need {2 * num_pairs} sequences, got {len(sequences)}")
    empty = next((k for k, s in enumerate(sequences) if not s), None)
    if empty is not None:
        raise ValueError(f"sequence {empty} of the batch is empty")


def shared_prompt_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens every one of ``sequences`` starts with, at most the shortest one's length - 1 (each
    keeps a token of its own)."""
    shortest = min(len(s) for s in sequences)
    n = 0
    while n < shortest - 1 and all(s[n] == sequences[0][n] for s in sequences[1:]):
        n += 1
    return n


def shared_prompt_tokens(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens of ``sequences`` laid out as one shared-prompt group: the prefix once, then each rest."""
    prefix = shared_prompt_length(sequences)
    return prefix + sum(len(s) - prefix for s in sequences)


def _first_fit(sizes: Sequence[int], capacity: int) -> list[list[int]]:
    """Item indices per row: each item, longest first, into the first row with room for it."""
    rows: list[list[int]] = []
    fill: list[int] = []
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        row = next((r for r, used in enumerate(fill) if used + sizes[k] <= capacity), None)
        if row is None:
            rows.append([])
            fill.append(0)
            row = len(rows) - 1
        rows[row].append(k)
        fill[row] += sizes[k]
    return rows
