"""PPE (Preference Proxy Evaluations, lmarena) scores for a scalar reward model: the metrics of its
paper (Frick et al., "How to Evaluate Reward Models for RLHF", arXiv 2410.14872, section 3) that a
scalar reward model has. The official scorer (``lmarena/PPE``) was not readable where this was
written; each definition below says what it follows and what it chose where the paper is silent,
so a comparison with the official numbers knows where to look.

**Human preference** (``lmarena-ai/PPE-Human-Preference-V1``: one Chatbot Arena vote per row,
``winner`` ``model_a`` or ``model_b``):

* A row is correct when the response the voter preferred scores strictly higher (equal rewards
  are wrong, RewardBench's strict rule). A tie vote holds no preference and is not scored (the
  loader leaves it out).
* Accuracy per language and on the rows of each category flag (``hard_prompt``,
  ``math_prompt``, ``is_code``); **overall** is the accuracy over every row.

**Correctness** (the five ``lmarena-ai/PPE-*-Best-of-K`` sets: a prompt, K responses of one model
and a verified label per response):

* **accuracy**: over every (correct, incorrect) pair of responses to the same row, the share where
  the correct one scores strictly higher (pairs pooled over the set's rows).
* **best-of-K curve**: for k = 1..K, the expected correctness of the response the reward model
  picks from k responses drawn at random without replacement (the highest reward; tied highest
  picked at random), averaged over rows; computed exactly, not by resampling. The ground-truth
  curve picks a correct response whenever one was drawn.
* **max**: the curve's highest point; **end**: its value at k = K (the pick among all K);
  **loss**: the mean over k of the squared gap between the ground-truth curve and the curve.
* **row_pearson**: the Pearson correlation of rewards and labels within a row, averaged over the
  rows where it is defined (both labels present, rewards not all equal).
* **roc_auc**: within a row, the chance that a correct response outscores an incorrect one (a tie
  counts half), averaged over the rows with both labels.
* **overall**: the mean accuracy of the sets scored (what model cards report as PPE correctness).

A row this tool could not score (a response without its critique) has NaN rewards: it counts as
wrong (a lost comparison in accuracy and ROC AUC, a wrong pick at every k), is left out of the
Pearson mean, and ``unscored`` says how many there were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from math import comb
from typing import Optional

# Category flags of a human-preference row, in table order.
CATEGORIES = ("hard_prompt", "math_prompt", "is_code")
# Short name -> hub set (of the lmarena-ai organisation) of each correctness set, in table order.
CORRECTNESS_SETS: dict[str, str] = {
    "mmlu_pro": "PPE-MMLU-Pro-Best-of-K", "math": "PPE-MATH-Best-of-K", "gpqa": "PPE-GPQA-Best-of-K",
    "ifeval": "PPE-IFEval-Best-of-K", "mbpp_plus": "PPE-MBPP-Plus-Best-of-K",
}  # fmt: skip
CORRECTNESS_METRICS = ("accuracy", "max", "end", "loss", "row_pearson", "roc_auc")


def preferred_wins(rewards: Sequence[float], preferred: int) -> bool:
    """Whether the voter's response (index ``preferred``) scores strictly above the other one."""
    return rewards[preferred] > rewards[1 - preferred]


@dataclass(frozen=True)
class PPEHumanScores:
    subsets: dict[str, float]  # accuracy per language
    rows: dict[str, int]  # rows per language
    categories: dict[str, float]  # accuracy on the rows of each flag present
    category_rows: dict[str, int]
    unscored: dict[str, int] = field(default_factory=dict)  # rows per language without rewards
    overall: Optional[float] = None  # accuracy over every row
    partial: bool = False  # only some languages were asked for


def ppe_human_scores(results: Iterable[tuple[str, Sequence[str], int, Sequence[float]]],
                     partial: bool = False) -> PPEHumanScores:
    """Scores from ``(language, category flags set, preferred index, rewards)`` per row."""
    correct: dict[str, list[bool]] = {}
    by_category: dict[str, list[bool]] = {}
    unscored: dict[str, int] = {}
    for language, flags, preferred, rewards in results:
        if any(math.isnan(r) for r in rewards):
            unscored[language] = unscored.get(language, 0) + 1
        won = preferred_wins(rewards, preferred)
        correct.setdefault(language, []).append(won)
        for flag in flags:
            by_category.setdefault(flag, []).append(won)
    every = [c for values in correct.values() for c in values]
    return PPEHumanScores(
        {name: sum(v) / len(v) for name, v in correct.items()}, {name: len(v) for name, v in correct.items()},
        {name: sum(by_category[name]) / len(by_category[name]) for name in CATEGORIES if name in by_category},
        {name: len(by_category[name]) for name in CATEGORIES if name in by_category},
        unscored, sum(every) / len(every) if every else None, partial,
    )


# -- correctness -------------------------------------------------------------------------------
def _by_label(rewards: Sequence[float], correct: Sequence[bool]) -> tuple[list[float], list[float]]:
    """(rewards of the correct responses, rewards of the incorrect ones)."""
    return [r for r, c in zip(rewards, correct) if c], [r for r, c in zip(rewards, correct) if not c]


def pairwise_wins(rewards: Sequence[float], correct: Sequence[bool]) -> tuple[int, int]:
    """(pairs where the correct response scores strictly higher, correct x incorrect pairs)."""
    right, wrong = _by_label(rewards, correct)
    return sum(a > b for a in right for b in wrong), len(right) * len(wrong)


def roc_auc(rewards: Sequence[float], correct: Sequence[bool]) -> Optional[float]:
    """Chance that a correct response outscores an incorrect one, a tie counting half (None
    without both labels); NaN rewards win nothing."""
    right, wrong = _by_label(rewards, correct)
    if not right or not wrong:
        return None
    won = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in right for b in wrong)
    return won / (len(right) * len(wrong))


