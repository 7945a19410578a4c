import math

import pytest

from lightning_critrm.study.equivalence import (
    Equivalence,
    describe_range,
    equivalence_factors,
    plain_pairs_reaching,
)

PLAIN_SIZES = [100, 200, 400]
PLAIN_ACC = [0.6, 0.7, 0.8]


def test_inside_the_plain_range_interpolates_on_log_pairs():
    # 0.75 is halfway from 0.7 (200 pairs) to 0.8 (400 pairs): 200 * 2 ** 0.5 plain pairs.
    pairs, relation = plain_pairs_reaching(0.75, PLAIN_SIZES, PLAIN_ACC)
    assert relation == "=" and pairs == pytest.approx(200 * math.sqrt(2))
    (point,) = equivalence_factors([100], [0.75], PLAIN_SIZES, PLAIN_ACC)
    assert point.factor == pytest.approx(2 * math.sqrt(2)) and point.describe() == "2.83x"


def test_an_accuracy_equal_to_a_plain_point_is_that_point():
    assert plain_pairs_reaching(0.7, PLAIN_SIZES, PLAIN_ACC) == (pytest.approx(200.0), "=")
    assert plain_pairs_reaching(0.8, PLAIN_SIZES, PLAIN_ACC) == (pytest.approx(400.0), "=")


def test_above_every_plain_point_is_a_lower_bound():
    (point,) = equivalence_factors([50], [0.9], PLAIN_SIZES, PLAIN_ACC)
    assert (point.plain_pairs, point.relation, point.factor) == (400.0, ">", 8.0)
    assert point.describe() == "> 8x"


def test_at_or_below_the_first_plain_point_is_an_upper_bound():
    assert plain_pairs_reaching(0.6, PLAIN_SIZES, PLAIN_ACC) == (100.0, "<=")  # a tie with the first point
    (point,) = equivalence_factors([200], [0.55], PLAIN_SIZES, PLAIN_ACC)
    assert (point.plain_pairs, point.relation, point.factor) == (100.0, "<=", 0.5)
    assert point.describe() == "<= 0.5x"


def test_a_non_monotone_plain_curve_counts_its_first_crossing():
    sizes, acc = [100, 200, 400, 800], [0.6, 0.8, 0.7, 0.9]
    # 0.75 is crossed between 100 and 200 (t = 0.75) and again between 400 and 800: the first counts.
    pairs, relation = plain_pairs_reaching(0.75, sizes, acc)
    assert relation == "=" and pairs == pytest.approx(100 * 2 ** 0.75)
    # 0.85 only after the dip: between 400 (0.7) and 800 (0.9), t = 0.75.
    assert plain_pairs_reaching(0.85, sizes, acc)[0] == pytest.approx(400 * 2 ** 0.75)


def test_a_plateau_counts_its_start():
    assert plain_pairs_reaching(0.7, [100, 200, 400], [0.6, 0.7, 0.7]) == (pytest.approx(200.0), "=")


def test_unsorted_input_is_sorted_by_size():
    assert plain_pairs_reaching(0.75, [400, 100, 200],
                                [0.8, 0.6, 0.7])[0] == pytest.approx(200 * math.sqrt(2))
    points = equivalence_factors([200, 100], [0.8, 0.75], PLAIN_SIZES, PLAIN_ACC)
    assert [p.size for p in points] == [100, 200]


def test_describe_range_marks_bounds():
    points = [Equivalence(100, 0.75, 282.8, "="), Equivalence(200, 0.9, 400.0, ">"),
              Equivalence(50, 0.5, 100, "<=")]
    assert describe_range(points) == "<= 2x to 2.83x"
    assert describe_range(points[:2]) == "> 2x to 2.83x"
    assert describe_range([Equivalence(100, 0.9, 400.0, ">")]) == "> 4x"
    assert describe_range([]) == "none"


def test_a_plain_curve_without_points_is_an_error():
    with pytest.raises(ValueError):
        plain_pairs_reaching(0.7, [], [])
