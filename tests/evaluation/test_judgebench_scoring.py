import math

import pytest

from lightning_critrm.evaluation.judgebench_scoring import category_of, decision, judgebench_scores


def test_a_tie_decides_for_b_as_the_official_reward_model_judges_and_nan_decides_nothing():
    assert decision(2.0, 1.0) == "A>B" and decision(1.0, 2.0) == "B>A"
    assert decision(1.0, 1.0) == "B>A"  # `'A>B' if score_A > score_B else 'B>A'`
    assert decision(math.nan, 1.0) is None and decision(1.0, math.nan) is None


def test_sources_fall_into_the_four_categories():
    assert [category_of(s) for s in ("mmlu-pro-law", "mmlu-pro-math", "livebench-reasoning", "livebench-math",
                                      "livecodebench", "gsm8k")] == [
        "knowledge", "knowledge", "reasoning", "math", "coding", None]


def test_accuracy_per_category_and_over_every_pair_by_hand():
    scores = judgebench_scores([
        ("knowledge", "A>B", 2.0, 1.0),  # right
        ("knowledge", "B>A", 1.0, 1.0),  # a tie goes to B: right
        ("knowledge", "A>B", 1.0, 1.0),  # a tie goes to B: wrong
        ("knowledge", "A=B", 3.0, 3.0),  # a reward model never decides A=B: wrong
        ("reasoning", "B>A", math.nan, 2.0),  # not scored: wrong, and counted
        ("reasoning", "B>A", 0.0, 2.0),  # right
        ("reasoning", "A>B", 5.0, -1.0),  # right
    ])
    assert scores.subsets == pytest.approx({"knowledge": 2 / 4, "reasoning": 2 / 3})
    assert scores.rows == {"knowledge": 4, "reasoning": 3}
    # over every pair (4/7), not the mean of the categories (7/12)
    assert scores.overall == pytest.approx(4 / 7)
    assert scores.unscored == {"reasoning": 1} and scores.partial


def test_nothing_scored_has_no_overall():
    assert judgebench_scores([]).overall is None
