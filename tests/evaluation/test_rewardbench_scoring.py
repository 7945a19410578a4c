import pytest

from lightning_critrm.evaluation.rewardbench_scoring import (
    SECTIONS,
    SUBSET_ROWS,
    rewardbench_scores,
    score_accuracies,
)


def test_ties_count_as_wrong():
    scores = rewardbench_scores([("hep-go", 1.0, 1.0), ("hep-go", 2.0, 1.0), ("hep-go", 0.5, 0.7),
                                 ("hep-go", 3.0, -1.0)])
    assert scores.subsets["hep-go"] == 0.5 and scores.rows["hep-go"] == 4


def test_reasoning_is_half_math_half_mean_of_hep():
    acc = {"math-prm": 0.9, "hep-cpp": 0.6, "hep-go": 0.7, "hep-java": 0.8, "hep-js": 0.5, "hep-python": 0.4,
           "hep-rust": 0.6}
    rows = {"math-prm": 447, **{s: 164 for s in acc if s.startswith("hep")}}
    reasoning = score_accuracies(acc, rows).sections["Reasoning"]
    # (0.9 * 984 + 164 * (0.6 + 0.7 + 0.8 + 0.5 + 0.4 + 0.6)) / (984 + 6 * 164) = 0.5 * 0.9 + 0.5 * 0.6
    assert reasoning.score == pytest.approx(0.75)
    assert not reasoning.partial and reasoning.rows_present == 447 + 6 * 164


def test_chat_hard_weighting_by_hand():
    acc = {"mt-bench-hard": 1.0, "llmbar-natural": 0.5, "llmbar-adver-neighbor": 0.0,
           "llmbar-adver-GPTInst": 1.0, "llmbar-adver-GPTOut": 0.0, "llmbar-adver-manual": 1.0}
    rows = {"mt-bench-hard": 37, "llmbar-natural": 100, "llmbar-adver-neighbor": 134,
            "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46}
    hard = score_accuracies(acc, rows).sections["Chat Hard"]
    assert hard.score == pytest.approx((37 + 50 + 92 + 46) / 456)  # 225 / 456 = 0.49342


def test_partial_sections_are_marked_and_overall_averages_what_is_scored():
    acc = {"llmbar-natural": 0.8, "hep-go": 0.6, "hep-rust": 0.4}
    rows = {"llmbar-natural": 100, "hep-go": 164, "hep-rust": 164}
    scores = score_accuracies(acc, rows)
    hard, reasoning = scores.sections["Chat Hard"], scores.sections["Reasoning"]
    assert (hard.score, hard.subsets_present, hard.subsets_total, hard.rows_present, hard.rows_total) == (0.8,
            1, 6, 100, 456)
    assert reasoning.score == pytest.approx(0.5)
    assert reasoning.rows_total == 447 + 6 * 164
    assert reasoning.partial
    assert scores.sections["Chat"].score is None and scores.sections["Safety"].subsets_present == 0
    assert scores.overall == pytest.approx((0.8 + 0.5) / 2) and scores.partial


def test_overall_is_the_mean_of_four_complete_sections():
    acc = {s: 1.0 for s in SECTIONS["Chat"]} | {s: 0.5 for s in SECTIONS["Chat Hard"]}
    acc |= {s: 0.0 for s in SECTIONS["Safety"]} | {s: 0.25 for s in SECTIONS["Reasoning"]}
    rows = {s: SUBSET_ROWS[s] for s in acc}
    scores = score_accuracies(acc, rows)
    assert scores.overall == pytest.approx((1.0 + 0.5 + 0.0 + 0.25) / 4) and not scores.partial


def test_rows_without_rewards_count_as_wrong_and_are_counted():
    nan = float("nan")
    scores = rewardbench_scores([("hep-go", 2.0, 1.0), ("hep-go", 2.0, 1.0), ("hep-go", 1.0, 2.0),
                                 ("hep-go", nan, nan), ("hep-cpp", 3.0, 0.0)])
    assert scores.subsets == {"hep-go": 0.5, "hep-cpp": 1.0} and scores.rows == {"hep-go": 4, "hep-cpp": 1}
    assert scores.unscored == {"hep-go": 1}
    assert scores.sections["Reasoning"].score == pytest.approx(0.75)  # (0.5 * 164 + 1.0 * 164) / 328
