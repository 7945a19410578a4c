"""Putting an exported reward model to work: rewards for new (prompt, completion) items, with
critiques as it was trained (:class:`ExportedRewardModel`), and the reward function an RL trainer
calls (:class:`RewardFunction`)."""

from lightning_critrm.reward.exported import ExportedRewardModel
from lightning_critrm.reward.function import RewardFunction

__all__ = ["ExportedRewardModel", "RewardFunction"]
