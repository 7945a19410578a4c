"""Pairwise reward-model losses: small stateless functions."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def pairwise_loss(
    rewards_chosen: torch.Tensor,
    rewards_rejected: torch.Tensor,
    margin: Optional[torch.Tensor] = None,
    center_rewards_coef: float = 0.0,
) -> torch.Tensor:
    """Bradley-Terry loss ``mean(-logsigmoid(r_c - r_r - margin))`` plus optional centering.

    Centering adds ``coef * mean((r_c + r_r)^2)``, which pulls the rewards of each pair towards zero
    sum so the reward scale stays anchored (TRL's ``center_rewards_coefficient``). Computed in fp32.

    Args:
        rewards_chosen: [B] rewards of the chosen completions.
        rewards_rejected: [B] rewards of the rejected completions.
        margin: [B] required reward gap per pair, or None.
        center_rewards_coef: Weight of the centering term (0 disables it).
    """
    r_c, r_r = rewards_chosen.float(), rewards_rejected.float()
    diff = r_c - r_r
    if margin is not None:
        diff = diff - margin.float()
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coef:
        loss = loss + center_rewards_coef * ((r_c + r_r) ** 2).mean()
    return loss
