"""Evaluation: RewardBench loading, scoring, the per-epoch callback and the result table."""

from lightning_critrm.evaluation.rewardbench_callback import RewardBenchCallback

__all__ = ["RewardBenchCallback"]
