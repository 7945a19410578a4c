"""RewardBench 2 rows prepared for one reward model's input format: every completion of a prompt
(the correct ones first) scored like training, best-of-N and Ties scored as the official runner.

The same interface as :class:`RewardBenchEval` (v1), so the callback and the ``rewardbench``
subcommand run either."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from lightning.pytorch.utilities import rank_zero_only

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.critique import CriticConfig, CritiqueSummary
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.evaluation.rewardbench2_data import HUB_NAME_V2, RewardBench2Row, load_rewardbench2
from lightning_critrm.evaluation.rewardbench2_scoring import (
    SUBSET_PROMPTS,
    SUBSETS,
    RewardBench2Scores,
    score_v2,
)
from lightning_critrm.evaluation.rewardbench_eval import evaluation_critiques
from lightning_critrm.model.reward_pass import SequenceBatches

log = logging.getLogger(__name__)

# (row index, scores of its completions; NaN where the row could not be scored)
PromptScores = list[tuple[int, list[float]]]


class RewardBench2Eval:
    """RewardBench 2 for one model. Args as :class:`RewardBenchEval`."""

    version = 2

    def __init__(self, source: str = HUB_NAME_V2, subsets: Optional[list[str]] = None, max_rows: Optional[int] = None,
                 critic: Optional[CriticConfig] = None, batch_size: int = 16, sort_by_length: bool = True,
                 num_text_examples: int = 3):
        self.source, self.subsets, self.max_rows, self.critic = source, subsets, max_rows, critic
        self.batch_size, self.sort_by_length = batch_size, sort_by_length
        self.num_text_examples = num_text_examples  # (kept for the common interface)
        self.rows: Optional[list[RewardBench2Row]] = None
        self.scored: list[tuple[int, int]] = []  # (row index, index of its first sequence)
        self.sequences: list[list[int]] = []
        self.without_critique: list[str] = []

    def load_rows(self) -> list[RewardBench2Row]:
        rows = load_rewardbench2(self.source, self.subsets)
        return rows if self.max_rows is None else rows[: self.max_rows]

    @staticmethod
    def items(rows: Sequence[RewardBench2Row]) -> list[tuple[tuple, str]]:
        return [(r.prompt, c) for r in rows for c in r.completions]

    def fill_critiques(self, encoder: CompletionEncoder, require_cached: Optional[bool] = None) -> Optional[CritiqueSummary]:
        return encoder.for_evaluation(self.critic).fill(self.items(self.load_rows()), require_cached)

    def prepare(self, encoder: CompletionEncoder, generate: bool, require_cached: Optional[bool] = None) -> None:
        """Rows, critiques (``generate``: fill missing ones first; one process only) and token ids. A
        prompt with a completion whose critique failed is not scored: it counts 0, and is counted."""
        if self.rows is not None:
            return
        encoder = encoder.for_evaluation(self.critic)
        rows = self.load_rows()
        items = self.items(rows)
        critiques = evaluation_critiques(encoder, items, generate, require_cached, f"rewardbench2 {self.source}")
        self.rows, self.scored, self.sequences, self.without_critique = rows, [], [], []
        position = 0
        for i, row in enumerate(rows):
            own = critiques[position : position + len(row.completions)]
            position += len(row.completions)
            if encoder.reads_critiques and any(c is None for c in own):
                self.without_critique.append(row.id)
                continue
            self.scored.append((i, len(self.sequences)))
            self.sequences.extend(encoder.encode(row.prompt, text, c) for text, c in zip(row.completions, own))
        if self.without_critique and rank_zero_only.rank == 0:
            log.warning(f"rewardbench2: {len(self.without_critique)} prompt(s) have a completion without its "
                        f"critique and count 0: {self.without_critique[:10]}")
        self.pad_token_id = encoder.pad_token_id
        self.padding_side = encoder.padding_side
        self.shared_prompt = encoder.shared_prompt

    def batches(self) -> SequenceBatches:
        """The prepared sequences in batches (the completions of one prompt together, with the prompt
        once, under ``data.shared_prompt``)."""
        ends = [start for _, start in self.scored[1:]] + [len(self.sequences)]
        groups = [list(range(start, end)) for (_, start), end in zip(self.scored, ends)]
        return SequenceBatches(self.sequences, self.batch_size, self.pad_token_id, self.sort_by_length,
                               self.padding_side, groups=groups, shared_prompt=self.shared_prompt)

    def row_rewards(self, rewards: dict[int, float]) -> PromptScores:
        if sorted(rewards) != list(range(len(self.sequences))):
            raise RuntimeError(f"{len(rewards)} of {len(self.sequences)} sequences scored: each must be scored once")
        first = dict(self.scored)
        out = []
        for i, row in enumerate(self.rows):
            n = len(row.completions)
            out.append((i, [rewards[first[i] + k] for k in range(n)] if i in first else [math.nan] * n))
        return out

    def score(self, scores: PromptScores) -> RewardBench2Scores:
        return score_v2((self.rows[i].subset, self.rows[i].id, s, self.rows[i].num_correct) for i, s in scores)

    def report(self, trainer, log_dir: Path, scores: RewardBench2Scores, rewards: PromptScores,
               at: Optional[tuple[int, int]] = None) -> Path:
        """``rewardbench2/<subset>`` and ``rewardbench2/overall`` to the loggers, and a JSON record
        with every prompt's scores into ``log_dir/rewardbench2``; returns its path. ``at``: the
        (epoch, step) of the model scored, by default the trainer's."""
        epoch, step = at if at is not None else (trainer.current_epoch, trainer.global_step)
        metrics = {f"rewardbench2/{subset}": value for subset, value in scores.subsets.items()}
        if scores.overall is not None:
            metrics["rewardbench2/overall"] = scores.overall
        metrics["rewardbench2/rows_without_critique"] = float(len(self.without_critique))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        record = {
            "source": self.source, "step": step, "overall": scores.overall, "partial": scores.partial,
            "subsets": scores.subsets, "rows_per_subset": scores.rows,
            "without_critique_counted_zero": self.without_critique,
            "rows": [{"id": self.rows[i].id, "subset": self.rows[i].subset, "num_correct": self.rows[i].num_correct,
                      "scores": [None if math.isnan(v) else v for v in s]} for i, s in rewards],
        }
        out_dir = log_dir / "rewardbench2"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"epoch{epoch}-step{step}.json"
        write_text_atomically(path, json.dumps(record, indent=1))
        if rank_zero_only.rank == 0:
            overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
            log.info(f"rewardbench2 step {step}: overall {overall}{' (partial)' if scores.partial else ''}; details in {path}")
        return path


def format_table_v2(scores: RewardBench2Scores) -> str:
    lines = [f"{'subset':<28} {'score':>8} {'prompts':>8}"]
    for subset in SUBSETS:
        if subset not in scores.subsets:
            lines.append(f"{subset:<28} {'-':>8} {0:>8}  PARTIAL: 0/{SUBSET_PROMPTS[subset]} prompts")
            continue
        n = scores.rows[subset]
        note = f"  PARTIAL: {n}/{SUBSET_PROMPTS[subset]} prompts" if n < SUBSET_PROMPTS[subset] else ""
        missing = scores.unscored.get(subset)
        note += f"  ({missing} without critique, counted 0)" if missing else ""
        lines.append(f"{subset:<28} {100 * scores.subsets[subset]:>8.1f} {n:>8}{note}")
    for subset in sorted(set(scores.subsets) - set(SUBSETS)):
        lines.append(f"{subset + ' (not in v2)':<28} {100 * scores.subsets[subset]:>8.1f} {scores.rows[subset]:>8}")
    overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
    lines.append(f"{'overall':<28} {overall:>8}" + ("  PARTIAL: mean of the subsets scored above" if scores.partial else ""))
    return "\n".join(lines)
