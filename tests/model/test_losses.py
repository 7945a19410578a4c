import math

import torch

from lightning_critrm.model.losses import pairwise_loss


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
