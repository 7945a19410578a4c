"""Evaluation: RewardBench scoring (callbacks and the rewardbench subcommand build on it)."""
