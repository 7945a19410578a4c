import torch
from torch.testing import assert_close

from lightning_critrm.model.pooling import first_token_index, last_token_index, pool_hidden


def test_last_and_first_index_for_right_and_left_padding():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_index(right).tolist() == [2, 1, 3]
    assert last_token_index(left).tolist() == [3, 3, 3]
    assert first_token_index(right).tolist() == [0, 0, 0]
    assert first_token_index(left).tolist() == [1, 2, 0]


def test_pooling_reads_the_mask_not_the_pad_id_when_pad_equals_eos():
    eos = 2
    ids = torch.tensor([[5, eos, 6, eos], [7, eos, eos, eos]])  # row 2: real EOS then EOS padding
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    hidden = ids.unsqueeze(-1).float() * 10 + torch.arange(4).view(1, 4, 1)  # [B, T, 1]
    assert_close(pool_hidden(hidden, mask, "last"), torch.tensor([[23.0], [21.0]]))
    assert_close(pool_hidden(hidden, mask, "first"), torch.tensor([[50.0], [70.0]]))
