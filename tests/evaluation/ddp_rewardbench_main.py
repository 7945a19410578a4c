"""Run by test_ddp_rewardbench: score RewardBench rows with 2 CPU processes (DDP over gloo)."""

import sys

import lightning as L

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.model import CritiqueRewardModel

if __name__ == "__main__":  # DDP re-launches this script once per extra rank
    backbone, pairs, rewardbench, root, cache = sys.argv[1:6]
    dm = PreferenceDataModule(source=pairs, backbone=backbone, critiques="none", cache_dir=cache,
                              val_fraction=0.25)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", default_root_dir=root, enable_progress_bar=False,
        callbacks=[RewardBenchCallback(source=rewardbench, batch_size=8)],
    )
    trainer.test(CritiqueRewardModel(backbone=backbone), datamodule=dm, verbose=False)
