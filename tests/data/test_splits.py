import pytest

from lightning_critrm.data.splits import split_by_prompt, subsample


def test_split_keeps_every_prompt_on_one_side():
    keys = ["a", "a", "b", "c", "c", "c", "d", "e", "f", "g", "h", "i", "j"]
    train, val = split_by_prompt(keys, val_fraction=0.2, seed=0)
    assert sorted(train + val) == list(range(len(keys)))
    assert not {keys[i] for i in train} & {keys[i] for i in val}
    assert len({keys[i] for i in val}) == 2  # ceil(0.2 * 10 prompts)


def test_split_is_seeded_and_independent_of_row_order():
    keys = [str(i % 7) for i in range(30)]
    _, val = split_by_prompt(keys, 0.3, seed=1)
    _, val_again = split_by_prompt(list(reversed(keys)), 0.3, seed=1)
    assert {keys[i] for i in val} == {list(reversed(keys))[i] for i in val_again}


def test_split_refuses_to_hold_out_every_prompt():
    with pytest.raises(ValueError, match="distinct prompt"):
        split_by_prompt(["a", "a"], 0.5, seed=0)


def test_subsample_is_seeded_nested_and_ordered():
    idx = list(range(100))
    small, big = subsample(idx, 10, seed=3), subsample(idx, 40, seed=3)
    assert small == sorted(small) and len(small) == 10
    assert set(small) <= set(big)
    assert subsample(idx, 10, seed=4) != small
    assert subsample(idx, None, seed=0) == idx
