"""RewardBench 2 as a :class:`~lightning_critrm.evaluation.benchmark.Benchmark`: every completion
of a prompt (the correct ones first) scored like training, best-of-N and Ties scored as the
official runner."""

from __future__ import annotations

from typing import Any, Optional

from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.rewardbench2_data import HUB_NAME_V2, RewardBench2Row, load_rewardbench2
from lightning_critrm.evaluation.rewardbench2_scoring import (
    SUBSET_PROMPTS,
    SUBSETS,
    RewardBench2Scores,
    rewardbench2_scores,
)


class RewardBench2Eval(Benchmark):
    """RewardBench 2 for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`."""

    name = "rewardbench2"
    default_source = HUB_NAME_V2
    unscored_counts_as = "zero"
    table_headers = ("subset", "score", "prompts")

    def load(self) -> list[RewardBench2Row]:
        return load_rewardbench2(self.source, self.subsets)

    def completions(self, row: RewardBench2Row) -> tuple[str, ...]:
        return row.completions

    def scores(self, rewards: RowRewards) -> RewardBench2Scores:
        return rewardbench2_scores((self.rows[i].subset, self.rows[i].id, s, self.rows[i].num_correct) for i,
                        s in rewards)

    def record_row(self, row: RewardBench2Row, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"id": row.id, "subset": row.subset, "num_correct": row.num_correct, "scores": rewards}

    def table_lines(self, scores: RewardBench2Scores) -> list[TableLine]:
        lines: list[TableLine] = []
        for subset in SUBSETS:
            n = scores.rows.get(subset, 0)
            note = f"  PARTIAL: {n}/{SUBSET_PROMPTS[subset]} prompts" if n < SUBSET_PROMPTS[subset] else ""
            missing = scores.unscored.get(subset)
            note += f"  ({missing} without critique, counted 0)" if missing else ""
            lines.append((subset, scores.subsets.get(subset), n, note))
        for subset in sorted(set(scores.subsets) - set(SUBSETS)):
            lines.append((subset + " (not in v2)", scores.subsets[subset], scores.rows[subset], ""))
        lines.append(("overall", scores.overall, None,
                      "  PARTIAL: mean of the subsets scored above" if scores.partial else ""))
        return lines
