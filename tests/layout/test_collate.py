import torch
from torch.testing import assert_close

from lightning_critrm.layout import Layout, PairCollator

FEATURES = [
    {"chosen_input_ids": [5, 6, 7], "rejected_input_ids": [5, 8], "index": 4},
    {"chosen_input_ids": [9], "rejected_input_ids": [9, 10, 11, 12], "index": 1},
]


def test_right_padding_exact_tensors():
    batch = PairCollator(pad_token_id=0)(FEATURES)
    assert_close(batch.input_ids, torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0], [5, 8, 0, 0], [9, 10, 11, 12]]))
    assert_close(batch.attention_mask, torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]))
    assert_close(batch.position_ids, torch.tensor([[0, 1, 2, 2], [0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 3]]))
    assert_close(batch.first_token_index, torch.tensor([0, 4, 8, 12]))
    assert_close(batch.last_token_index, torch.tensor([2, 4, 9, 15]))
    assert batch.num_pairs == 2 and batch.margin is None
    assert_close(batch.ids, torch.tensor([4, 1]))
    assert (batch.num_tokens, batch.num_positions) == (10, 16)


def test_left_padding_and_multiple_of_and_margin():
    feats = [dict(f, margin=m) for f, m in zip(FEATURES, (1.0, 0.5))]
    batch = PairCollator(3, Layout(padding_side="left", pad_to_multiple_of=3))(feats)
    assert_close(
        batch.input_ids,
        torch.tensor([[3, 3, 3, 5, 6, 7], [3, 3, 3, 3, 3, 9], [3, 3, 3, 3, 5, 8], [3, 3, 9, 10, 11, 12]]),
    )
    assert_close(batch.attention_mask, (batch.input_ids != 3).long())
    assert_close(batch.position_ids,
                 torch.tensor([[0, 0, 0, 0, 1, 2], [0] * 6, [0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 2, 3]]))
    assert_close(batch.first_token_index, torch.tensor([3, 11, 16, 20]))
    assert_close(batch.last_token_index, torch.tensor([5, 11, 17, 23]))
    assert_close(batch.margin, torch.tensor([1.0, 0.5]))


def test_packing_puts_the_whole_batch_in_one_row_unless_given_a_row_size():
    batch = PairCollator(0, Layout(packing=True))(FEATURES)
    # longest first: [9 10 11 12 | 5 6 7 | 5 8 | 9], positions restarting, nothing padded
    assert_close(batch.input_ids, torch.tensor([[9, 10, 11, 12, 5, 6, 7, 5, 8, 9]]))
    assert_close(batch.position_ids, torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 0]]))
    assert_close(batch.first_token_index, torch.tensor([4, 9, 7, 0]))
    assert batch.num_padding == 0
    rows = PairCollator(0, Layout(packing=True, row_tokens=4))(FEATURES)
    assert rows.input_ids.tolist() == [[9, 10, 11, 12], [5, 6, 7, 9], [5, 8, 0, 0]]
    shared = PairCollator(0, Layout(packing=True, shared_prompt=True))(FEATURES)
    # pair 1 has no prompt to share ([9] keeps its only token): [9 | 9 10 11 12]; pair 0: [5 | 6 7 | 8]
    assert shared.input_ids.tolist() == [[9, 9, 10, 11, 12, 5, 6, 7, 8]] and shared.num_padding == 0
