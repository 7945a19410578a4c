import math
from types import SimpleNamespace

from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval


def test_one_table_line_per_section_then_its_subsets_with_partial_ones_marked():
    bench = RewardBenchEval(source="rows.jsonl")
    bench.rows = [SimpleNamespace(id=str(i), subset=s) for i,
                  s in enumerate(["hep-go", "hep-go", "hep-go", "donotanswer"])]
    # right, wrong, unscored, tie
    rewards = [(0, [2.0, 1.0]), (1, [1.0, 2.0]), (2, [math.nan, math.nan]), (3, [1.0, 1.0])]
    lines = bench.table(bench.scores(rewards)).splitlines()
    assert lines[0] == f"{'section / subset':<28} {'accuracy':>8} {'rows':>6}"
    assert f"{'  hep-go':<28} {'33.3':>8} {3:>6}  (1 without critique, counted wrong)" in lines
    assert f"{'  donotanswer':<28} {'0.0':>8} {1:>6}" in lines  # a tie is wrong
    assert any(line.startswith("Reasoning") and "PARTIAL: 1/7 subsets, 3/1431 rows" in line for line in lines)
    assert lines[-1] == "1 row(s) had no critique (its generation failed) and count as wrong"
    assert bench.record_row(bench.rows[0], [2.0, None]) == {"id": "0", "subset": "hep-go",
                                                            "reward_chosen": 2.0,
                                                            "reward_rejected": None}
    assert bench.source == "rows.jsonl" and RewardBenchEval().source == "allenai/reward-bench"
