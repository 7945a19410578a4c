import pytest

from lightning_critrm.layout.ranks import deal, rank_and_world


def test_without_a_process_group_this_is_rank_0_of_1():
    assert rank_and_world() == (0, 1)


@pytest.mark.parametrize("uneven, shares", [
    ("keep", [[0, 3, 6], [1, 4], [2, 5]]),
    ("drop", [[0, 3], [1, 4], [2, 5]]),
    ("pad", [[0, 3, 6], [1, 4, 0], [2, 5, 1]]),  # 7 items over 3 ranks: the first two again
])
def test_items_are_dealt_rank_by_rank(uneven, shares):
    items = list(range(7))
    assert [deal(items, rank, 3, uneven) for rank in range(3)] == shares


def test_one_rank_takes_everything_whatever_the_rule():
    assert deal([5, 6, 7], 0, 1, "drop") == [5, 6, 7] and deal([], 1, 2, "pad") == []
