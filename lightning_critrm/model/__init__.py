"""The reward model: backbone, scalar head, pooling and pairwise loss."""

from lightning_critrm.model.module import CritiqueRewardModel

__all__ = ["CritiqueRewardModel"]
