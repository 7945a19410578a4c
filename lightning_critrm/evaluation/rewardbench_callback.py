"""Score a reward model on RewardBench while it trains (and on ``test``).

Each evaluation formats every row exactly like training (the data module's
:class:`~lightning_critrm.data.completion_encoder.CompletionEncoder`: same formatter, critiques from
the same critic, template and cache), scores chosen and rejected in fp32 through the strategy's
model (so sharded parameters are gathered), in length-sorted batches, and counts every row exactly
once across ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_critrm.critique import CriticConfig, CritiqueSummary
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.errors import InputError
from lightning_critrm.evaluation.benchmark import Benchmark
from lightning_critrm.evaluation.judgebench_eval import JudgeBenchEval
from lightning_critrm.evaluation.rewardbench2_eval import RewardBench2Eval
from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval
from lightning_critrm.evaluation.rmb_eval import RMBEval
from lightning_critrm.evaluation.rmbench_eval import RMBenchEval
from lightning_critrm.model.reward_pass import gather_rewards, score_batches


def completion_encoder(trainer: L.Trainer) -> CompletionEncoder:
    """The encoder of the trainer's data module (how its training inputs are formatted)."""
    encoder = getattr(trainer.datamodule, "completion_encoder", None)
    if not isinstance(encoder, CompletionEncoder):
        raise TypeError(
            "RewardBenchCallback needs a data module with a `completion_encoder` "
            "(lightning_critrm.data.PreferenceDataModule has one), to format rows like the training data"
        )
    return encoder


BENCHMARKS: dict[str, type[Benchmark]] = {
    "rewardbench": RewardBenchEval, "rewardbench2": RewardBench2Eval, "rmbench": RMBenchEval,
    "judgebench": JudgeBenchEval, "rmb": RMBEval,
}  # fmt: skip
BenchmarkName = Literal["rewardbench", "rewardbench2", "rmbench", "judgebench", "rmb"]


