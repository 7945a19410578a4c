"""The reward model (a plain ``nn.Module``) and the LightningModule that trains it."""

from lightning_critrm.model.module import CritiqueRewardModel
from lightning_critrm.model.reward_model import RewardModel

__all__ = ["CritiqueRewardModel", "RewardModel"]
