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

from lightning_critrm.evaluation.rewardbench_callback import BenchmarkName, evaluation_for
from lightning_critrm.locations import writable_folder
from lightning_critrm.reward.exported import ExportedRewardModel, Precision


def evaluate_export(
    model: str,
    benchmark: BenchmarkName = "rewardbench",
    source: Optional[str] = None,
    subsets: Optional[list[str]] = None,
    max_rows: Optional[int] = None,
    batch_size: int = 16,
    out_dir: str = "evaluations",
    cache_dir: Optional[str] = None,
    device: str = "auto",
    critic_base_url: Optional[str] = None,
    critic_api_key_env: Optional[str] = None,
    critic_max_concurrency: Optional[int] = None,
    precision: Precision = "32-true",
    shared_prompt: bool = False,
):
    """Score a model written by ``export`` on a benchmark and print its table; the scores and
    per-row rewards go to ``<out_dir>/<benchmark>/<model folder name>.json``. Returns the scores.

    Args:
        model: Folder written by ``python -m lightning_critrm export``.
        benchmark: ``rewardbench``, ``rewardbench2``, ``rmbench``, ``judgebench``, ``rmb``,
            ``ppe_human`` or ``ppe_correctness``.
        source: The benchmark's rows, in its layout (default: its hub set; RMB: the
            ``RMB_dataset`` folder of its GitHub repository; PPE correctness: ``lmarena-ai``, its
            five hub sets, or a folder of folders named like them).
        subsets: Only these subsets.
        max_rows: Score a sample of N rows, each subset in proportion to its size (the same
            rows every time), so the scores keep the benchmark's weighting; a full pass costs a
            critique and a forward pass per completion.
        batch_size: Sequences per forward pass.
        out_dir: Where the JSON record goes.
        cache_dir: Where generated critiques are cached (default: ``$LIGHTNING_CRITRM_CACHE`` or
            ``~/.cache/lightning_critrm``, as in training).
        device: ``auto`` (a GPU where there is one), ``cpu`` or ``cuda``.
        critic_base_url: Where the recorded critic is served, when it is an endpoint.
        critic_api_key_env: Environment variable holding that endpoint's API key.
        critic_max_concurrency: Most requests in flight to that endpoint at once (default 8).
        precision: ``32-true`` (fp32) or ``bf16-mixed`` (the forward pass under bf16 autocast):
            faster where bf16 is native, rewards that differ from fp32's in the second or third digit.
        shared_prompt: Score the completions of one row together, the prompt computed once (as
            ``data.layout.shared_prompt`` trains): faster where completions share long prompts;
            rewards equal the default layout's within rounding.
    """
    reward_model = ExportedRewardModel(model, batch_size, cache_dir, device, critic_base_url,
                                       critic_api_key_env, precision=precision,
                                       critic_max_concurrency=critic_max_concurrency,
                                       shared_prompt=shared_prompt)
    evaluation = evaluation_for(benchmark, source, subsets, max_rows, None, batch_size)
    evaluation.prepare(reward_model.completion_encoder(), generate=True, require_cached=False)
    rewards = reward_model.forward(evaluation.sequences, progress=True, groups=evaluation.groups())
    rows = evaluation.row_rewards(dict(enumerate(rewards)))
    scores = evaluation.scores(rows)
    evaluation.report([], Path(out_dir), scores, rows, record_name=Path(model).resolve().name)
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
    """The ``evaluate --model DIR`` options, from :func:`evaluate_export`'s docstring."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m lightning_critrm evaluate",
                            description=evaluate_export.__doc__.split("\n\n")[0])
    parser.add_function_arguments(evaluate_export, as_group=False)
    return parser


def run_evaluate_command(argv: list[str]) -> Any:
    """Parse ``evaluate --model DIR ...`` arguments (without the subcommand) and run them."""
    options = evaluate_parser().parse_args(argv).as_dict()
    options.pop("config", None)
    writable_folder(options["out_dir"], "--out_dir")
    if options.get("cache_dir"):
        writable_folder(options["cache_dir"], "--cache_dir")
    return evaluate_export(**options)
