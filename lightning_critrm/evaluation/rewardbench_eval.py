"""One RewardBench evaluation: rows, their critiques and token ids, then scores and reports.

Shared by the per-epoch callback and the ``rewardbench`` subcommand, which differ only in how the
rewards are computed (inside a run, or through ``Trainer.predict`` from a checkpoint). Rows are
formatted by the training formatter with critiques from the same critic and cache
(:class:`~lightning_critrm.data.completion_encoder.CompletionEncoder`); the training data itself
is never read.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from lightning.pytorch.utilities import rank_zero_only

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.critique import CriticConfig, CritiqueSummary
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.evaluation.rewardbench_data import HUB_NAME, RewardBenchRow, load_rewardbench
from lightning_critrm.evaluation.rewardbench_scoring import RewardBenchScores, score
from lightning_critrm.model.reward_pass import SequenceBatches

log = logging.getLogger(__name__)

# (row index, reward of chosen, reward of rejected)
RowRewards = list[tuple[int, float, float]]


def evaluation_critiques(
    encoder: CompletionEncoder, items: Sequence, generate: bool, require_cached: Optional[bool], label: str
) -> list[Optional[str]]:
    """The critique of each item (None where it failed), missing ones generated first when
    ``generate`` (one process only); the summary is logged under ``label``."""
    if generate:
        summary = encoder.fill(items, require_cached)
        if summary is not None and rank_zero_only.rank == 0:
            log.info(f"{label}: {summary}")
    return encoder.critiques(items)


class RewardBenchEval:
    """RewardBench rows prepared for one reward model's input format.

    Args:
        source: ``allenai/reward-bench`` or local RewardBench files.
        subsets: Only these subsets (default: all in ``source``).
        max_rows: Only the first N rows.
        critic: Critic of the evaluation critiques when training read critiques from columns.
        batch_size: Sequences per forward pass.
        sort_by_length: Batch sequences of similar length together.
        num_text_examples: Rows shown in TensorBoard as text.
    """

    def __init__(
        self,
        source: str = HUB_NAME,
        subsets: Optional[list[str]] = None,
        max_rows: Optional[int] = None,
        critic: Optional[CriticConfig] = None,
        batch_size: int = 16,
        sort_by_length: bool = True,
        num_text_examples: int = 3,
    ):
        self.source = source
        self.subsets = subsets
        self.max_rows = max_rows
        self.critic = critic
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        self.num_text_examples = num_text_examples
        self.rows: Optional[list[RewardBenchRow]] = None
        self.scored: list[int] = []  # index (in rows) of each row with sequences
        self.sequences: list[list[int]] = []  # chosen then rejected of each scored row
        self.critiques: list[tuple[Optional[str], Optional[str]]] = []  # of each scored row
        self.without_critique: list[str] = []  # ids of the rows that cannot be scored

    # -- preparing ----------------------------------------------------------------------------
    def load_rows(self) -> list[RewardBenchRow]:
        rows = load_rewardbench(self.source, self.subsets)
        return rows if self.max_rows is None else rows[: self.max_rows]

    @staticmethod
    def items(rows: Sequence[RewardBenchRow]) -> list[tuple[tuple, str]]:
        return [(r.prompt, text) for r in rows for text in (r.chosen, r.rejected)]

    def fill_critiques(
        self, encoder: CompletionEncoder, require_cached: Optional[bool] = None
    ) -> Optional[CritiqueSummary]:
        """Generate the missing critiques of every completion scored here (None: the model reads
        none)."""
        return encoder.for_evaluation(self.critic).fill(self.items(self.load_rows()), require_cached)

    def prepare(
        self, encoder: CompletionEncoder, generate: bool, require_cached: Optional[bool] = None
    ) -> None:
        """Load rows, get their critiques (``generate``: fill missing ones first; only one
        process should) and tokenize them. A row whose critique failed is not scored: it counts as
        wrong, and the table and the record say how many there were."""
        if self.rows is not None:
            return
        encoder = encoder.for_evaluation(self.critic)
        rows = self.load_rows()
        items = self.items(rows)
        critiques = evaluation_critiques(encoder, items, generate, require_cached, f"rewardbench {self.source}")
        self.rows, self.scored, self.sequences, self.critiques, self.without_critique = rows, [], [], [], []
        for i, row in enumerate(rows):
            c_crit, r_crit = critiques[2 * i], critiques[2 * i + 1]
            if encoder.reads_critiques and (c_crit is None or r_crit is None):
                self.without_critique.append(row.id)  # never scored without the critique it was trained to read
                continue
            self.scored.append(i)
            self.critiques.append((c_crit, r_crit))
            self.sequences.append(encoder.encode(row.prompt, row.chosen, c_crit))
            self.sequences.append(encoder.encode(row.prompt, row.rejected, r_crit))
        if self.without_critique and rank_zero_only.rank == 0:
            log.warning(
                f"rewardbench: {len(self.without_critique)} row(s) have no critique (its generation failed) and "
                f"count as wrong: {self.without_critique[:10]}"
            )
        self.pad_token_id = encoder.pad_token_id
        self.padding_side = encoder.padding_side
        self.shared_prompt = encoder.shared_prompt

    def batches(self) -> SequenceBatches:
        """The prepared sequences in batches, dealt across ranks when iterated (a row's chosen and
        rejected completions together, with their prompt once, under ``data.shared_prompt``)."""
        return SequenceBatches(
            self.sequences, self.batch_size, self.pad_token_id, self.sort_by_length, self.padding_side,
            groups=[[k, k + 1] for k in range(0, len(self.sequences), 2)], shared_prompt=self.shared_prompt,
        )

    # -- scoring ------------------------------------------------------------------------------
    def row_rewards(self, rewards: dict[int, float]) -> RowRewards:
        """Per-row (index, chosen reward, rejected reward) from rewards by sequence index, for every
        row; NaN for a row without its critique."""
        if sorted(rewards) != list(range(len(self.sequences))):
            raise RuntimeError(
                f"{len(rewards)} of {len(self.sequences)} sequences scored: each must be scored once"
            )
        by_row = {row: (rewards[2 * k], rewards[2 * k + 1]) for k, row in enumerate(self.scored)}
        nan = float("nan")
        return [(i, *by_row.get(i, (nan, nan))) for i in range(len(self.rows))]

    def score(self, rewards: RowRewards) -> RewardBenchScores:
        return score((self.rows[i].subset, r_c, r_r) for i, r_c, r_r in rewards)

    def record(self, scores: RewardBenchScores, rewards: RowRewards, step: int) -> dict:
        return {
            "source": self.source,
            "step": step,
            "overall": scores.overall,
            "partial": scores.partial,
            "sections": {name: asdict(s) for name, s in scores.sections.items()},
            "subsets": scores.subsets,
            "rows_per_subset": scores.rows,
            "without_critique_counted_wrong": self.without_critique,
            "rows": [
                {
                    "id": self.rows[i].id,
                    "subset": self.rows[i].subset,
                    # None (JSON null), not NaN: a row without its critique has no reward
                    "reward_chosen": None if math.isnan(r_c) else r_c,
                    "reward_rejected": None if math.isnan(r_r) else r_r,
                }
                for i, r_c, r_r in rewards
            ],
        }

    def report(self, trainer, log_dir: Path, scores: RewardBenchScores, rewards: RowRewards,
               at: Optional[tuple[int, int]] = None) -> Path:
        """Log ``rewardbench/*`` scalars and text examples to the trainer's loggers and write the
        JSON record (scores and per-row rewards) into ``log_dir/rewardbench``; returns its path.
        ``at``: the (epoch, step) of the model scored, by default the trainer's."""
        epoch, step = at if at is not None else (trainer.current_epoch, trainer.global_step)
        metrics = {f"rewardbench/{subset}": acc for subset, acc in scores.subsets.items()}
        for section in scores.sections.values():
            if section.score is not None:
                metrics[f"rewardbench/{section.name}"] = section.score
        if scores.overall is not None:
            metrics["rewardbench/overall"] = scores.overall
        metrics["rewardbench/rows_without_critique"] = float(len(self.without_critique))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text") and self.num_text_examples:
                experiment.add_text("rewardbench/examples", self.examples(rewards), step)
        out_dir = log_dir / "rewardbench"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"epoch{epoch}-step{step}.json"
        write_text_atomically(path, json.dumps(self.record(scores, rewards, step), indent=1))
        overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
        partial = " (partial: see the sections)" if scores.partial else ""
        if rank_zero_only.rank == 0:
            log.info(f"rewardbench step {step}: overall {overall}{partial}; details in {path}")
        return path

    def examples(self, rewards: RowRewards) -> str:
        blocks = []
        critiques = dict(zip(self.scored, self.critiques))
        for i, r_c, r_r in [r for r in rewards if r[0] in critiques][: self.num_text_examples]:
            row, (c_crit, r_crit) = self.rows[i], critiques[i]
            blocks.append(
                f"**{row.subset} / {row.id}**\n\n*prompt:* {row.prompt[-1]['content'][:500]}\n\n"
                f"*chosen* (reward {r_c:.3f}): {row.chosen[:500]}\n\n*critique:* {(c_crit or '-')[:500]}\n\n"
                f"*rejected* (reward {r_r:.3f}): {row.rejected[:500]}\n\n*critique:* {(r_crit or '-')[:500]}"
            )
        return "\n\n---\n\n".join(blocks)
