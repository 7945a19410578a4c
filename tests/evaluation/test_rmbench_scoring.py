import math

import numpy as np
import pytest

from lightning_critrm.evaluation.rmbench_scoring import accuracy_matrix, hard_normal_easy, rmbench_scores

NAN = math.nan
CHAT = [("chat", [3.0, 2.0, 1.0], [2.5, 1.5, 0.5]),  # chosen i beats rejected j where i <= j
        ("chat", [1.0, 1.0, 1.0], [1.0, 0.0, 2.0])]  # a tie (1 vs 1) is wrong


def test_the_matrix_counts_strict_wins_of_each_chosen_style_over_each_rejected_one():
    # prompt 1: [[1,1,1],[0,1,1],[0,0,1]]; prompt 2: each chosen beats only rejected 1 (reward 0)
    expected = [[0.5, 1.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.5, 0.5]]
    assert accuracy_matrix([(c, r) for _, c, r in CHAT]) == expected
    hard, normal, easy = hard_normal_easy([[0.5, 1.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.5, 0.5]])
    assert (hard, normal, easy) == pytest.approx((2 / 3, 2 / 3, 1 / 6))


def official_compute_accuracy(results):
    """RM-Bench's `compute_accuracy` (scripts/utils.py), restated with NumPy as its README shows it."""
    m = np.zeros((3, 3))
    for chosen, rejected in results:
        for i in range(3):
            for j in range(3):
                m[i][j] += chosen[i] > rejected[j]
    m /= len(results)
    return np.sum(np.triu(m, 1)) / 3, np.mean(np.diag(m)), np.sum(np.tril(m, -1)) / 3


def test_domains_overall_and_styles_by_hand_and_as_the_official_function():
    results = CHAT + [("safety-refuse", [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
                      ("safety-response", [NAN, NAN, NAN], [0.0, 0.0, 0.0])]  # not scored: all nine wrong
    scores = rmbench_scores(results)
    # chat: (2/3 + 2/3 + 1/6) / 3; safety pools both files: every cell 1/2
    assert scores.subsets == pytest.approx({"chat": 0.5, "safety": 0.5, "safety-refuse": 1.0,
                                            "safety-response": 0.0})
    assert scores.rows == {"chat": 2, "safety": 2, "safety-refuse": 1, "safety-response": 1}
    assert scores.overall == pytest.approx(0.5) and scores.partial  # math and code are missing
    # over every prompt: [[2,3,2],[1,3,2],[1,2,2]] / 4
    assert (scores.hard, scores.normal, scores.easy) == pytest.approx((7 / 12, 7 / 12, 1 / 3))
    assert (scores.hard, scores.normal, scores.easy) == pytest.approx(
        official_compute_accuracy([(c, r) for _, c, r in results]))
    assert scores.unscored == {"safety-response": 1}


def test_all_four_domains_make_a_whole_score_and_nothing_scored_gives_none():
    domains = ("chat", "math", "code", "safety-refuse")
    whole = rmbench_scores([(d, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]) for d in domains])
    assert not whole.partial and whole.overall == 1.0 and whole.subsets["safety"] == 1.0
    empty = rmbench_scores([])
    assert empty.overall is None and empty.partial
