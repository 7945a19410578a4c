"""Putting an exported reward model to work: rewards for new (prompt, completion) items, with
critiques as it was trained (:class:`ExportedRewardModel`), the reward function an RL trainer calls
(:class:`RewardFunction`, or :class:`RemoteRewardFunction` through a reward server), and that server
(:mod:`lightning_critrm.reward.server`)."""

from lightning_critrm.reward.exported import ExportedRewardModel
from lightning_critrm.reward.function import RemoteRewardFunction, RewardFunction

__all__ = ["ExportedRewardModel", "RemoteRewardFunction", "RewardFunction"]
