"""Score a reward model on RewardBench while it trains (and on ``test``).

Each evaluation formats every row exactly like training (the data module's
:class:`~lightning_critrm.data.completion_encoder.CompletionEncoder`: same formatter, critiques from
the same critic, template and cache), scores chosen and rejected in fp32 through the strategy's
model (so sharded parameters are gathered), in length-sorted batches, and counts every row exactly
once across ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, TypeVar, Union

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_critrm.critique import CriticConfig, CritiqueSummary
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.errors import InputError
from lightning_critrm.evaluation.benchmark import Benchmark
from lightning_critrm.evaluation.judgebench_eval import JudgeBenchEval
from lightning_critrm.evaluation.ppe_eval import PPECorrectnessEval, PPEHumanEval
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
    "judgebench": JudgeBenchEval, "rmb": RMBEval, "ppe_human": PPEHumanEval,
    "ppe_correctness": PPECorrectnessEval,
}  # fmt: skip
# The names again, as the type jsonargparse turns into choices (a test holds the two equal).
BenchmarkName = Literal["rewardbench", "rewardbench2", "rmbench", "judgebench", "rmb", "ppe_human",
                        "ppe_correctness"]


def evaluation_for(benchmark: str, source: Optional[str], *args) -> Benchmark:
    """The evaluation of ``benchmark`` (a name in :data:`BENCHMARKS`), on its hub set unless
    ``source`` says otherwise."""
    if benchmark not in BENCHMARKS:
        raise InputError(f"benchmark {benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[benchmark](source, *args)


T = TypeVar("T")


def per_benchmark(value: Union[None, T, dict[str, T]], names: list[str], option: str) -> list[Optional[T]]:
    """``value`` for each benchmark in ``names``: a mapping gives each its own (absent: None), a
    single value is for a single benchmark."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise InputError(f"{option}: {unknown} are not among the benchmarks {names}")
        return [value.get(name) for name in names]
    if value is not None and len(names) > 1:
        raise InputError(f"{option}: give one per benchmark, e.g. {{{names[0]}: ...}}, when there are "
                         f"several ({', '.join(names)})")
    return [value] * len(names)


