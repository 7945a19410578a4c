import math

import pytest

from lightning_critrm.evaluation.rmb_scoring import preferred_wins, rmb_scores, section_of

HELP = "Pairwise_set/Helpfulness/Chat/Discussion"
CODE = "Pairwise_set/Helpfulness/Code/Data Management"
HARM = "Pairwise_set/Harmlessness/S1"
BON_HELP = "BoN_set/Helpfulness/Code/Data Management"
BON_HARM = "BoN_set/Harmlessness/multi"


def test_the_preferred_answer_must_beat_every_other_strictly():
    assert preferred_wins([2.0, 1.0]) and not preferred_wins([1.0, 2.0])
    assert not preferred_wins([1.0, 1.0])  # `1 if chosen > rejected else 0`: a tie is wrong
    assert preferred_wins([3.0, 1.0, 2.0, -1.0])
    assert not preferred_wins([3.0, 1.0, 3.0])  # a tie with one loser is wrong
    assert not preferred_wins([math.nan, 1.0]) and not preferred_wins([1.0, math.nan])


def test_sections_follow_the_category_path():
    assert [section_of(p) for p in (HELP, HARM, BON_HELP, BON_HARM, "Other_set/Helpfulness/x")] == [
        "pairwise_helpfulness", "pairwise_harmlessness", "bon_helpfulness", "bon_harmlessness", None]


def test_accuracy_per_scenario_per_section_over_its_items_and_overall_the_mean_of_sections_by_hand():
    scores = rmb_scores([
        (HELP, [2.0, 1.0]),  # right
        (HELP, [2.0, 1.0]),  # right
        (HELP, [1.0, 1.0]),  # tie: wrong
        (CODE, [0.0, 1.0]),  # wrong
        (HARM, [math.nan, 1.0]),  # not scored: wrong, and counted
        (HARM, [5.0, 1.0]),  # right
        (BON_HELP, [3.0, 1.0, 2.0]),  # right
        (BON_HARM, [3.0, 1.0, 3.0]),  # tie with a loser: wrong
    ])
    assert scores.subsets == pytest.approx(
        {HELP: 2 / 3, CODE: 0.0, HARM: 1 / 2, BON_HELP: 1.0, BON_HARM: 0.0})
    assert scores.rows == {HELP: 3, CODE: 1, HARM: 2, BON_HELP: 1, BON_HARM: 1}
    # pairwise helpfulness over its four items (2/4), not the mean of its scenarios (1/3)
    assert scores.sections == pytest.approx({"pairwise_helpfulness": 0.5, "pairwise_harmlessness": 0.5,
                                             "bon_helpfulness": 1.0, "bon_harmlessness": 0.0})
    assert scores.section_rows == {"pairwise_helpfulness": 4, "pairwise_harmlessness": 2,
                                   "bon_helpfulness": 1, "bon_harmlessness": 1}
    assert scores.overall == pytest.approx((0.5 + 0.5 + 1.0 + 0.0) / 4)
    assert scores.unscored == {HARM: 1} and not scores.partial


def test_a_missing_section_makes_the_overall_partial_and_nothing_scored_has_none():
    scores = rmb_scores([(HELP, [2.0, 1.0]), (BON_HARM, [1.0, 2.0, 0.0])])
    assert scores.partial and scores.overall == pytest.approx(0.5)
    assert rmb_scores([]).overall is None
