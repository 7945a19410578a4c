import torch
from torch import nn

from lightning_critrm.layout import SequenceBatches
from lightning_critrm.model.reward_pass import gather_rewards, score_batches


class FirstTokenReward(nn.Module):
    """Reward = the sequence's first token id; records the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, batch):
        self.modes.append(self.training)
        return batch.input_ids.reshape(-1)[batch.first_token_index].float()


def test_every_sequence_is_scored_once_in_eval_mode_and_the_mode_comes_back():
    model = FirstTokenReward().train()
    batches = SequenceBatches([[7, 1], [3], [9, 9, 9], [5, 2]], batch_size=3, pad_token_id=0)
    rewards = score_batches(model, batches, torch.device("cpu"))
    assert rewards == {0: 7.0, 1: 3.0, 2: 9.0, 3: 5.0}
    assert model.modes == [False, False] and model.training  # two passes of at most 3, then train again


def test_without_a_process_group_gathering_returns_this_rank_s_rewards():
    local = {0: 1.5, 2: -1.0}
    merged = gather_rewards(local)
    assert merged == local and merged is not local