class RewardBenchCallback(Callback):
    def __init__(
        self,
        source: Union[None, str, dict[str, str]] = None,
        subsets: Union[None, list[str], dict[str, list[str]]] = None,
        every_n_epochs: int = 1,
        every_n_steps: Optional[int] = None,
        batch_size: int = 16,
        sort_by_length: bool = True,
        critic: Optional[CriticConfig] = None,
        max_rows: Optional[int] = None,
        num_text_examples: int = 3,
        require_cached: Optional[bool] = None,
        benchmark: Union[BenchmarkName, list[BenchmarkName]] = "rewardbench",
    ):
        """A benchmark's scores, logged as ``<benchmark>/*``: RewardBench accuracy by subset,
        section and overall; RewardBench 2 (best-of-4, the Ties metric); RM-Bench (hard, normal,
        easy and per-domain accuracy); JudgeBench (accuracy per category and overall); RMB
        (pairwise and best-of-N accuracy per scenario and section, and overall). Several
        benchmarks are scored one after the other at each evaluation.

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
                or file of it. ``ppe_human``: ``lmarena-ai/PPE-Human-Preference-V1`` (split
                ``test``) or files in its layout. ``ppe_correctness``: ``lmarena-ai`` (its five
                ``PPE-<set>-Best-of-K`` hub sets), one such set, or a folder of folders named like
                them. Default: the benchmark's hub set.
            subsets: Only these subsets (RM-Bench: domains, e.g. ``safety-refuse``; JudgeBench:
                categories, e.g. ``math``; RMB: scenarios, e.g. ``BoN_set/Harmlessness/S1``; PPE:
                languages, e.g. ``English``, or sets, e.g. ``math``; default: all in ``source``).
                Missing subsets are
                reported, and what they belong to marked partial.
            every_n_epochs: Evaluate at the end of every n-th training epoch (0: never).
            every_n_steps: Evaluate every n optimizer steps instead.
            batch_size: Sequences per forward pass.
            sort_by_length: Batch sequences of similar length together (much less padding).
            critic: Critic for the evaluation critiques when training read critiques from data
                columns. With ``critiques: generate`` the training critic is used; with
                ``critiques: none`` no critiques are written.
            max_rows: Score a sample of N rows, each subset in proportion to its size (the same
                rows every time), so the scores keep the benchmark's weighting; a full pass costs a
                critique and a forward pass per completion.
            num_text_examples: Rows shown in TensorBoard as text: prompt, completion, critique, reward.
            require_cached: Fail at the first evaluation if a critique is missing from the cache
                instead of generating it (default: the critic's ``cache.require_cached``). The
                ``critique`` subcommand fills the cache for every configured RewardBenchCallback.
            benchmark: ``rewardbench``, ``rewardbench2``, ``rmbench``, ``judgebench``, ``rmb``,
                ``ppe_human`` or ``ppe_correctness``, or a list of them; then ``source`` and
                ``subsets`` are mappings by benchmark (e.g. ``source: {rmb: RMB_dataset}``; a
                benchmark not in them reads its hub set).
        """
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.require_cached = require_cached
        names = benchmark if isinstance(benchmark, list) else [benchmark]
        if not names or len(set(names)) != len(names):
            raise InputError(f"benchmark: {names}: give each benchmark once")
        # What to score and how: held once, by the evaluations the subcommand runs too.
        self.evals = [
            evaluation_for(name, own_source, own_subsets, max_rows, critic, batch_size, sort_by_length,
                           num_text_examples)
            for name, own_source, own_subsets in zip(names, per_benchmark(source, names, "source"),
                                                     per_benchmark(subsets, names, "subsets"))
        ]
        self.last_scores: dict = {}  # benchmark name -> its scores at the last evaluation
        self._last_step: Optional[int] = None  # the step evaluated last, so each step counts once

    @property
    def eval(self) -> Benchmark:
        """The evaluation, when the callback scores one benchmark."""
        if len(self.evals) != 1:
            raise AttributeError(f"this callback scores {len(self.evals)} benchmarks: see `evals`")
        return self.evals[0]

    @property
    def critic(self) -> Optional[CriticConfig]:
        return self.evals[0].critic

    def fill_critiques(
        self, encoder: CompletionEncoder, require_cached: Optional[bool] = False
    ) -> list[tuple[str, CritiqueSummary]]:
        """Generate every missing critique this callback needs (what the ``critique`` subcommand
        runs, so a later ``fit`` with ``require_cached`` finds them): ``(benchmark and source,
        summary)`` for each benchmark; none when critiques are off."""
        summaries = [(f"{e.name} {e.source}", e.fill_critiques(encoder, require_cached=require_cached))
                     for e in self.evals]
        return [(what, summary) for what, summary in summaries if summary is not None]

    def prepare(self, trainer: L.Trainer) -> None:
        """Rows, critiques (rank 0 generates missing ones while the others wait) and token ids."""
        if all(e.rows is not None for e in self.evals):
            return
        encoder = completion_encoder(trainer)
        if trainer.is_global_zero:
            for evaluation in self.evals:
                evaluation.prepare(encoder, generate=True, require_cached=self.require_cached)
        trainer.strategy.barrier("rewardbench_critiques")
        if not trainer.is_global_zero:
            for evaluation in self.evals:
                evaluation.prepare(encoder, generate=False)

    def evaluate(self, trainer: L.Trainer) -> Optional[dict]:
        """Score every row of each benchmark once across ranks; rank 0 reports and returns the
        scores by benchmark name (others None)."""
        self.prepare(trainer)
        # Every rank asks: Trainer.log_dir broadcasts from rank 0, a collective.
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        for evaluation in self.evals:
            with trainer.precision_plugin.val_step_context():  # the precision validation runs in
                local = score_batches(
                    trainer.strategy.model,  # the wrapped model: DDP/FSDP/FSDP2 gather parameters inside
                    evaluation.batches(),
                    trainer.strategy.root_device,
                    progress=trainer.is_global_zero and trainer.progress_bar_callback is not None,
                    desc=evaluation.name,
                )
            rewards = gather_rewards(local)
            if trainer.is_global_zero:
                rows = evaluation.row_rewards(rewards)
                self.last_scores[evaluation.name] = evaluation.scores(rows)
                evaluation.report(trainer.loggers, log_dir, self.last_scores[evaluation.name], rows,
                                  at=(trainer.current_epoch, trainer.global_step))
        return self.last_scores if trainer.is_global_zero else None

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
