from types import SimpleNamespace

from lightning_critrm.evaluation.rewardbench2_eval import RewardBench2Eval


def test_the_table_lists_every_v2_subset_marking_the_missing_ones():
    bench = RewardBench2Eval(source="rows.jsonl")
    bench.rows = [SimpleNamespace(id="1", subset="Math", num_correct=1),
                  SimpleNamespace(id="2", subset="Math", num_correct=1)]
    # best-of-4: 1, then a 2-way tie: 1/2
    scores = bench.scores([(0, [3.0, 1.0, 2.0, 0.0]), (1, [2.0, 2.0, 1.0, 0.0])])
    lines = bench.table(scores).splitlines()
    assert lines[0] == f"{'subset':<28} {'score':>8} {'prompts':>7}"
    math_line = next(line for line in lines if line.startswith("Math"))
    assert math_line.startswith(f"{'Math':<28} {'75.0':>8} {2:>7}  PARTIAL: 2/")
    assert any(line.startswith("Focus") and f"{'-':>8} {0:>7}  PARTIAL: 0/" in line for line in lines)
    assert bench.record_row(bench.rows[0], [3.0, 1.0]) == {"id": "1", "subset": "Math", "num_correct": 1,
                                                           "scores": [3.0, 1.0]}
