"""RMB as a :class:`~lightning_critrm.evaluation.benchmark.Benchmark`: every answer of an item scored
like training (its conversation through the chat template), pairwise and best-of-N items decided
as the official code decides them, accuracy per scenario, per section and overall."""

from __future__ import annotations

from typing import Any, Optional

from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.rmb_data import DEFAULT_SOURCE_RMB, FIELDS, RMBRow, load_rmb
from lightning_critrm.evaluation.rmb_scoring import SECTIONS, RMBScores, rmb_scores


class RMBEval(Benchmark):
    """RMB for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`."""

    name = "rmb"
    default_source = DEFAULT_SOURCE_RMB
    unscored_counts_as = "wrong"
    table_headers = ("section / scenario", "accuracy", "items")

    def load(self) -> list[RMBRow]:
        return load_rmb(self.source, self.subsets)

    def completions(self, row: RMBRow) -> tuple[str, ...]:
        return row.answers

    def label(self, row: RMBRow, k: int) -> str:
        if row.kind == "pairwise":
            return ("chosen", "rejected")[k]
        return "best" if k == 0 else f"loser {k}"

    def scores(self, rewards: RowRewards) -> RMBScores:
        return rmb_scores((self.rows[i].subset, values) for i, values in rewards)

    def metrics(self, scores: RMBScores) -> dict[str, float]:
        return {**scores.sections, **super().metrics(scores)}

    def record_fields(self, scores: RMBScores) -> dict[str, Any]:
        return {"sections": scores.sections, "items_per_section": scores.section_rows}

    def record_row(self, row: RMBRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {FIELDS[row.kind][0]: row.id, "category_path": row.subset, "rewards": rewards}

    def table_lines(self, scores: RMBScores) -> list[TableLine]:
        lines: list[TableLine] = []
        for section, start in SECTIONS.items():
            if section not in scores.sections:
                lines.append((section, None, 0, "  MISSING"))
                continue
            missing = sum(n for path, n in scores.unscored.items() if path.startswith(start))
            note = f"  ({missing} without critique, counted wrong)" if missing else ""
            lines.append((section, scores.sections[section], scores.section_rows[section], note))
            lines += [("  " + path[len(start):], scores.subsets[path], scores.rows[path], "")
                      for path in sorted(scores.subsets) if path.startswith(start)]
        lines.append(("overall", scores.overall, None,
                      "  PARTIAL: mean of the sections scored above" if scores.partial else ""))
        return lines
