"""RM-Bench as a :class:`~lightning_critrm.evaluation.benchmark.Benchmark`: each prompt's three
chosen and three rejected completions scored like training, every chosen against every rejected,
hard / normal / easy and per-domain accuracies as its official code."""

from __future__ import annotations

from typing import Any, Optional

from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.rmbench_data import HUB_NAME_RMBENCH, RMBenchRow, load_rmbench
from lightning_critrm.evaluation.rmbench_scoring import DOMAINS, STYLES, RMBenchScores, rmbench_scores


class RMBenchEval(Benchmark):
    """RM-Bench for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`."""

    name = "rmbench"
    default_source = HUB_NAME_RMBENCH
    unscored_counts_as = "wrong"
    table_headers = ("domain / accuracy", "score", "prompts")

    def load(self) -> list[RMBenchRow]:
        return load_rmbench(self.source, self.subsets)

    def completions(self, row: RMBenchRow) -> tuple[str, ...]:
        return row.chosen + row.rejected

    def label(self, row: RMBenchRow, k: int) -> str:
        return f"{'chosen' if k < len(STYLES) else 'rejected'} {STYLES[k % len(STYLES)]}"

    def scores(self, rewards: RowRewards) -> RMBenchScores:
        n = len(STYLES)
        return rmbench_scores((self.rows[i].subset, values[:n], values[n:]) for i, values in rewards)

    def metrics(self, scores: RMBenchScores) -> dict[str, float]:
        values = super().metrics(scores)
        values.update({k: v for k, v in (("hard", scores.hard), ("normal", scores.normal),
                                         ("easy", scores.easy)) if v is not None})
        return values

    def record_fields(self, scores: RMBenchScores) -> dict[str, Any]:
        return {"hard": scores.hard, "normal": scores.normal, "easy": scores.easy,
                "matrix_chosen_by_rejected_style": scores.matrix, "styles": list(STYLES)}

    def record_row(self, row: RMBenchRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        n = len(STYLES)
        return {"id": row.id, "domain": row.subset, "rewards_chosen": rewards[:n],
                "rewards_rejected": rewards[n:]}

    def table_lines(self, scores: RMBenchScores) -> list[TableLine]:
        lines: list[TableLine] = []
        for domain, parts in DOMAINS.items():
            if domain not in scores.subsets:
                lines.append((domain, None, 0, "  MISSING"))
                continue
            lines.append((domain, scores.subsets[domain], scores.rows[domain], self._unscored(scores, parts)))
            if len(parts) > 1:
                lines += [("  " + p, scores.subsets[p], scores.rows[p], "")
                          for p in parts if p in scores.subsets]
        known = {p for parts in DOMAINS.values() for p in parts}
        lines += [(s + " (not in RM-Bench)", scores.subsets[s], scores.rows[s], "")
                  for s in sorted(set(scores.subsets) - known - set(DOMAINS))]
        lines += [("hard (every prompt)", scores.hard, None, ""), ("normal", scores.normal, None, ""),
                  ("easy", scores.easy, None, "")]
        lines.append(("overall", scores.overall, None,
                      "  PARTIAL: mean of the domains scored above" if scores.partial else ""))
        return lines

    @staticmethod
    def _unscored(scores: RMBenchScores, parts: tuple[str, ...]) -> str:
        missing = sum(scores.unscored.get(p, 0) for p in parts)
        return f"  ({missing} without critique, counted wrong)" if missing else ""
