import math

import pytest

from lightning_critrm.evaluation.ppe_scoring import (
    best_of_k,
    oracle_best_of_k,
    pairwise_wins,
    pearson,
    ppe_correctness_scores,
    ppe_human_scores,
    preferred_wins,
    roc_auc,
    set_scores,
)

# Two rows of four responses, worked by hand below.
M1 = ([4.0, 3.0, 2.0, 1.0], [True, False, True, False])
M2 = ([2.0, 2.0, 1.0, 3.0], [True, False, False, False])  # a tie between a correct and a wrong one


def test_the_voters_response_must_score_strictly_higher():
    assert preferred_wins([2.0, 1.0], 0) and preferred_wins([1.0, 2.0], 1)
    assert not preferred_wins([2.0, 1.0], 1) and not preferred_wins([1.0, 1.0], 0)  # a tie is wrong
    assert not preferred_wins([math.nan, 1.0], 0) and not preferred_wins([1.0, math.nan], 0)


def test_human_accuracy_per_language_per_category_and_overall_over_every_vote_by_hand():
    scores = ppe_human_scores([
        ("English", ("hard_prompt",), 0, [5.0, 2.0]),  # right
        ("English", ("is_code",), 1, [5.0, 2.0]),  # wrong
        ("English", ("hard_prompt", "math_prompt"), 1, [1.0, 4.0]),  # right
        ("Chinese", (), 0, [3.0, 3.0]),  # tie: wrong
        ("German", (), 0, [math.nan, 1.0]),  # not scored: wrong, and counted
    ])
    assert scores.subsets == pytest.approx({"English": 2 / 3, "Chinese": 0.0, "German": 0.0})
    assert scores.rows == {"English": 3, "Chinese": 1, "German": 1}
    assert scores.categories == pytest.approx({"hard_prompt": 1.0, "math_prompt": 1.0, "is_code": 0.0})
    assert scores.category_rows == {"hard_prompt": 2, "math_prompt": 1, "is_code": 1}
    assert scores.overall == pytest.approx(2 / 5)  # over the votes, not the mean of languages (2/9)
    assert scores.unscored == {"German": 1} and not scores.partial
    assert ppe_human_scores([], partial=True).overall is None


def test_pairwise_wins_roc_auc_and_pearson_of_one_row_by_hand():
    assert pairwise_wins(*M1) == (3, 4)  # 4>3, 4>1, 2>1 won; 2<3 lost
    assert pairwise_wins(*M2) == (1, 3)  # 2>1 won; the tie 2=2 and 2<3 lost
    assert roc_auc(*M1) == pytest.approx(0.75)
    assert roc_auc(*M2) == pytest.approx((0.5 + 1 + 0) / 3)  # the tie counts half
    assert pearson(*M1) == pytest.approx(1 / math.sqrt(5))  # cov 1, variances 5 and 1
    assert pearson(*M2) == pytest.approx(0.0)  # cov 0
    only_right = ([1.0, 2.0], [True, True])
    assert pairwise_wins(*only_right) == (0, 0) and roc_auc(*only_right) is None
    assert pearson(*only_right) is None and pearson([1.0, 1.0], [True, False]) is None
    nan = ([math.nan, 1.0], [True, False])
    assert pairwise_wins(*nan) == (0, 1) and roc_auc(*nan) == 0.0 and pearson(*nan) is None


def test_best_of_k_is_the_exact_expectation_with_ties_picked_at_random():
    # M1 by reward: 4 (right), 3, 2 (right), 1. k=2: top is 4 in 3 of 6 draws, 3 in 2 (wrong), 2 in 1.
    assert [best_of_k(*M1, k) for k in (1, 2, 3, 4)] == pytest.approx([0.5, 1 / 2 + 1 / 6, 3 / 4, 1.0])
    # M2: 3 (wrong) above the tied 2s (one right). k=2 over the six draws: {2a,2b} is half right,
    # {2a,1} right, the rest wrong: 1.5 / 6. k=3: only {2a,2b,1} misses the 3, half right: 1/8.
    assert [best_of_k(*M2, k) for k in (1, 2, 3, 4)] == pytest.approx([0.25, 0.25, 0.125, 0.0])
    assert [oracle_best_of_k(M1[1], k) for k in (1, 2, 3, 4)] == pytest.approx([0.5, 5 / 6, 1.0, 1.0])
    assert [oracle_best_of_k(M2[1], k) for k in (1, 2, 3, 4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert best_of_k([math.nan, 1.0], [True, True], 1) == 0.0  # not scored: every pick wrong


def test_a_set_pools_pairs_averages_rows_and_reads_max_end_and_loss_off_the_curves():
    s = set_scores([M1, M2])
    assert s.accuracy == pytest.approx(4 / 7)  # 3 + 1 of 4 + 3 pairs, pooled
    assert s.roc_auc == pytest.approx((0.75 + 0.5) / 2)
    assert s.row_pearson == pytest.approx(1 / math.sqrt(5) / 2)
    assert s.best_of_k == pytest.approx([0.375, 11 / 24, 0.4375, 0.5])
    assert s.oracle == pytest.approx([0.375, 2 / 3, 0.875, 1.0])
    assert s.max == s.end == pytest.approx(0.5)
    assert s.loss == pytest.approx((0 + (5 / 24) ** 2 + (7 / 16) ** 2 + 0.5**2) / 4)
    assert s.rows == 2


def test_correctness_scores_per_set_and_overall_the_mean_accuracy_of_the_sets():
    perfect = ([1.0, 2.0, 3.0, 4.0], [False, False, False, True])
    all_right = ([1.0, 2.0, 3.0, 4.0], [True, True, True, True])  # no pair, no Pearson, no AUC
    scores = ppe_correctness_scores([("math", *M1), ("math", *M2), ("gpqa", *perfect), ("gpqa", *all_right),
                                     ("gpqa", [math.nan] * 4, [True, False, False, False])])
    assert scores.subsets == pytest.approx({"math": 4 / 7, "gpqa": 3 / 6})  # the unscored row loses 3
    assert scores.rows == {"math": 2, "gpqa": 3}
    assert scores.overall == pytest.approx((4 / 7 + 1 / 2) / 2)
    assert scores.unscored == {"gpqa": 1} and scores.partial  # three of the five sets are missing
    gpqa = scores.sets["gpqa"]
    assert gpqa.roc_auc == pytest.approx((1.0 + 0.0) / 2)  # all_right has no AUC; the unscored row 0
    assert gpqa.row_pearson == pytest.approx(1.5 / math.sqrt(5 * 0.75))  # the only defined one
    assert gpqa.best_of_k[0] == pytest.approx((0.25 + 1 + 0) / 3)
    assert set(gpqa.metrics()) == {"accuracy", "max", "end", "loss", "row_pearson", "roc_auc"}
