"""RewardBench (v1) as a :class:`~lightning_critrm.evaluation.benchmark.Benchmark`: each row a
chosen and a rejected completion, accuracy by subset and section as the official leaderboard."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Optional

from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.rewardbench_data import HUB_NAME, RewardBenchRow, load_rewardbench
from lightning_critrm.evaluation.rewardbench_scoring import SECTIONS, RewardBenchScores, rewardbench_scores


class RewardBenchEval(Benchmark):
    """RewardBench v1 for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`."""

    name = "rewardbench"
    default_source = HUB_NAME
    unscored_counts_as = "wrong"
    table_headers = ("section / subset", "accuracy", "rows")

    def load(self) -> list[RewardBenchRow]:
        return load_rewardbench(self.source, self.subsets)

    def completions(self, row: RewardBenchRow) -> tuple[str, str]:
        return row.chosen, row.rejected

    def label(self, row: RewardBenchRow, k: int) -> str:
        return ("chosen", "rejected")[k]

    def scores(self, rewards: RowRewards) -> RewardBenchScores:
        return rewardbench_scores((self.rows[i].subset, r_c, r_r) for i, (r_c, r_r) in rewards)

    def metrics(self, scores: RewardBenchScores) -> dict[str, float]:
        values = super().metrics(scores)
        values.update({s.name: s.score for s in scores.sections.values() if s.score is not None})
        return values

    def record_fields(self, scores: RewardBenchScores) -> dict[str, Any]:
        return {"sections": {name: asdict(s) for name, s in scores.sections.items()}}

    def record_row(self, row: RewardBenchRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"id": row.id, "subset": row.subset, "reward_chosen": rewards[0],
                "reward_rejected": rewards[1]}

    def table_lines(self, scores: RewardBenchScores) -> list[TableLine]:
        lines: list[TableLine] = []
        for name, section in scores.sections.items():
            note = (f"  PARTIAL: {section.subsets_present}/{section.subsets_total} subsets, "
                    f"{section.rows_present}/{section.rows_total} rows" if section.partial else "")
            lines.append((name, section.score, section.rows_present, note))
            lines += [self._subset_line(scores, subset,
                                        subset) for subset in SECTIONS[name] if subset in scores.subsets]
        others = sorted(set(scores.subsets) - {s for members in SECTIONS.values() for s in members})
        lines += [self._subset_line(scores, subset, subset + " (no section)") for subset in others]
        lines.append(("overall", scores.overall, None,
                      "  PARTIAL: mean of the sections scored above" if scores.partial else ""))
        return lines

    def table(self, scores: RewardBenchScores) -> str:
        unscored = sum(scores.unscored.values())
        note = f"\n{unscored} row(s) had no critique (its generation failed) and count as wrong"
        return super().table(scores) + (note if unscored else "")

    @staticmethod
    def _subset_line(scores: RewardBenchScores, subset: str, label: str) -> TableLine:
        missing = scores.unscored.get(subset)
        return ("  " + label, scores.subsets[subset], scores.rows[subset],
                f"  ({missing} without critique, counted wrong)" if missing else "")
