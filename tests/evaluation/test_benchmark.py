import math
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from lightning_critrm.evaluation.benchmark import Benchmark, format_table, sample_rows


@dataclass(frozen=True)
class Row:
    id: str
    subset: str
    prompt: tuple
    completions: tuple


class BestFirst(Benchmark):
    """Correct when the first completion gets the highest reward."""

    name, default_source, unscored_counts_as = "bestfirst", "hub/bestfirst", "wrong"

    def load(self):
        return []

    def completions(self, row):
        return row.completions

    def scores(self, rewards):
        right = [not math.isnan(r[0]) and r[0] > max(r[1:]) for _, r in rewards]
        overall = sum(right) / len(right)
        return SimpleNamespace(subsets={"all": overall}, rows={"all": len(right)}, overall=overall,
                               partial=False)

    def table_lines(self, scores):
        return [("all", scores.subsets["all"], scores.rows["all"], ""), ("overall", scores.overall, None, "")]


def prepared():
    bench = BestFirst()
    bench.rows = [Row("a", "all", (), ("x", "y")), Row("b", "all", (), ("x", "y", "z")),
                  Row("c", "all", (), ("x", "y"))]
    bench.scored = [(0, 0), (2, 2)]  # row b had no critique: not scored
    bench.sequences = [[1]] * 4
    return bench


def test_rewards_go_back_to_their_rows_and_an_unscored_row_gets_nan():
    bench = prepared()
    rows = bench.row_rewards({0: 2.0, 1: 1.0, 2: 0.0, 3: 5.0})
    assert rows[0] == (0, [2.0, 1.0]) and rows[2] == (2, [0.0, 5.0])
    assert rows[1][0] == 1 and all(math.isnan(v) for v in rows[1][1]) and len(rows[1][1]) == 3
    assert bench.scores(rows).overall == pytest.approx(1 / 3)  # a right, b unscored, c wrong
    assert bench.source == "hub/bestfirst"


def test_every_sequence_must_be_scored_once():
    with pytest.raises(RuntimeError, match="3 of 4 sequences scored"):
        prepared().row_rewards({0: 1.0, 1: 1.0, 2: 1.0})


def test_the_table_prints_percentages_and_leaves_out_counts_it_lacks():
    bench = prepared()
    table = bench.table(bench.scores(bench.row_rewards({0: 2.0, 1: 1.0, 2: 0.0, 3: 5.0})))
    assert table.splitlines() == [
        f"{'subset':<28} {'score':>8} {'rows':>6}",
        f"{'all':<28} {'33.3':>8} {3:>6}",
        f"{'overall':<28} {'33.3':>8}",
    ]
    assert format_table([("x", None, 2, "  note")],
                        ("a", "b", "prompts")).splitlines()[1] == f"{'x':<28} {'-':>8} {2:>7}  note"


def test_a_sample_gives_each_subset_its_share_by_largest_remainder_in_the_rows_order():
    rows = [Row(f"{s}{i}", s, (), ()) for s, n in (("a", 6), ("b", 3), ("c", 1)) for i in range(n)]
    rows = rows[::2] + rows[1::2]  # subsets interleaved: the sample keeps this order

    def counts(sample):
        return {s: sum(r.subset == s for r in sample) for s in "abc"}

    # 5 of 10: exact shares 3, 1.5, 0.5; one left after 3 + 1, and b and c tie on .5: the larger, b
    five = sample_rows(rows, 5)
    assert counts(five) == {"a": 3, "b": 2, "c": 0}
    # 4 of 10: 2.4, 1.2, 0.4; the remainder goes to a (.4, tied with c, and larger)
    assert counts(sample_rows(rows, 4)) == {"a": 3, "b": 1, "c": 0}
    # 8 of 10: 4.8, 2.4, 0.8; two left after 4 + 2: a (.8) then c (.8)
    assert counts(sample_rows(rows, 8)) == {"a": 5, "b": 2, "c": 1}
    assert five == sample_rows(rows, 5)  # the same rows every time
    assert [rows.index(r) for r in five] == sorted(rows.index(r) for r in five)
    assert sample_rows(rows, 10) == sample_rows(rows, 50) == rows
