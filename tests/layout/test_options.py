import pytest
import torch

from lightning_critrm.errors import InputError
from lightning_critrm.layout import Layout

SEQS = [[1, 2, 3], [1, 2, 4, 5], [6]]


def test_the_default_layout_pads_one_sequence_per_row():
    batch = Layout().batch(SEQS, pad_token_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 0], [1, 2, 4, 5], [6, 0, 0, 0]]
    left = Layout(padding_side="left", pad_to_multiple_of=3).batch(SEQS, pad_token_id=0)
    assert left.input_ids.tolist() == [[0, 0, 0, 1, 2, 3], [0, 0, 1, 2, 4, 5], [0, 0, 0, 0, 0, 6]]


def test_packing_without_a_row_size_puts_the_batch_in_one_row():
    batch = Layout(packing=True).batch(SEQS, pad_token_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 4, 5, 1, 2, 3, 6]] and batch.num_padding == 0
    rows = Layout(packing=True, row_tokens=4).batch(SEQS, pad_token_id=0)
    assert rows.input_ids.tolist() == [[1, 2, 4, 5], [1, 2, 3, 6]]


def test_a_shared_prompt_lays_each_group_out_with_its_prefix_once():
    batch = Layout(shared_prompt=True).batch(SEQS, pad_token_id=0, groups=[[0, 1], [2]], ids=[7, 8, 9])
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 0, 0, 0, 0]]  # [1 2 | 3 | 4 5]
    assert torch.equal(batch.ids, torch.tensor([7, 8, 9]))
    assert Layout(shared_prompt=True).group_tokens(SEQS[:2]) == 5 and Layout().group_tokens(SEQS[:2]) == 4


def test_scoring_keeps_the_side_and_the_shared_prompt_but_not_packing():
    layout = Layout(padding_side="left", packing=True, row_tokens=64, shared_prompt=True)
    assert layout.for_scoring() == Layout(padding_side="left", shared_prompt=True)


def test_a_row_size_below_one_is_refused_by_name():
    with pytest.raises(InputError, match="data.layout.row_tokens must be >= 1, got 0"):
        Layout(packing=True, row_tokens=0)
