"""Command line: ``python -m lightning_critrm fit|validate|test|critique|rewardbench --config conf/x.yaml``.

One LightningCLI, in omegaconf mode. The data module formats inputs with the model's tokenizer, so
``data.backbone`` is linked to ``model.backbone`` rather than set twice. A ``checkpoint``
ModelCheckpoint keeps ``last.ckpt`` in a fixed folder under the run root, which is what
``--ckpt_path last`` resumes from.
"""

from __future__ import annotations

import os
from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.evaluation.rewardbench_data import HUB_NAME
from lightning_critrm.evaluation.table import format_table
from lightning_critrm.model import CritiqueRewardModel


class CritiqueRMTrainer(L.Trainer):
    """Lightning's Trainer plus the ``critique`` subcommand."""

    def critique(self, model: L.LightningModule, datamodule: PreferenceDataModule) -> None:
        """Generate and cache one critique per completion for the training data, every
        evaluation set and every configured RewardBenchCallback, reading the same config as
        ``fit`` so the cache keys match (``critic.require_cached`` is for ``fit``; this command
        is what fills the cache). Prints how many were generated, already cached and failed,
        with the critic's tokens/s."""
        summaries = []
        if datamodule.hparams.critiques == "generate":
            summaries.append(("data", datamodule.generate_critiques(require_cached=False)))
        for callback in self.callbacks:
            if isinstance(callback, RewardBenchCallback):
                summary = callback.generate_critiques(datamodule)
                if summary is not None:
                    summaries.append((f"rewardbench {callback.source}", summary))
        if not summaries:
            raise ValueError(
                "nothing to critique: data.critiques is not 'generate' and no RewardBenchCallback needs critiques"
            )
        if self.is_global_zero:
            for what, summary in summaries:
                print(f"{what}: {summary}")

    def rewardbench(
        self,
        model: L.LightningModule,
        datamodule: PreferenceDataModule,
        ckpt_path: Optional[str] = None,
        source: str = HUB_NAME,
        subsets: Optional[list[str]] = None,
        batch_size: int = 16,
        max_rows: Optional[int] = None,
    ) -> None:
        """Score a checkpoint on RewardBench and print accuracy by subset and section, with
        partial sections marked; the per-row rewards go to a JSON file in the run folder.
        Missing critiques of RewardBench completions are generated (whatever
        ``critic.require_cached`` says: no training waits on them). A RewardBenchCallback in the
        config is replaced by this evaluation, which keeps its ``critic``.

        Args:
            ckpt_path: Checkpoint to score (``last``, ``best`` or a path).
            source: ``allenai/reward-bench`` or local RewardBench files.
            subsets: Only these subsets.
            batch_size: Sequences per forward pass.
            max_rows: Score only the first N rows.
        """
        configured = [c for c in self.callbacks if isinstance(c, RewardBenchCallback)]
        critic = next((c.critic for c in configured if c.critic is not None), None)
        # Each configured callback would score on `test` too: the rows would be scored twice.
        self.callbacks = [c for c in self.callbacks if not isinstance(c, RewardBenchCallback)]
        callback = RewardBenchCallback(
            source=source, subsets=subsets, batch_size=batch_size, max_rows=max_rows, critic=critic, require_cached=False
        )
        self.callbacks.append(callback)
        self.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        if self.is_global_zero and callback.last_scores is not None:
            print(format_table(callback.last_scores))


class CritiqueRMCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            **LightningCLI.subcommands(),
            "critique": {"model", "datamodule"},
            "rewardbench": {"model", "datamodule"},
        }

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.backbone", "data.backbone")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "step{step}-acc{val/acc:.3f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config["checkpoint"]["dirpath"] is None:
            # A fixed folder (not the logger's version_N) so `--ckpt_path last` finds it on resume.
            root = config["trainer"]["default_root_dir"] or os.getcwd()
            config["checkpoint"]["dirpath"] = os.path.join(root, "checkpoints")

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # on every rank: it broadcasts from rank 0
        acc = self.trainer.callback_metrics.get("val/acc")
        if acc is not None and self.trainer.is_global_zero:
            n = len(self.datamodule.val_dataset) if self.datamodule.val_dataset is not None else 0
            print(f"validation accuracy: {float(acc):.4f} on {n} pairs (step {self.trainer.global_step})")
            print(f"run folder: {log_dir}")
            ckpt = self.trainer.checkpoint_callback
            if ckpt is not None and ckpt.last_model_path:
                print(f"last checkpoint: {ckpt.last_model_path}")


def main(args: Optional[list[str]] = None, run: bool = True) -> CritiqueRMCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``). ``run=False`` only builds the objects
    (no subcommand in ``args`` then), which is how tests inspect a config."""
    return CritiqueRMCLI(
        CritiqueRewardModel,
        PreferenceDataModule,
        trainer_class=CritiqueRMTrainer,
        args=args,
        run=run,
        parser_kwargs={"parser_mode": "omegaconf"},
        save_config_kwargs={"overwrite": True},
        # The model builds its optimizer and schedule from its own callables: one mechanism.
        auto_configure_optimizers=False,
        trainer_defaults={"default_root_dir": "runs/default"},
    )
