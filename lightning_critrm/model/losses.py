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


def critique_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the critique tokens (the language-model half of the
    critique-out-loud recipe: the reward model learns to write the critique it reads).

    Computed in fp32; 0 (still in the graph) when there is no target, so a batch without critiques
    trains the reward head alone.

    Args:
        logits: [M, V] language-model logits at the positions before each critique token
            (:attr:`RewardBatch.critique_index`: computed there only, not over the whole batch).
        labels: [M] the critique tokens they predict (:attr:`RewardBatch.critique_labels`).
    """
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


def joint_loss(pairwise: torch.Tensor, language_model: torch.Tensor, lm_coef: float,
               pairwise_coef: float = 1.0) -> torch.Tensor:
    """``pairwise_coef * pairwise + lm_coef * language_model``: the reward and the critique trained
    together (the CLoud recipe's weighted sum). ``lm_coef`` 0 is the plain reward model;
    ``pairwise_coef`` 0 trains the critique writer alone (the recipe's first stage)."""
    return pairwise_coef * pairwise + lm_coef * language_model
