"""Score a reward model on RewardBench while it trains (and for the ``rewardbench`` subcommand).

Each evaluation formats every row exactly like training (same formatter; critiques from the same
critic, template and cache), scores chosen and rejected in fp32, in length-sorted batches, and
counts every row exactly once across ranks: rows are dealt out ``rank::world_size`` (no
DistributedSampler padding duplicates) and gathered to rank 0. Under a sharded strategy every
rank runs the same number of forward passes (short shards add dummy batches), so collectives
never wait on a rank that has finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from tqdm.auto import tqdm

from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.critique.generate import requests_for_completions
from lightning_critrm.evaluation.rewardbench_data import HUB_NAME, RewardBenchRow, load_rewardbench
from lightning_critrm.evaluation.rewardbench_scoring import RewardBenchScores, score

log = logging.getLogger(__name__)


def reward_sequences(
    module: L.LightningModule,
    sequences: Sequence[Sequence[int]],
    batch_size: int,
    pad_token_id: int,
    sort_by_length: bool = True,
    min_batches: int = 0,
    progress: bool = False,
) -> list[float]:
    """Rewards (fp32) of token sequences, in input order. Runs at least ``min_batches`` forward
    passes (extra ones on a one-token dummy) so sharded ranks stay in step. ``progress`` shows a
    bar counting sequences, with ETA (a full RewardBench pass takes minutes even on a GPU)."""
    device = module.device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i])) if sort_by_length else list(range(len(sequences)))
    rewards = [0.0] * len(sequences)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches += [[]] * max(0, min_batches - len(batches))
    was_training = module.training
    module.eval()
    bar = tqdm(total=len(sequences), desc="rewardbench", unit="seq", disable=not progress)
    with torch.no_grad():
        for batch in batches:
            seqs = [sequences[i] for i in batch] or [[pad_token_id]]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            out = module(ids.to(device), mask.to(device)).float().cpu().tolist()
            for i, value in zip(batch, out):
                rewards[i] = value
            bar.update(len(batch))
    bar.close()
    module.train(was_training)
    return rewards


def _world(trainer: Optional[L.Trainer]) -> tuple[int, int]:
    if trainer is not None:
        return trainer.global_rank, trainer.world_size
    return 0, 1


def _gather(objects: list, trainer: Optional[L.Trainer]) -> list:
    if trainer is None or trainer.world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return objects
    parts: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(parts, objects)
    return [item for part in parts for item in part]


def _max_over_ranks(value: int, trainer: Optional[L.Trainer]) -> int:
    if trainer is None or trainer.world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return value
    return max(_gather([value], trainer))


class RewardBenchCallback(Callback):
    def __init__(
        self,
        source: str = HUB_NAME,
        subsets: Optional[list[str]] = None,
        every_n_epochs: int = 1,
        every_n_steps: Optional[int] = None,
        batch_size: int = 16,
        sort_by_length: bool = True,
        critic: Optional[CriticConfig] = None,
        max_rows: Optional[int] = None,
        num_text_examples: int = 3,
        require_cached: Optional[bool] = None,
    ):
        """RewardBench accuracy by subset, section and overall, logged as ``rewardbench/*``.

        Args:
            source: ``allenai/reward-bench`` (split ``filtered``; ``name:split`` for another) or local
                ``.jsonl``/``.json``/``.parquet`` files with ``id, prompt, chosen, rejected, subset``.
            subsets: Only these subsets (default: every subset in ``source``). Missing subsets are
                reported, and their sections marked partial.
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
                instead of generating it (default: the critic's ``require_cached``). The
                ``critique`` subcommand fills the cache for every configured RewardBenchCallback.
        """
        self.source = source
        self.subsets = subsets
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        self.critic = critic
        self.max_rows = max_rows
        self.num_text_examples = num_text_examples
        self.require_cached = require_cached
        self.rows: Optional[list[RewardBenchRow]] = None
        self.encoded: list[tuple[list[int], list[int]]] = []
        self.critiques: list[tuple[Optional[str], Optional[str]]] = []
        self.skipped_ids: list[str] = []
        self.last_scores: Optional[RewardBenchScores] = None
        self._last_step: Optional[int] = None  # the step evaluated last, so each step counts once

    # -- preparing rows -----------------------------------------------------------------------
    def _load_rows(self) -> list[RewardBenchRow]:
        rows = load_rewardbench(self.source, self.subsets)
        return rows if self.max_rows is None else rows[: self.max_rows]

    @staticmethod
    def _items(rows: Sequence[RewardBenchRow]) -> list[tuple[list, str]]:
        return [(r.prompt, text) for r in rows for text in (r.chosen, r.rejected)]

    def generate_critiques(self, datamodule):
        """Fill the critique cache for every completion this callback scores (the ``critique``
        subcommand calls it, so a later ``fit`` with ``require_cached`` finds them). Returns the
        summary, or None when critiques are off."""
        critic = datamodule.evaluation_critic(self.critic)
        if critic is None:
            return None
        requests = requests_for_completions(self._items(self._load_rows()), critic)
        return datamodule.fill_critiques(requests, critic, require_cached=False)

    def prepare(self, trainer: Optional[L.Trainer], datamodule) -> None:
        """Load rows, get their critiques (rank 0 generates missing ones) and tokenize them."""
        if self.rows is not None:
            return
        rows = self._load_rows()
        items = self._items(rows)
        rank, _ = _world(trainer)
        if rank == 0:
            critiques = datamodule.critiques_for(items, self.critic, generate=True, require_cached=self.require_cached)
        if trainer is not None and trainer.world_size > 1:
            trainer.strategy.barrier("rewardbench_critiques")
        if rank != 0:
            critiques = datamodule.critiques_for(items, self.critic, generate=False)
        with_critiques = datamodule.hparams.critiques != "none"
        formatter = datamodule.formatter
        self.rows, self.encoded, self.critiques, self.skipped_ids = [], [], [], []
        for i, row in enumerate(rows):
            c_crit, r_crit = critiques[2 * i], critiques[2 * i + 1]
            if with_critiques and (c_crit is None or r_crit is None):
                self.skipped_ids.append(row.id)  # a failed critique: reported, never scored without it
                continue
            self.rows.append(row)
            self.critiques.append((c_crit, r_crit))
            self.encoded.append(
                (formatter.encode(row.prompt, row.chosen, c_crit).input_ids,
                 formatter.encode(row.prompt, row.rejected, r_crit).input_ids)
            )
        if self.skipped_ids:
            log.warning("rewardbench: %d rows skipped, their critique failed: %s", len(self.skipped_ids), self.skipped_ids[:10])

    # -- evaluating ---------------------------------------------------------------------------
    def evaluate(self, trainer: Optional[L.Trainer], module: L.LightningModule, datamodule) -> Optional[RewardBenchScores]:
        """Score every row once across ranks; rank 0 returns the scores (others None)."""
        self.prepare(trainer, datamodule)
        rank, world = _world(trainer)
        mine = list(range(rank, len(self.rows), world))
        sequences = [seq for i in mine for seq in self.encoded[i]]
        batches = -(-len(sequences) // self.batch_size)
        rewards = reward_sequences(
            module, sequences, self.batch_size, datamodule.pad_token_id, self.sort_by_length,
            min_batches=_max_over_ranks(batches, trainer),
            progress=rank == 0 and (trainer is None or trainer.progress_bar_callback is not None),
        )
        local = [(i, rewards[2 * k], rewards[2 * k + 1]) for k, i in enumerate(mine)]
        gathered = sorted(_gather(local, trainer))
        # Every rank asks: Trainer.log_dir broadcasts from rank 0, a collective.
        log_dir = (trainer.log_dir or trainer.default_root_dir) if trainer is not None else None
        if rank != 0:
            return None
        assert len(gathered) == len(self.rows), "every row must be scored exactly once"
        scores = score((self.rows[i].subset, r_c, r_r) for i, r_c, r_r in gathered)
        self.last_scores = scores
        if trainer is not None:
            self._report(trainer, Path(log_dir), scores, gathered)
        return scores

    def _report(self, trainer: L.Trainer, log_dir: Path, scores: RewardBenchScores, gathered: list) -> None:
        step = trainer.global_step
        metrics = {f"rewardbench/{subset}": acc for subset, acc in scores.subsets.items()}
        for section in scores.sections.values():
            if section.score is not None:
                metrics[f"rewardbench/{section.name}"] = section.score
        if scores.overall is not None:
            metrics["rewardbench/overall"] = scores.overall
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text") and self.num_text_examples:
                experiment.add_text("rewardbench/examples", self._examples(gathered), step)
        out_dir = log_dir / "rewardbench"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"epoch{trainer.current_epoch}-step{step}.json"
        path.write_text(json.dumps(self._record(scores, gathered, step), indent=1))
        overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
        partial = " (partial: see the sections)" if scores.partial else ""
        rank_zero_info(f"rewardbench step {step}: overall {overall}{partial}; details in {path}")

    def _record(self, scores: RewardBenchScores, gathered: list, step: int) -> dict:
        return {
            "source": self.source,
            "step": step,
            "overall": scores.overall,
            "partial": scores.partial,
            "sections": {name: asdict(s) for name, s in scores.sections.items()},
            "subsets": scores.subsets,
            "rows_per_subset": scores.rows,
            "skipped_failed_critique": self.skipped_ids,
            "rows": [
                {"id": self.rows[i].id, "subset": self.rows[i].subset, "reward_chosen": r_c, "reward_rejected": r_r}
                for i, r_c, r_r in gathered
            ],
        }

    def _examples(self, gathered: list) -> str:
        blocks = []
        for i, r_c, r_r in gathered[: self.num_text_examples]:
            row, (c_crit, r_crit) = self.rows[i], self.critiques[i]
            blocks.append(
                f"**{row.subset} / {row.id}**\n\n*prompt:* {row.prompt[-1]['content'][:500]}\n\n"
                f"*chosen* (reward {r_c:.3f}): {row.chosen[:500]}\n\n*critique:* {(c_crit or '-')[:500]}\n\n"
                f"*rejected* (reward {r_r:.3f}): {row.rejected[:500]}\n\n*critique:* {(r_crit or '-')[:500]}"
            )
        return "\n\n---\n\n".join(blocks)

    # -- schedule -----------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_steps is None and self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.evaluate(trainer, pl_module, trainer.datamodule)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # `test` (and the rewardbench subcommand, which runs test) evaluates a checkpoint.
        self.evaluate(trainer, pl_module, trainer.datamodule)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            if self._last_step != trainer.global_step:  # once per optimizer step
                self._last_step = trainer.global_step
                self.evaluate(trainer, pl_module, trainer.datamodule)
