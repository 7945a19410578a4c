import math

import pytest
import torch

from lightning_critrm.model.losses import critique_lm_loss, joint_loss, pairwise_loss


def softplus(x):  # -logsigmoid(x) = log(1 + e^-x)
    return math.log1p(math.exp(-x))


def test_bradley_terry_against_hand_values():
    r_c, r_r = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # (log(1 + e^-2) + log 2) / 2 = (0.126928 + 0.693147) / 2
    assert abs(pairwise_loss(r_c, r_r).item() - 0.4100376) < 1e-6


def test_margin_is_subtracted_from_the_gap():
    r_c, r_r = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    got = pairwise_loss(r_c, r_r, margin=torch.tensor([1.0, 0.0])).item()
    assert abs(got - (softplus(1.0) + softplus(0.0)) / 2) < 1e-6  # 0.5032045


def test_centering_adds_coef_times_mean_squared_sum():
    r_c, r_r = torch.tensor([2.0, 1.0]), torch.tensor([0.0, -1.0])
    base = pairwise_loss(r_c, r_r).item()
    got = pairwise_loss(r_c, r_r, center_rewards_coef=0.01).item()
    assert abs(got - base - 0.01 * (4.0 + 0.0) / 2) < 1e-6


def test_loss_is_fp32_for_bf16_rewards():
    loss = pairwise_loss(torch.tensor([1.0], dtype=torch.bfloat16), torch.tensor([0.0], dtype=torch.bfloat16))
    assert loss.dtype == torch.float32


def test_the_critique_lm_loss_is_the_mean_cross_entropy_of_the_critique_tokens_by_hand():
    # The logits at the positions before the three critique tokens 2, 1 and 1.
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([2, 1, 1])
    ce = [math.log(math.exp(2) + 2) - 0.0, math.log(2 + math.e) - 1.0, math.log(2 + math.exp(3)) - 3.0]
    assert critique_lm_loss(logits, labels).item() == pytest.approx(sum(ce) / 3, rel=1e-6)
    none = critique_lm_loss(torch.zeros(0, 3, requires_grad=True), torch.zeros(0, dtype=torch.long))
    assert none.item() == 0.0 and none.requires_grad  # a batch without critiques: the head alone
    assert critique_lm_loss(logits.bfloat16(), labels).dtype == torch.float32


def test_the_joint_loss_weighs_the_critique_loss():
    assert joint_loss(torch.tensor(0.5), torch.tensor(2.0), 0.25).item() == pytest.approx(1.0)
    assert joint_loss(torch.tensor(0.5), torch.tensor(2.0), 0.0).item() == pytest.approx(0.5)
    critic_alone = joint_loss(torch.tensor(0.5), torch.tensor(2.0), 1.0, pairwise_coef=0.0)
    assert critic_alone.item() == pytest.approx(2.0)
