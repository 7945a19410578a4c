"""``python -m lightning_critrm evaluate --model DIR``: an exported reward model on a benchmark.

The checkpoint form (``evaluate --config ... --ckpt_path ...``) runs on the Trainer
(:meth:`~lightning_critrm.trainer.CritiqueRMTrainer.evaluate`); this one reads only the folder
``export`` wrote and the benchmark's rows, and formats them as the export records (its chat
template, its critic), so both print the same table for the same weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.loggers import TensorBoardLogger

from lightning_critrm.evaluation.rewardbench_callback import BenchmarkName, evaluation_for
from lightning_critrm.locations import writable_folder
from lightning_critrm.reward.exported import ExportedRewardModel, command_parser, split_model_options


def evaluate_export(
    reward_model: ExportedRewardModel,
    benchmark: BenchmarkName = "rewardbench",
    source: Optional[str] = None,
    subsets: Optional[list[str]] = None,
    max_rows: Optional[int] = None,
    out_dir: str = "evaluations",
):
    """Score a model written by ``export`` on a benchmark and print its table; the scores and
    per-row rewards go to ``<out_dir>/<benchmark>/<model folder name>.json``, the scalars to
    TensorBoard under ``<out_dir>/tensorboard/<model folder name>`` (one run per export, so
    ``tensorboard --logdir <out_dir>/tensorboard`` compares them). Returns the scores.

    Args:
        reward_model: The exported model (``--model`` and its options).
        benchmark: ``rewardbench``, ``rewardbench2``, ``rmbench``, ``judgebench``, ``rmb``,
            ``ppe_human`` or ``ppe_correctness``.
        source: The benchmark's rows, in its layout (default: its hub set; RMB: the
            ``RMB_dataset`` folder of its GitHub repository; PPE correctness: ``lmarena-ai``, its
            five hub sets, or a folder of folders named like them).
        subsets: Only these subsets.
        max_rows: Score a sample of N rows, each subset in proportion to its size (the same
            rows every time), so the scores keep the benchmark's weighting; a full pass costs a
            critique and a forward pass per completion.
        out_dir: Where the JSON record goes.
    """
    evaluation = evaluation_for(benchmark, source, subsets, max_rows, None, reward_model.batch_size)
    evaluation.prepare(reward_model.completion_encoder(), generate=True, require_cached=False)
    rewards = reward_model.forward(evaluation.sequences, progress=True, groups=evaluation.groups())
    rows = evaluation.row_rewards(dict(enumerate(rewards)))
    scores = evaluation.scores(rows)
    name = reward_model.folder.resolve().name
    logger = TensorBoardLogger(out_dir, name="tensorboard", version=name, default_hp_metric=False)
    evaluation.report([logger], Path(out_dir), scores, rows, record_name=name)
    logger.finalize("success")
    print(evaluation.table(scores))
    return scores


def exported_model_in(argv: list[str]) -> bool:
    """Whether ``evaluate`` arguments name an exported folder with ``--model`` (the checkpoint form's
    ``--model`` is a class or a config file, never a folder)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--model=") else (
            argv[i + 1] if arg == "--model" and i + 1 < len(argv) else None)
        if value is not None and os.path.isdir(value):
            return True
    return False


def evaluate_parser():
    """The ``evaluate --model DIR`` options: the exported model's, then :func:`evaluate_export`'s."""
    return command_parser(evaluate_export, prog="python -m lightning_critrm evaluate")


def run_evaluate_command(argv: list[str]) -> Any:
    """Parse ``evaluate --model DIR ...`` arguments (without the subcommand) and run them."""
    model, options = split_model_options(evaluate_parser().parse_args(argv).as_dict())
    writable_folder(options["out_dir"], "--out_dir")
    return evaluate_export(ExportedRewardModel(**model), **options)
