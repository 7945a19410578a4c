import pytest
import torch
from torch.testing import assert_close

from lightning_critrm.batch import RewardBatch


def test_split_pairs_gives_chosen_then_rejected():
    batch = RewardBatch.padded([[1, 2], [3], [4, 5, 6], [7]], pad_token_id=0, num_pairs=2)
    r_c, r_r = batch.split_pairs(torch.tensor([10.0, 11.0, 20.0, 21.0]))
    assert_close(r_c, torch.tensor([10.0, 11.0]))
    assert_close(r_r, torch.tensor([20.0, 21.0]))


def test_sequences_scored_alone_are_not_pairs():
    batch = RewardBatch.padded([[1, 2], [3]], pad_token_id=0, ids=[7, 9])
    with pytest.raises(ValueError, match="not pairs"):
        batch.split_pairs(torch.zeros(2))
    assert_close(batch.ids, torch.tensor([7, 9]))


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="2 pairs need 4 sequences, got 3"):
        RewardBatch.padded([[1], [2], [3]], pad_token_id=0, num_pairs=2)
    with pytest.raises(ValueError, match="sequence 1 of the batch is empty"):
        RewardBatch.padded([[1], []], pad_token_id=0)


def test_to_moves_every_tensor_and_keeps_the_rest():
    batch = RewardBatch.padded([[1, 2], [3]], pad_token_id=0, num_pairs=1, margin=[0.5])
    moved = batch.to("meta")
    assert moved.input_ids.device.type == "meta" and moved.margin.device.type == "meta"
    assert moved.num_pairs == 1 and batch.input_ids.device.type == "cpu"
