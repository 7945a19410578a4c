import torch
from torch.testing import assert_close

from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.pooling import gather_hidden, reward_positions


def test_positions_for_right_and_left_padding():
    seqs = [[1, 1, 1], [1, 1], [1, 1, 1, 1]]
    right = RewardBatch.padded(seqs, pad_token_id=0, padding_side="right")
    left = RewardBatch.padded(seqs, pad_token_id=0, padding_side="left")
    assert reward_positions(right, "last").tolist() == [2, 5, 11]  # row * 4 + column
    assert reward_positions(left, "last").tolist() == [3, 7, 11]
    assert reward_positions(right, "first").tolist() == [0, 4, 8]
    assert reward_positions(left, "first").tolist() == [1, 6, 8]


def test_pooling_reads_the_layout_not_the_pad_id_when_pad_equals_eos():
    eos = 2
    # row 2: real EOS, then EOS padding
    batch = RewardBatch.padded([[5, eos, 6, eos], [7, eos]], pad_token_id=eos)
    hidden = batch.input_ids.unsqueeze(-1).float() * 10 + torch.arange(4).view(1, 4, 1)  # [B, T, 1]
    assert_close(gather_hidden(hidden, reward_positions(batch, "last")), torch.tensor([[23.0], [21.0]]))
    assert_close(gather_hidden(hidden, reward_positions(batch, "first")), torch.tensor([[50.0], [70.0]]))
