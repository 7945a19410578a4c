"""Command line: ``python -m lightning_critrm <subcommand>``, every subcommand on one LightningCLI parser.

In omegaconf mode. The data module formats inputs with the model's tokenizer, so ``data.backbone``
is linked to ``model.backbone`` rather than set twice. A ``checkpoint`` ModelCheckpoint keeps
``last.ckpt`` in a fixed folder under the run root, which is what ``--ckpt_path last`` resumes
from. The subcommands that are not training loops live with the Trainer
(:mod:`lightning_critrm.trainer`); ``score``, ``serve``, ``study`` and ``self-critique`` build no
model, data or Trainer of their own (:data:`STANDALONE`): their parsers sit beside the others, and they run as
parsed.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from jsonargparse import ActionYesNo
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_critrm import console
from lightning_critrm.backbones import cache_root, empty_backbone
from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.errors import USER_ERROR_EXIT_CODE, paragraph, traceback_requested, user_error_in
from lightning_critrm.evaluate import exported_model_in, run_evaluate_command
from lightning_critrm.evaluation.validation_examples import ValidationExamples
from lightning_critrm.hardware import cpu_has_native_bf16
from lightning_critrm.layout.attention import require_causal_decoder
from lightning_critrm.locations import file_of_kind, writable_file, writable_folder
from lightning_critrm.model import CritiqueRewardModel
from lightning_critrm.model.atomic_checkpoint_io import AtomicCheckpointIO
from lightning_critrm.model.checkpoint_paths import resolve_checkpoint
from lightning_critrm.model.resumable_checkpoint import ResumableCheckpoint
from lightning_critrm.model.throughput import TrainingThroughput
from lightning_critrm.reward.server import run_serve_command, serve_parser
from lightning_critrm.score import run_score_command, score_parser
from lightning_critrm.self_critique.command import run_self_critique_command, self_critique_parser
from lightning_critrm.signals import SIGTERM_EXIT_CODE, child_pids, end_child_processes
from lightning_critrm.study.command import run_study_command, split_fit_overrides, study_parser
from lightning_critrm.trainer import CritiqueRMTrainer, fill_all_critiques

# Commands whose --ckpt_path names a trained model to read (fit's resumes, and may not exist yet).
READS_A_CHECKPOINT = ("validate", "test", "predict", "evaluate", "rewardbench", "export")
# Subcommands that build no model, data module or Trainer: (their parser, how to run the parsed options).
STANDALONE = {
    "score": (score_parser, lambda options, cli: run_score_command(options.as_dict())),
    "serve": (serve_parser, lambda options, cli: run_serve_command(options.as_dict())),
    "study": (study_parser, lambda options, cli: run_study_command(options, cli.fit_overrides)),
    "self-critique": (self_critique_parser,
                      lambda options, cli: run_self_critique_command(options, cli.fit_overrides)),
}
# Subcommands whose `--fit.<option> VALUE` go to the fit commands they run.
RUNS_FITS = ("study", "self-critique")


@rank_zero_only
def rank_zero_print(*args) -> None:
    print(*args, flush=True)


def _fp32_where_bf16_is_emulated(trainer: dict) -> None:
    """A bf16 precision on a CPU without native bf16 runs ~35x slower than fp32 (emulated): train
    in fp32 instead, with a one-line notice. GPUs and bf16-capable CPUs keep the setting."""
    precision = str(trainer.get("precision") or "")
    accelerator = str(trainer.get("accelerator") or "auto")
    if "bf16" not in precision or accelerator not in ("cpu", "auto"):
        return
    if accelerator == "auto" and torch.cuda.is_available():
        return
    if not cpu_has_native_bf16():
        trainer["precision"] = "32-true"
        rank_zero_print(
            f"note: trainer.precision {precision} -> 32-true: this CPU has no native bf16 (no AVX-512 "
            "BF16 or AMX), where bf16 is emulated and far slower than fp32"
        )


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, with a run bounded by steps described as such (Lightning
    writes "Epoch 0/-2" when ``max_epochs`` is unset) and without the logger's version number."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        limit = f", {trainer.max_steps} steps" if trainer.max_steps and trainer.max_steps > 0 else ""
        description = f"Epoch {current_epoch}{limit}"
        return f"{description:{len(self.validation_description)}}"

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class CritiqueRMCLI(LightningCLI):
    def __init__(self, *args, fit_overrides: Optional[list[str]] = None, **kwargs):
        self.fit_overrides = fit_overrides or []  # study's --fit.* options, split off before parsing
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            **LightningCLI.subcommands(),
            "critique": {"model", "datamodule"},
            "evaluate": {"model", "datamodule"},
            "rewardbench": {"model", "datamodule"},
            "export": {"model", "datamodule"},
        }

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs) -> None:
        super()._add_subcommands(parser, **kwargs)
        self._standalone_parsers = {}
        # LightningCLI keeps no handle on the subcommands action; jsonargparse stores it on the parser.
        for name, (make_parser, _) in STANDALONE.items():
            self._standalone_parsers[name] = make_parser()
            parser._subcommands_action.add_subcommand(name, self._standalone_parsers[name],
                                                      help=self._standalone_parsers[name].description)

    @property
    def standalone(self) -> bool:
        return self.subcommand in STANDALONE

    def _set_seed(self) -> None:
        if not self.standalone:  # (self.subcommand is set just before)
            super()._set_seed()

    def _run_subcommand(self, subcommand: str) -> None:
        if subcommand not in STANDALONE:
            return super()._run_subcommand(subcommand)
        options = self._standalone_parsers[subcommand].instantiate_classes(self.config[subcommand])
        STANDALONE[subcommand][1](options, self)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.backbone", "data.backbone")
        parser.link_arguments("model.critique_lm_coef", "data.critique_targets", compute_fn=_learns_critiques)
        parser.add_argument(
            "--show_logs",
            action=ActionYesNo,
            default=False,
            help="Show the output of vLLM, transformers, Lightning and other libraries on the terminal "
            "(also LIGHTNING_CRITRM_SHOW_LOGS=1). By default it goes to "
            "<default_root_dir>/logs/<command>.log and the terminal shows this tool's progress and summaries "
            "only.",
        )
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

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        # Once the command line is read (--help and parse errors have printed), and before anything
        # else runs, other libraries' output goes to the run folder's log file.
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand or subcommand in STANDALONE:  # their own logs (score: <output>.log)
            return
        config = self.config[subcommand]
        _check_locations(config, subcommand)
        rank = rank_zero_only.rank
        log = self._root(config) / "logs" / f"{subcommand}{f'.rank{rank}' if rank else ''}.log"
        if not config.get("show_logs") and console.send_other_output_to(log,
                                                                        package_logs_to_terminal=rank == 0):
            rank_zero_print(f"other libraries' output: {log} (--show_logs shows it here)")
        elif rank == 0:
            console.show_package_logs()

    @staticmethod
    def _root(config) -> Path:
        return Path(config["trainer"]["default_root_dir"] or os.getcwd())

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not one the config chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        bar = trainer.progress_bar_callback
        if type(bar) is RichProgressBar:  # Lightning's default (rich is installed), not a configured one
            trainer.callbacks[trainer.callbacks.index(bar)] = StepProgressBar()
        return trainer

    def before_instantiate_classes(self) -> None:
        if self.standalone:
            return
        config = self.config[self.subcommand] if self.subcommand else self.config
        _fp32_where_bf16_is_emulated(config["trainer"])
        if config["checkpoint"]["dirpath"] is None:
            # A fixed folder (not the logger's version_N) so `--ckpt_path last` finds it on resume.
            config["checkpoint"]["dirpath"] = str(self._root(config) / "checkpoints")
        if self.subcommand in READS_A_CHECKPOINT and config.get("ckpt_path") in ("last", "best"):
            # Lightning finds `best` only in the process that trained, and runs on without a `last`.
            config["ckpt_path"] = str(resolve_checkpoint(config["ckpt_path"],
                                                         config["checkpoint"]["dirpath"]))

    def instantiate_classes(self) -> None:
        if self.standalone:
            return
        super().instantiate_classes()
        datamodule, model = getattr(self, "datamodule", None), getattr(self, "model", None)
        if datamodule is not None and model is not None:
            datamodule.connect(model.attends_per_sequence)
        self._check_shared_prompt()

    def _check_shared_prompt(self) -> None:
        """Refuse ``data.layout.shared_prompt`` on a backbone that cannot share a prompt before any data
        is read or critique written (the model is built on the meta device: no weights read)."""
        datamodule, model = getattr(self, "datamodule", None), getattr(self, "model", None)
        if datamodule is None or model is None or not datamodule.layout.shared_prompt:
            return
        require_causal_decoder(empty_backbone(model.hparams.backbone))

    def before_fit(self) -> None:
        for needed in (ResumableCheckpoint, TrainingThroughput, ValidationExamples):
            if not any(isinstance(c, needed) for c in self.trainer.callbacks):
                self.trainer.callbacks.append(needed())
        self._critiques_before_launch()

    def _critiques_before_launch(self) -> None:
        """With several processes, no rank may wait on the critic (a critique job outlasts the
        process group's timeout). Lightning starts its processes inside ``fit``: this process
        generates every missing critique first. Processes started by torchrun or SLURM exist
        already: each checks the cache and all stop at once, naming the ``critique`` command."""
        trainer, datamodule = self.trainer, self.datamodule
        if trainer.world_size == 1:
            return  # prepare_data generates what is missing
        env = trainer.strategy.cluster_environment
        started_elsewhere = env is not None and env.creates_processes_externally
        if not started_elsewhere and rank_zero_only.rank != 0:
            return
        fill_all_critiques(datamodule, trainer.callbacks, require_cached=True if started_elsewhere else None)

    def after_fit(self) -> None:
        trainer = self.trainer
        log_dir = trainer.log_dir  # on every rank: it broadcasts from rank 0
        if not trainer.is_global_zero:
            return
        acc = trainer.callback_metrics.get("val/acc")
        if acc is not None:
            n = len(self.datamodule.val_dataset) if self.datamodule.val_dataset is not None else 0
            print(
                f"validation accuracy: {float(acc):.3f} on {n} held-out pairs at step {trainer.global_step}: "
                "the share of pairs whose chosen answer gets the higher reward (0.5 is chance)"
            )
        print(f"run folder: {log_dir} (tensorboard --logdir {trainer.default_root_dir})")
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.last_model_path:
            print(f"last checkpoint: {ckpt.last_model_path}")
        command = "python -m lightning_critrm"
        config = "".join(f" --config {shlex.quote(str(c))}" for c in self.config["fit"].get("config") or [])
        if self.datamodule.hparams.critiques != "none":  # the paper's comparison, on the same pairs
            root = shlex.quote(f"{str(trainer.default_root_dir).rstrip('/')}_none")
            print(f"next: the same run without critiques: {command} fit{config} --data.critiques none "
                  f"--trainer.default_root_dir {root}")
        if ckpt is not None and ckpt.last_model_path:
            print(f"next: score it on RewardBench: {command} evaluate{config} "
                  f"--ckpt_path {shlex.quote(ckpt.last_model_path)}")

    def after_validate(self) -> None:
        self._print_metrics("val/")

    def after_test(self) -> None:
        self._print_metrics("test/")

    def _print_metrics(self, prefix: str) -> None:
        """One line of the stage's metrics (Lightning's own table goes to the log file)."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(prefix)}
        if metrics and self.trainer.is_global_zero:
            print(", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))


def _check_locations(config, subcommand: str) -> None:
    """Every place a command reads or writes, checked before any work (:mod:`locations`)."""
    writable_folder(CritiqueRMCLI._root(config), "--trainer.default_root_dir")
    cache_dir = config.get("data.cache_dir")
    writable_folder(cache_dir or cache_root(), "--data.cache_dir" if cache_dir else
                    "the cache folder (LIGHTNING_CRITRM_CACHE, default ~/.cache/lightning_critrm)")
    if subcommand == "fit" and config.get("checkpoint.dirpath"):
        writable_folder(config.get("checkpoint.dirpath"), "--checkpoint.dirpath")
    critiques = config.get("data.critic.cache.path")
    if critiques and config.get("data.critiques") == "generate":
        setting = "--data.critic.cache.path"
        file_of_kind(writable_file(critiques, setting), setting, "SQLite critique cache")
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and ckpt_path not in ("last", "best"):
        resolve_checkpoint(ckpt_path, None)
    if subcommand == "export" and config.get("out"):
        writable_folder(Path(config.get("out")).parent, "--out (its folder)")


def run_command_line() -> None:
    """``python -m lightning_critrm``: :func:`main`, with a user error printed as one ``error:``
    paragraph and exit status 1 instead of a traceback (``LIGHTNING_CRITRM_TRACEBACK=1`` keeps it;
    the run's log file has it either way)."""
    try:
        main()
    except Exception as exc:
        error = user_error_in(exc)
        if error is None or traceback_requested():
            raise
        print(paragraph(error), file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT_CODE)


def main(args: Optional[list[str]] = None, run: bool = True) -> Optional[CritiqueRMCLI]:
    """Run the CLI on ``args`` (default: ``sys.argv``). ``run=False`` only builds the objects
    (no subcommand in ``args`` then), which is how tests inspect a config."""
    before = child_pids()  # a caller's own processes are none of ours
    finished = False
    try:
        argv = sys.argv[1:] if args is None else list(args)
        fit_overrides = None
        if run and argv[:1] and argv[0] in RUNS_FITS:
            argv, fit_overrides = split_fit_overrides(argv)
            args = argv
        if run and argv[:1] == ["evaluate"] and exported_model_in(argv[1:]):
            run_evaluate_command(argv[1:])  # an export: no model class, data module or Trainer
            finished = True
            return None
        with warnings.catch_warnings():  # args is the command line, rewritten
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            cli = _cli(args, run, fit_overrides)
        finished = True
        return cli
    except SIGTERMException:
        # Lightning stopped at the end of a batch and ResumableCheckpoint saved last.ckpt.
        sys.exit(SIGTERM_EXIT_CODE)
    except Exception:
        if console.log_path() is not None:  # the log file keeps the traceback beside what led to it
            traceback.print_exc(file=sys.stderr)
        raise
    finally:
        # Multi-process runs: a gloo/NCCL group left to interpreter exit can abort the process
        # ("terminate called without an active exception") after the work is done and saved.
        if run and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if run:  # vLLM engines, DDP ranks: nothing this command started outlives it
            end_child_processes(spare=before, grace_s=30.0 if finished else 0.0)
        console.restore_terminal()


def _cli(args: Optional[list[str]], run: bool, fit_overrides: Optional[list[str]] = None) -> CritiqueRMCLI:
    return CritiqueRMCLI(
        CritiqueRewardModel,
        PreferenceDataModule,
        fit_overrides=fit_overrides,
        trainer_class=CritiqueRMTrainer,
        args=args,
        run=run,
        parser_kwargs={"parser_mode": "omegaconf"},
        save_config_kwargs={"overwrite": True},
        # The model builds its optimizer and schedule from its own callables: one mechanism.
        auto_configure_optimizers=False,
        # The data module deals its length-grouped batches out across ranks itself, in an order set
        # by data.seed alone; Lightning's DistributedSampler would reorder (and pad) them.
        trainer_defaults={"default_root_dir": "runs/default", "use_distributed_sampler": False},
    )


def _learns_critiques(critique_lm_coef: float) -> bool:
    return critique_lm_coef > 0
