import pytest

from lightning_critrm.evaluation.judgebench_scoring import category_of, decision, judgebench_scores
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import length_scored

FIXTURE = REPO / "tests" / "fixtures" / "judgebench_rows.jsonl"


def test_both_responses_are_scored_and_the_official_decisions_give_the_logged_accuracies(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, record = length_scored(tmp_path, pairs_file, tiny_decoder_dir, source=str(FIXTURE),
                                             benchmark="judgebench", batch_size=3)  # the longer response wins
    rows = {r["pair_id"]: r for r in record["rows"]}
    # Equal texts tie, and a tie decides for B: the math pair, labelled B>A, is right.
    assert rows["p-math"]["reward_A"] == rows["p-math"]["reward_B"]
    assert decision(rows["p-math"]["reward_A"], rows["p-math"]["reward_B"]) == "B>A"
    # Length decides each other pair: the long correct answers win, except the coding pair's longer
    # wrong one (A>B, but B is longer).
    assert {k: decision(r["reward_A"], r["reward_B"]) for k, r in rows.items()} == {
        "p-law": "A>B", "p-chem": "B>A", "p-reason": "A>B", "p-math": "B>A", "p-code": "B>A"}
    assert logged == pytest.approx({"judgebench/knowledge": 1.0, "judgebench/reasoning": 1.0,
                                    "judgebench/math": 1.0, "judgebench/coding": 0.0,
                                    "judgebench/overall": 4 / 5, "judgebench/rows_without_critique": 0.0})
    again = judgebench_scores((category_of(r["source"]), r["label"], r["reward_A"], r["reward_B"])
                              for r in record["rows"])
    assert record["overall"] == again.overall == pytest.approx(0.8)
    table = callback.eval.table(callback.last_scores[callback.eval.name])
    assert "coding" in table and "overall" in table and "PARTIAL" not in table, table
