import math

import pytest

from lightning_critrm.evaluation.rewardbench2_scoring import best_of_n, rewardbench2_scores, ties_score


@pytest.mark.parametrize("scores, expected", [
    ([3.0, 1.0, 2.0, 0.0], 1.0),  # the correct completion scores highest
    ([1.0, 3.0, 0.0, 0.0], 0.0),  # a rejected one does
    ([2.0, 2.0, 1.0, 0.0], 0.5),  # a 2-way tie at the top: 1/2
    ([2.0, 2.0, 2.0, 2.0], 0.25),  # all four tie: 1/4
    ([2.0, 2.0, 2.0, 3.0], 0.0),  # tied with others below the top: nothing
    ([float("nan"), 1.0, 0.0, 0.0], 0.0),  # not scored: counts 0
])
def test_best_of_4_with_ties_at_the_top_split(scores, expected):
    assert best_of_n(scores) == expected


def test_ties_score_by_hand():
    # Prompt 1. ref: correct 3, incorrect 1 and 0: gap 3 - 1 = 2, accurate.
    #           tied: correct 5 and 4 (spread 1), incorrect 1: gap 4 - 1 = 3, accurate.
    #           gap 3 > spread 1; hard gap min(2, 3) = 2 > 1; margin tanh(2 / 1 - 1) = tanh(1).
    # Prompt 2. ref: correct 1, incorrect 2: gap -1. tied: correct 3 and 1 (spread 2), incorrect 2:
    #           gap 1 - 2 = -1. Neither accurate, both checks fail, margin tanh(-1 / 2 - 1) = tanh(-1.5).
    prompts = [("ref:1", [3.0, 1.0, 0.0], 1), ("tied:1", [5.0, 4.0, 1.0], 2),
               ("ref:2", [1.0, 2.0], 1), ("tied:2", [3.0, 1.0, 2.0], 2)]
    expected = (0.30 * 0.5 + 0.30 * 0.5 + 0.20 * 0.5 + 0.20 * 0.5 + 0.01
                * (math.tanh(1.0) + math.tanh(-1.5)) / 2)
    assert ties_score(prompts) == pytest.approx(expected, abs=1e-12)
    assert ties_score(prompts[:2]) == pytest.approx(1.0 + 0.01 * math.tanh(1.0), abs=1e-12)


def test_ties_where_correct_answers_score_alike_divide_as_numpy_does():
    # Spread 0 among the correct answers: the gap over it is +inf (tanh 1), or 0/0 (counted 0).
    assert ties_score([("ref:1", [2.0, 1.0], 1), ("tied:1", [2.0, 2.0, 1.0], 2)]) == pytest.approx(1.01)
    assert ties_score([("ref:1", [2.0, 2.0], 1), ("tied:1", [2.0, 2.0, 2.0], 2)]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="expected 'ref:N' or 'tied:N'"):
        ties_score([("12", [1.0, 0.0], 1)])


def test_overall_is_the_unweighted_mean_of_the_subsets_and_unscored_prompts_count_zero():
    nan = float("nan")
    scores = rewardbench2_scores([
        ("Math", "1", [2.0, 1.0, 1.0, 1.0], 1), ("Math", "2", [1.0, 1.0, 0.0, 0.0], 1),  # 1 and 1/2
        ("Focus", "3", [0.0, 1.0, 0.0, 0.0], 1), ("Focus", "4", [nan, nan, nan, nan], 1),  # 0 and not scored
        ("Ties", "ref:1", [3.0, 1.0, 0.0], 1), ("Ties", "tied:1", [5.0, 4.0, 1.0], 2),
    ])
    assert scores.subsets["Math"] == 0.75 and scores.subsets["Focus"] == 0.0
    assert scores.subsets["Ties"] == pytest.approx(1.0 + 0.01 * math.tanh(1.0))
    assert scores.rows == {"Math": 2, "Focus": 2, "Ties": 2} and scores.unscored == {"Focus": 1}
    assert scores.overall == pytest.approx((0.75 + 0.0 + 1.0 + 0.01 * math.tanh(1.0)) / 3)
    assert scores.partial  # three of six subsets
