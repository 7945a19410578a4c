"""JudgeBench as a :class:`~lightning_critrm.evaluation.benchmark.Benchmark`: both responses of a
pair scored like training, the pair decided as the official reward-model judges decide it,
accuracy per category and overall."""

from __future__ import annotations

from typing import Any, Optional

from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.judgebench_data import HUB_NAME_JUDGEBENCH, JudgeBenchRow, load_judgebench
from lightning_critrm.evaluation.judgebench_scoring import CATEGORIES, JudgeBenchScores, judgebench_scores


class JudgeBenchEval(Benchmark):
    """JudgeBench for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`."""

    name = "judgebench"
    default_source = HUB_NAME_JUDGEBENCH
    unscored_counts_as = "wrong"
    table_headers = ("category", "accuracy", "pairs")

    def load(self) -> list[JudgeBenchRow]:
        return load_judgebench(self.source, self.subsets)

    def completions(self, row: JudgeBenchRow) -> tuple[str, str]:
        return row.response_a, row.response_b

    def label(self, row: JudgeBenchRow, k: int) -> str:
        return f"response {'AB'[k]}" + (" (correct)" if row.label == ("A>B", "B>A")[k] else "")

    def scores(self, rewards: RowRewards) -> JudgeBenchScores:
        return judgebench_scores((self.rows[i].subset, self.rows[i].label, a, b) for i, (a, b) in rewards)

    def record_row(self, row: JudgeBenchRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"pair_id": row.id, "source": row.source, "label": row.label, "reward_A": rewards[0],
                "reward_B": rewards[1]}

    def table_lines(self, scores: JudgeBenchScores) -> list[TableLine]:
        lines: list[TableLine] = []
        for name in CATEGORIES:
            missing = scores.unscored.get(name)
            note = f"  ({missing} without critique, counted wrong)" if missing else ""
            lines.append((name, scores.subsets.get(name), scores.rows.get(name, 0),
                          note if name in scores.subsets else "  MISSING"))
        lines.append(("overall", scores.overall, sum(scores.rows.values()),
                      "  PARTIAL: the categories scored above" if scores.partial else ""))
        return lines
