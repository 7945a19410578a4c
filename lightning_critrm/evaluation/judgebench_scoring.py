"""JudgeBench scores for a reward model, as its official code computes them (``ScalerLab/JudgeBench``:
the reward-model judges of ``utils/judges.py``, run with ``run_judge.py --single_game``, the setting
it gives for an order-independent judge, and ``compute_final_metrics`` in ``utils/metrics.py``).

* Each pair has a question, responses A and B, and a label ``A>B`` or ``B>A`` (which one is
  objectively correct). The reward model's decision is ``A>B`` when A's reward is strictly higher,
  otherwise ``B>A``: **a tie decides for B**, as every official reward-model judge does. A pair is
  correct when the decision equals the label (a label ``A=B`` is never matched).
* Accuracy per category, from the pair's ``source``: knowledge (``mmlu-pro-*``), reasoning
  (``livebench-reasoning``), math (``livebench-math``) and coding (``livecodebench``); **overall**
  is the accuracy over every pair (the paper's Overall), not the mean of the categories.

A pair this tool could not score (a response without its critique) has no decision, as a judge that
failed (``judgment: None``), and counts as wrong; ``unscored`` says how many there were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

# Category -> how its sources begin.
CATEGORIES: dict[str, str] = {
    "knowledge": "mmlu-pro", "reasoning": "livebench-reasoning", "math": "livebench-math",
    "coding": "livecodebench",
}  # fmt: skip
LABELS = ("A>B", "B>A", "A=B")


def category_of(source: str) -> Optional[str]:
    """The category of a pair's ``source`` (None for a source JudgeBench does not have)."""
    return next((name for name, prefix in CATEGORIES.items() if source.startswith(prefix)), None)


def decision(reward_a: float, reward_b: float) -> Optional[str]:
    """``A>B`` when A scores strictly higher, else ``B>A``; None when either was not scored."""
    if math.isnan(reward_a) or math.isnan(reward_b):
        return None
    return "A>B" if reward_a > reward_b else "B>A"


@dataclass(frozen=True)
class JudgeBenchScores:
    subsets: dict[str, float]  # accuracy per present category
    rows: dict[str, int]  # pairs per present category
    unscored: dict[str, int] = field(default_factory=dict)  # pairs per category without rewards
    overall: Optional[float] = None  # accuracy over every pair

    @property
    def partial(self) -> bool:
        return any(name not in self.subsets for name in CATEGORIES)


def judgebench_scores(results: Iterable[tuple[str, str, float, float]]) -> JudgeBenchScores:
    """Scores from ``(category, label, reward of A, reward of B)`` per pair."""
    correct: dict[str, list[bool]] = {}
    unscored: dict[str, int] = {}
    for category, label, reward_a, reward_b in results:
        made = decision(reward_a, reward_b)
        if made is None:
            unscored[category] = unscored.get(category, 0) + 1
        correct.setdefault(category, []).append(made == label)
    every = [c for values in correct.values() for c in values]
    return JudgeBenchScores(
        {name: sum(values) / len(values) for name, values in correct.items()},
        {name: len(values) for name, values in correct.items()},
        unscored,
        sum(every) / len(every) if every else None,
    )
