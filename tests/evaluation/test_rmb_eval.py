import re

import pytest

from lightning_critrm.evaluation.rmb_scoring import preferred_wins, rmb_scores
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import length_scored

FIXTURE = REPO / "tests" / "fixtures" / "rmb" / "RMB_dataset"


def test_every_answer_is_scored_and_the_official_rules_give_the_logged_accuracies(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, record = length_scored(tmp_path, pairs_file, tiny_decoder_dir, source=str(FIXTURE),
                                             benchmark="rmb", batch_size=4)  # the longer answer wins
    items = {r.get("pair_uid") or r["bon_uid"]: r for r in record["rows"]}
    # Equal answers tie, and a tie is wrong: pair 103 and best-of-N 401 (its best ties one loser).
    assert items["103"]["rewards"][0] == items["103"]["rewards"][1]
    assert items["401"]["rewards"][0] == items["401"]["rewards"][2] > items["401"]["rewards"][1]
    assert {k: preferred_wins(r["rewards"]) for k, r in items.items()} == {
        "101": True, "102": True, "103": False, "104": False, "201": True,
        "301": True, "302": False, "401": False, "402": True}
    chat, code = "Pairwise_set/Helpfulness/Chat/Discussion", "Pairwise_set/Helpfulness/Code/Data Management"
    assert logged == pytest.approx({
        f"rmb/{chat}": 2 / 3, f"rmb/{code}": 0.0, "rmb/Pairwise_set/Harmlessness/S1": 1.0,
        "rmb/BoN_set/Helpfulness/Code/Data Management": 0.5, "rmb/BoN_set/Harmlessness/multi": 0.5,
        # sections over their items: pairwise helpfulness 2 of 4, not the mean of its scenarios (1/3)
        "rmb/pairwise_helpfulness": 0.5, "rmb/pairwise_harmlessness": 1.0, "rmb/bon_helpfulness": 0.5,
        "rmb/bon_harmlessness": 0.5, "rmb/overall": (0.5 + 1.0 + 0.5 + 0.5) / 4,
        "rmb/rows_without_critique": 0.0})
    again = rmb_scores((r["category_path"], r["rewards"]) for r in record["rows"])
    assert record["overall"] == again.overall == pytest.approx(0.625)
    assert record["items_per_section"] == {"pairwise_helpfulness": 4, "pairwise_harmlessness": 1,
                                           "bon_helpfulness": 2, "bon_harmlessness": 2}
    table = callback.eval.table(callback.last_scores[callback.eval.name])
    assert re.search(r"^pairwise_helpfulness\s+50\.0\s+4$", table, re.M), table
    assert re.search(r"^  Chat/Discussion\s+66\.7\s+3$", table, re.M), table
    assert re.search(r"^overall\s+62\.5$", table, re.M), table  # every section present: not partial


def test_a_scenario_subset_scores_its_section_and_marks_the_overall_partial(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, _ = length_scored(tmp_path, pairs_file, tiny_decoder_dir, source=str(FIXTURE),
                                        benchmark="rmb", subsets=["BoN_set/Harmlessness/multi"])
    assert logged["rmb/bon_harmlessness"] == logged["rmb/overall"] == pytest.approx(0.5)
    table = callback.eval.table(callback.last_scores[callback.eval.name])
    assert re.search(r"^pairwise_helpfulness\s+-\s+0  MISSING$", table, re.M), table
    assert "PARTIAL" in table, table