def pearson(rewards: Sequence[float], correct: Sequence[bool]) -> Optional[float]:
    """Pearson correlation of rewards and 0/1 labels (None where it is undefined: one label only,
    equal rewards, or a NaN reward)."""
    n = len(rewards)
    labels = [float(c) for c in correct]
    if any(math.isnan(r) for r in rewards) or n < 2:
        return None
    mean_r, mean_y = sum(rewards) / n, sum(labels) / n
    cov = sum((r - mean_r) * (y - mean_y) for r, y in zip(rewards, labels))
    var_r = sum((r - mean_r) ** 2 for r in rewards)
    var_y = sum((y - mean_y) ** 2 for y in labels)
    if var_r == 0 or var_y == 0:
        return None
    return cov / math.sqrt(var_r * var_y)


def best_of_k(rewards: Sequence[float], correct: Sequence[bool], k: int) -> float:
    """Expected correctness of the highest-rewarded of ``k`` responses drawn without replacement
    (tied highest: one of them at random). By reward level from the top, with ``above`` responses
    scoring higher and ``m`` at the level: the draw's highest is at this level with probability
    (C(n - above, k) - C(n - above - m, k)) / C(n, k), and then is correct with probability
    (correct at the level) / m. A NaN reward makes every pick wrong (0)."""
    n = len(rewards)
    if any(math.isnan(r) for r in rewards):
        return 0.0
    ranked = sorted(zip(rewards, correct), key=lambda rc: -rc[0])
    expected, above = 0.0, 0
    for _, level in groupby(ranked, key=lambda rc: rc[0]):
        level = list(level)
        m = len(level)
        reach = (comb(n - above, k) - comb(n - above - m, k)) / comb(n, k)
        expected += reach * sum(c for _, c in level) / m
        above += m
    return expected


def oracle_best_of_k(correct: Sequence[bool], k: int) -> float:
    """The ground truth's best-of-``k``: the chance that ``k`` draws hold a correct response."""
    n, wrong = len(correct), sum(not c for c in correct)
    return 1.0 - comb(wrong, k) / comb(n, k)


@dataclass(frozen=True)
class SetScores:
    accuracy: Optional[float]  # None: no row with both labels
    best_of_k: list[float]  # the curve, k = 1..K (K: the fewest responses of a row)
    oracle: list[float]  # the ground truth's curve
    row_pearson: Optional[float]
    roc_auc: Optional[float]
    rows: int

    @property
    def max(self) -> float:
        return max(self.best_of_k)

    @property
    def end(self) -> float:
        return self.best_of_k[-1]

    @property
    def loss(self) -> float:
        return sum((o - c) ** 2 for o, c in zip(self.oracle, self.best_of_k)) / len(self.best_of_k)

    def metrics(self) -> dict[str, float]:
        """Every defined metric by name (:data:`CORRECTNESS_METRICS`)."""
        values = {name: getattr(self, name) for name in CORRECTNESS_METRICS}
        return {name: value for name, value in values.items() if value is not None}


def set_scores(rows: Sequence[tuple[Sequence[float], Sequence[bool]]]) -> SetScores:
    """One correctness set's scores from ``(rewards, labels)`` per row (one row at least)."""
    wins = pairs = 0
    aucs, pearsons = [], []
    for rewards, correct in rows:
        won, total = pairwise_wins(rewards, correct)
        wins, pairs = wins + won, pairs + total
        auc, r = roc_auc(rewards, correct), pearson(rewards, correct)
        aucs += [auc] if auc is not None else []
        pearsons += [r] if r is not None else []
    k_max = min(len(rewards) for rewards, _ in rows)
    curve = [sum(best_of_k(r, c, k) for r, c in rows) / len(rows) for k in range(1, k_max + 1)]
    oracle = [sum(oracle_best_of_k(c, k) for _, c in rows) / len(rows) for k in range(1, k_max + 1)]
    return SetScores(wins / pairs if pairs else None, curve, oracle,
                     sum(pearsons) / len(pearsons) if pearsons else None,
                     sum(aucs) / len(aucs) if aucs else None, len(rows))


@dataclass(frozen=True)
class PPECorrectnessScores:
    sets: dict[str, SetScores]  # of each set present
    unscored: dict[str, int] = field(default_factory=dict)  # rows per set without rewards

    @property
    def subsets(self) -> dict[str, float]:
        """Accuracy per set (where some row has both labels)."""
        return {name: s.accuracy for name, s in self.sets.items() if s.accuracy is not None}

    @property
    def rows(self) -> dict[str, int]:
        return {name: s.rows for name, s in self.sets.items()}

    @property
    def overall(self) -> Optional[float]:
        """Mean accuracy of the sets."""
        values = list(self.subsets.values())
        return sum(values) / len(values) if values else None

    @property
    def partial(self) -> bool:
        return any(name not in self.subsets for name in CORRECTNESS_SETS)


def ppe_correctness_scores(results: Iterable[tuple[str, Sequence[float], Sequence[bool]]]
                           ) -> PPECorrectnessScores:
    """Scores from ``(set, rewards, labels)`` per row."""
    by_set: dict[str, list[tuple[Sequence[float], Sequence[bool]]]] = {}
    unscored: dict[str, int] = {}
    for name, rewards, correct in results:
        if any(math.isnan(r) for r in rewards):
            unscored[name] = unscored.get(name, 0) + 1
        by_set.setdefault(name, []).append((rewards, correct))
    return PPECorrectnessScores({name: set_scores(rows) for name, rows in by_set.items()}, unscored)
