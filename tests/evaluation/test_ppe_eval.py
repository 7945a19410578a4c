import math
import re

import pytest

from lightning_critrm.evaluation.ppe_scoring import ppe_correctness_scores, ppe_human_scores
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import length_scored

FIXTURE = REPO / "tests" / "fixtures" / "ppe"


def test_every_vote_is_scored_and_the_accuracies_logged_are_the_hand_computed_ones(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, record = length_scored(tmp_path, pairs_file, tiny_decoder_dir, benchmark="ppe_human",
                                             source=str(FIXTURE / "PPE-Human-Preference-V1"), batch_size=3)
    votes = {r["question_id"]: r for r in record["rows"]}
    assert sorted(votes) == ["q1", "q2", "q3", "q4", "q6"]  # the tie votes are not scored
    assert votes["q1"]["reward_1"] > votes["q1"]["reward_2"]  # the longer response wins
    assert votes["q4"]["reward_1"] == votes["q4"]["reward_2"]  # equal lengths tie: wrong
    assert logged == pytest.approx({
        "ppe_human/English": 2 / 3, "ppe_human/Chinese": 0.0, "ppe_human/German": 1.0,
        "ppe_human/category/hard_prompt": 1.0, "ppe_human/category/math_prompt": 1.0,
        "ppe_human/category/is_code": 0.0, "ppe_human/overall": 3 / 5,
        "ppe_human/rows_without_critique": 0.0})
    again = ppe_human_scores(("", (), ["model_a", "model_b"].index(r["winner"]),
                              [r["reward_1"], r["reward_2"]]) for r in record["rows"])
    assert record["overall"] == again.overall == pytest.approx(0.6)
    assert record["rows_per_category"] == {"hard_prompt": 2, "math_prompt": 1, "is_code": 1}
    table = callback.eval.table(callback.last_scores["ppe_human"])
    assert re.search(r"^English\s+66\.7\s+3$", table, re.M), table
    assert re.search(r"^category hard_prompt\s+100\.0\s+2$", table, re.M), table
    assert re.search(r"^overall\s+60\.0\s+5$", table, re.M), table


def test_every_response_of_every_row_is_scored_and_each_sets_metrics_are_the_hand_computed_ones(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, record = length_scored(tmp_path, pairs_file, tiny_decoder_dir,
                                             benchmark="ppe_correctness", source=str(FIXTURE), batch_size=5)
    rows = {(r["set"], r["question_id"]): r for r in record["rows"]}
    m2 = rows["math", "m2"]["rewards"]
    assert m2[0] == m2[1] and m2[3] > m2[0] > m2[2]  # lengths 2, 2, 1, 3
    loss = (0 + (5 / 24) ** 2 + (7 / 16) ** 2 + 0.5**2) / 4
    expected = {
        "math/accuracy": 4 / 7, "math/max": 0.5, "math/end": 0.5, "math/loss": loss,
        "math/row_pearson": 1 / math.sqrt(5) / 2, "math/roc_auc": 0.625,
        "gpqa/accuracy": 1.0, "gpqa/max": 1.0, "gpqa/end": 1.0, "gpqa/loss": 0.0,
        "gpqa/row_pearson": 1.5 / math.sqrt(3.75), "gpqa/roc_auc": 1.0,
        "overall": (4 / 7 + 1) / 2, "rows_without_critique": 0.0}
    assert logged == pytest.approx({f"ppe_correctness/{key}": value for key, value in expected.items()})
    assert record["sets"]["math"]["best_of_k"] == pytest.approx([0.375, 11 / 24, 0.4375, 0.5])
    again = ppe_correctness_scores((r["set"], r["rewards"], r["correct"]) for r in record["rows"])
    assert record["overall"] == again.overall and record["partial"]  # three sets are not in the fixture
    table = callback.eval.table(callback.last_scores["ppe_correctness"])
    assert re.search(r"^math\s+57\.1\s+2  accuracy$", table, re.M), table
    assert re.search(r"^  end\s+50\.0  \(k = 4\)$", table, re.M), table
    assert re.search(r"^ifeval\s+-\s+0  MISSING$", table, re.M), table
    assert re.search(r"^overall\s+78\.6\s+4  mean accuracy; PARTIAL", table, re.M), table
