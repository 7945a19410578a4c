import json

import lightning as L
import pytest

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.evaluation.judgebench_scoring import category_of, decision, judgebench_scores
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import Capture, LengthReward

FIXTURE = REPO / "tests" / "fixtures" / "judgebench_rows.jsonl"


def test_both_responses_are_scored_and_the_official_decisions_give_the_logged_accuracies(
    tmp_path, pairs_file, tiny_decoder_dir
):
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="none",
                              cache_dir=str(tmp_path / "cache"))
    logger = Capture()
    callback = RewardBenchCallback(source=str(FIXTURE), benchmark="judgebench", batch_size=3)
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[callback], enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    trainer.test(LengthReward(), datamodule=dm, verbose=False)  # the longer response wins
    logged = {k: v for _, m in logger.metrics for k, v in m.items() if k.startswith("judgebench/")}
    record = json.loads(next((tmp_path / "judgebench").glob("*.json")).read_text())
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
    table = callback.eval.table(callback.last_scores)
    assert "coding" in table and "overall" in table and "PARTIAL" not in table, table
