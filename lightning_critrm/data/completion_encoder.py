"""Format completions for scoring exactly as training formats its pairs.

Evaluation sets (RewardBench) and the ``score`` command hold a :class:`CompletionEncoder` from the
data module: the training formatter, and critiques from the same critique service, so a model is
always scored on inputs shaped like the ones it learned from. They never touch the training data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from lightning_critrm.critique import CriticConfig, CritiqueStore, CritiqueSummary
from lightning_critrm.critique.fill import Item
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.errors import InputError
from lightning_critrm.layout import Layout
from lightning_critrm.records import Message


class CompletionEncoder:
    """Token ids of (prompt, completion) items, with their critiques, laid out like training.

    Args:
        formatter: The training data's formatter (chat template, critique block, truncation).
        store: Where critiques come from; ``None`` when there is no critic for these items yet
            (training read critiques from data columns: see :meth:`for_evaluation`).
        reads_critiques: Whether the reward model reads critiques at all (``critiques != none``).
        pad_token_id: Id written into padding.
        layout: How scoring batches lay sequences out (the training data's, without packing).
        store_dir: Folder of the default critique file, for a critic given at evaluation time.
    """

    def __init__(
        self,
        formatter: SequenceFormatter,
        store: Optional[CritiqueStore],
        reads_critiques: bool,
        pad_token_id: int,
        layout: Layout = Layout(),
        store_dir: Optional[Path] = None,
    ):
        self.formatter = formatter
        self.store = store
        self.reads_critiques = reads_critiques
        self.pad_token_id = pad_token_id
        self.layout = layout
        self.store_dir = store_dir

    def for_evaluation(self, critic: Optional[CriticConfig] = None) -> "CompletionEncoder":
        """This encoder with the critic of an evaluation set: ``critic`` when given (same
        critique file), else the training critic. Raises when training read critiques from data
        columns and no critic is given: nothing else could write matching critiques."""
        if not self.reads_critiques:
            return self
        if critic is not None:
            store = (
                self.store.with_critic(critic)
                if self.store
                else CritiqueStore.for_critic(critic, self.store_dir)
            )
        elif self.store is not None:
            store = self.store
        else:
            raise InputError(
                "training reads critiques from data columns, which this evaluation set does not have: "
                "give the evaluation a critic (the one that wrote the training critiques)"
            )
        return CompletionEncoder(self.formatter, store, True, self.pad_token_id, self.layout, self.store_dir)

    def fill(self, items: Sequence[Item], require_cached: Optional[bool] = None) -> Optional[CritiqueSummary]:
        """Generate the missing critiques of ``items``; None when the model reads none."""
        if not self.reads_critiques:
            return None
        return self._store().fill(items, require_cached)

    def critiques(self, items: Sequence[Item]) -> list[Optional[str]]:
        """The stored critique of each item (``None`` everywhere when the model reads none, and
        for an item whose critique failed or is missing)."""
        if not self.reads_critiques:
            return [None] * len(items)
        return self._store().lookup(items)

    def encode(self, prompt: Sequence[Message], completion: str, critique: Optional[str]) -> list[int]:
        return self.formatter.encode(prompt, completion, critique).input_ids

    def _store(self) -> CritiqueStore:
        if self.store is None:
            raise ValueError(
                "no critic: call for_evaluation() with the critic that wrote the training critiques"
            )
        return self.store