def evaluation_for(benchmark: str, source: Optional[str], *args) -> Benchmark:
    """The evaluation of ``benchmark`` (a name in :data:`BENCHMARKS`), on its hub set unless
    ``source`` says otherwise."""
    if benchmark not in BENCHMARKS:
        raise InputError(f"benchmark {benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[benchmark](source, *args)


class RewardBenchCallback(Callback):
    def __init__(
        self,
        source: Optional[str] = None,
        subsets: Optional[list[str]] = None,
        every_n_epochs: int = 1,
        every_n_steps: Optional[int] = None,
        batch_size: int = 16,
        sort_by_length: bool = True,
        critic: Optional[CriticConfig] = None,
        max_rows: Optional[int] = None,
        num_text_examples: int = 3,
        require_cached: Optional[bool] = None,
        benchmark: BenchmarkName = "rewardbench",
    ):
        """A benchmark's scores, logged as ``<benchmark>/*``: RewardBench accuracy by subset,
        section and overall; RewardBench 2 (best-of-4, the Ties metric); RM-Bench (hard, normal,
        easy and per-domain accuracy); JudgeBench (accuracy per category and overall); RMB
        (pairwise and best-of-N accuracy per scenario and section, and overall). One callback per
        benchmark.

        Args:
            source: The benchmark's rows. ``rewardbench``: ``allenai/reward-bench`` (split
                ``filtered``; ``name:split`` for another) or local ``.jsonl``/``.json``/``.parquet``
                files with ``id, prompt, chosen, rejected, subset``. ``rewardbench2``:
                ``allenai/reward-bench-2`` (split ``test``) or local files in its layout
                (``chosen`` and ``rejected`` lists, ``num_correct``). ``rmbench``:
                ``THU-KEG/RM-Bench`` or files in its layout (``chosen`` and ``rejected`` lists of
                three styles, ``domain``). ``judgebench``: ``ScalerLab/JudgeBench`` (split ``gpt``)
                or files in its layout (``pair_id, source, question, response_A, response_B,
                label``). ``rmb``: the ``RMB_dataset`` folder of a clone of
                github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark (RMB has no hub set), or a subfolder
                or file of it. Default: the benchmark's hub set.
            subsets: Only these subsets (RM-Bench: domains, e.g. ``safety-refuse``; JudgeBench:
                categories, e.g. ``math``; RMB: scenarios, e.g. ``BoN_set/Harmlessness/S1``;
                default: all in ``source``). Missing subsets are
                reported, and what they belong to marked partial.
            every_n_epochs: Evaluate at the end of every n-th training epoch (0: never).
            every_n_steps: Evaluate every n optimizer steps instead.
            batch_size: Sequences per forward pass.
            sort_by_length: Batch sequences of similar length together (much less padding).
            critic: Critic for the evaluation critiques when training read critiques from data
                columns. With ``critiques: generate`` the training critic is used; with
                ``critiques: none`` no critiques are written.
            max_rows: Score only the first N rows (smoke runs).
            num_text_examples: Rows shown in TensorBoard as text: prompt, completion, critique, reward.
            require_cached: Fail at the first evaluation if a critique is missing from the cache
                instead of generating it (default: the critic's ``cache.require_cached``). The
                ``critique`` subcommand fills the cache for every configured RewardBenchCallback.
            benchmark: ``rewardbench``, ``rewardbench2``, ``rmbench``, ``judgebench`` or ``rmb``.
        """
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.require_cached = require_cached
        # What to score and how: held once, by the evaluation the subcommand runs too.
        self.eval = evaluation_for(benchmark, source, subsets, max_rows, critic, batch_size, sort_by_length,
                                   num_text_examples)
        self.last_scores = None  # the benchmark's scores of the last evaluation
        self._last_step: Optional[int] = None  # the step evaluated last, so each step counts once

    @property
    def source(self) -> str:
        return self.eval.source

    @property
    def critic(self) -> Optional[CriticConfig]:
        return self.eval.critic

    def fill_critiques(
        self, encoder: CompletionEncoder, require_cached: Optional[bool] = False
    ) -> Optional[CritiqueSummary]:
        """Generate every missing critique this callback needs (what the ``critique`` subcommand
        runs, so a later ``fit`` with ``require_cached`` finds them); None when critiques are off."""
        return self.eval.fill_critiques(encoder, require_cached=require_cached)

    def prepare(self, trainer: L.Trainer) -> None:
        """Rows, critiques (rank 0 generates missing ones while the others wait) and token ids."""
        if self.eval.rows is not None:
            return
        encoder = completion_encoder(trainer)
        if trainer.is_global_zero:
            self.eval.prepare(encoder, generate=True, require_cached=self.require_cached)
        trainer.strategy.barrier("rewardbench_critiques")
        if not trainer.is_global_zero:
            self.eval.prepare(encoder, generate=False)

    def evaluate(self, trainer: L.Trainer):
        """Score every row once across ranks; rank 0 reports and returns the scores (others None)."""
        self.prepare(trainer)
        with trainer.precision_plugin.val_step_context():  # the precision validation runs in
            local = score_batches(
                trainer.strategy.model,  # the wrapped model: DDP/FSDP/FSDP2 gather parameters inside it
                self.eval.batches(),
                trainer.strategy.root_device,
                progress=trainer.is_global_zero and trainer.progress_bar_callback is not None,
                desc="rewardbench",
            )
        rewards = gather_rewards(local)
        # Every rank asks: Trainer.log_dir broadcasts from rank 0, a collective.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return None
        rows = self.eval.row_rewards(rewards)
        self.last_scores = self.eval.scores(rows)
        self.eval.report(trainer, log_dir, self.last_scores, rows)
        return self.last_scores

    # -- schedule -----------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            self.every_n_steps is None
            and self.every_n_epochs
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        ):
            self.evaluate(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.evaluate(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            if self._last_step != trainer.global_step:  # once per optimizer step
                self._last_step = trainer.global_step
                self.evaluate(trainer)
