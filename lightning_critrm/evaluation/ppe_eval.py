"""PPE as two :class:`~lightning_critrm.evaluation.benchmark.Benchmark` s: ``ppe_human`` (both
responses of each Chatbot Arena vote scored like training; accuracy per language, per category
and overall) and ``ppe_correctness`` (every response of each best-of-K row; accuracy, the best-of-K
metrics, row-wise Pearson and ROC AUC per set), scored as :mod:`.ppe_scoring` says."""

from __future__ import annotations

from typing import Any, Optional

from lightning_critrm.evaluation import ppe_data, ppe_scoring
from lightning_critrm.evaluation.benchmark import Benchmark, RowRewards, TableLine
from lightning_critrm.evaluation.ppe_data import PPECorrectnessRow, PPEHumanRow
from lightning_critrm.evaluation.ppe_scoring import PPECorrectnessScores, PPEHumanScores


def _unscored_note(count: Optional[int]) -> str:
    return f"  ({count} without critique, counted wrong)" if count else ""


class PPEHumanEval(Benchmark):
    """PPE human preference for one model. Args as :class:`~lightning_critrm.evaluation.benchmark.Benchmark`
    (``subsets``: languages)."""

    name = "ppe_human"
    default_source = ppe_data.HUB_NAME_PPE_HUMAN
    unscored_counts_as = "wrong"
    table_headers = ("language / category", "accuracy", "votes")

    def load(self) -> list[PPEHumanRow]:
        return ppe_data.load_ppe_human(self.source, self.subsets)

    def completions(self, row: PPEHumanRow) -> tuple[str, str]:
        return row.responses

    def label(self, row: PPEHumanRow, k: int) -> str:
        return f"response {k + 1}" + (" (preferred)" if k == row.preferred else "")

    def scores(self, rewards: RowRewards) -> PPEHumanScores:
        rows = self.rows
        return ppe_scoring.ppe_human_scores(((rows[i].subset, rows[i].categories, rows[i].preferred, values)
                                 for i, values in rewards), partial=bool(self.subsets))

    def metrics(self, scores: PPEHumanScores) -> dict[str, float]:
        return {**{f"category/{k}": v for k, v in scores.categories.items()}, **super().metrics(scores)}

    def record_fields(self, scores: PPEHumanScores) -> dict[str, Any]:
        return {"categories": scores.categories, "rows_per_category": scores.category_rows}

    def record_row(self, row: PPEHumanRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"question_id": row.id, "language": row.subset, "winner": row.winner,
                "reward_1": rewards[0], "reward_2": rewards[1]}

    def table_lines(self, scores: PPEHumanScores) -> list[TableLine]:
        lines: list[TableLine] = [(f"category {name}", scores.categories.get(name),
                                   scores.category_rows.get(name, 0), "") for name in ppe_scoring.CATEGORIES]
        lines += [(language, scores.subsets[language], scores.rows[language],
                   _unscored_note(scores.unscored.get(language)))
                  for language in sorted(scores.subsets, key=lambda name: (-scores.rows[name], name))]
        lines.append(("overall", scores.overall, sum(scores.rows.values()),
                      "  PARTIAL: the languages asked for" if scores.partial else ""))
        return lines


class PPECorrectnessEval(Benchmark):
    """PPE correctness (best-of-K) for one model. Args as
    :class:`~lightning_critrm.evaluation.benchmark.Benchmark` (``source``: ``lmarena-ai`` for every
    set on the hub, one set, or a folder of set folders; ``subsets``: set short names)."""

    name = "ppe_correctness"
    default_source = ppe_data.HUB_ORG_PPE
    unscored_counts_as = "wrong"
    table_headers = ("set / metric", "score", "rows")

    def load(self) -> list[PPECorrectnessRow]:
        return ppe_data.load_ppe_correctness(self.source, self.subsets)

    def completions(self, row: PPECorrectnessRow) -> tuple[str, ...]:
        return row.responses

    def label(self, row: PPECorrectnessRow, k: int) -> str:
        return f"response {k + 1} ({'correct' if row.correct[k] else 'incorrect'})"

    def scores(self, rewards: RowRewards) -> PPECorrectnessScores:
        return ppe_scoring.ppe_correctness_scores((self.rows[i].subset, values, self.rows[i].correct)
                                      for i, values in rewards)

    def metrics(self, scores: PPECorrectnessScores) -> dict[str, float]:
        values = {f"{name}/{metric}": value for name, s in scores.sets.items()
                  for metric, value in s.metrics().items()}
        if scores.overall is not None:
            values["overall"] = scores.overall
        return values

    def record_fields(self, scores: PPECorrectnessScores) -> dict[str, Any]:
        return {"sets": {name: {**s.metrics(), "best_of_k": s.best_of_k, "oracle_best_of_k": s.oracle}
                         for name, s in scores.sets.items()}}

    def record_row(self, row: PPECorrectnessRow, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"set": row.subset, "question_id": row.question_id, "model_name": row.model_name,
                "correct": list(row.correct), "rewards": rewards}

    def table_lines(self, scores: PPECorrectnessScores) -> list[TableLine]:
        lines: list[TableLine] = []
        for name in ppe_scoring.CORRECTNESS_SETS:
            if name not in scores.sets:
                lines.append((name, None, 0, "  MISSING"))
                continue
            s = scores.sets[name]
            lines.append((name, s.accuracy, s.rows, "  accuracy" + _unscored_note(scores.unscored.get(name))))
            k = len(s.best_of_k)
            notes = {"max": "  (the best-of-K curve's highest)", "end": f"  (k = {k})", "roc_auc": "",
                     "loss": "  (squared gap to the ground truth's curve, x100)",
                     "row_pearson": "  (correlation x100)"}
            metrics = s.metrics()
            lines += [(f"  {metric}", metrics.get(metric), None, notes[metric])
                      for metric in ppe_scoring.CORRECTNESS_METRICS[1:]]
        lines.append(("overall", scores.overall, sum(scores.rows.values()),
                      "  mean accuracy" + ("; PARTIAL: the sets scored above" if scores.partial else "")))
        return lines
