"""The Trainer of the command line: Lightning's, plus the subcommands that are not training loops
(``critique``, ``evaluate`` and its older name ``rewardbench``, ``export``), and the helpers they
share with ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.backbones import resolve_backbone
from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.errors import InputError
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.evaluation.rewardbench_callback import BenchmarkName, evaluation_for
from lightning_critrm.layout.sequences import collect
from lightning_critrm.model.checkpoint_paths import checkpoint_metadata, resolve_checkpoint
from lightning_critrm.model.export import export_reward_model, recipe_of
from lightning_critrm.model.lora import merge_lora
from lightning_critrm.model.reward_pass import gather_rewards


def fill_all_critiques(
    datamodule: PreferenceDataModule, callbacks: list, require_cached: Optional[bool]
) -> list[tuple[str, object]]:
    """Generate the missing critiques of the training data and of every RewardBenchCallback;
    returns (what, summary) per set. ``require_cached``: True raises if any is missing, False
    always generates, None follows each one's own setting."""
    summaries = []
    if datamodule.hparams.critiques == "generate":
        summaries.append(("data", datamodule.generate_critiques(require_cached=require_cached)))
    for callback in callbacks:
        if isinstance(callback, RewardBenchCallback):
            own = callback.require_cached if require_cached is None else require_cached
            summaries += callback.fill_critiques(datamodule.completion_encoder, require_cached=own)
    return summaries


class CritiqueRMTrainer(L.Trainer):
    """Lightning's Trainer plus the ``critique`` subcommand."""

    def critique(self, model: L.LightningModule, datamodule: PreferenceDataModule) -> None:
        """Generate and cache one critique per completion for the training data, every
        evaluation set and every configured RewardBenchCallback, reading the same config as
        ``fit`` so the cache keys match (``critic.cache.require_cached`` is for ``fit``; this command
        is what fills the cache). Prints how many were generated, already cached and failed,
        with the critic's tokens/s."""
        summaries = fill_all_critiques(datamodule, self.callbacks, require_cached=False)
        if not summaries:
            raise InputError(
                "nothing to critique: data.critiques is not 'generate' and no RewardBenchCallback "
                "needs critiques")
        if self.is_global_zero:
            for what, summary in summaries:
                print(f"{what}: {summary}")

    def evaluate(
        self,
        model: L.LightningModule,
        datamodule: PreferenceDataModule,
        ckpt_path: Optional[str] = None,
        source: Optional[str] = None,
        subsets: Optional[list[str]] = None,
        batch_size: int = 16,
        max_rows: Optional[int] = None,
        benchmark: BenchmarkName = "rewardbench",
    ) -> None:
        """Score a checkpoint on a benchmark (RewardBench by default) and print its table, partial
        parts marked; the per-row rewards go to a JSON file in the run folder. (An exported model:
        ``evaluate --model DIR``, see ``evaluate --model DIR --help``.) Reads
        the checkpoint, its config and the benchmark rows only: never the training data.
        Missing critiques of its completions are generated first, before any worker
        process starts (whatever ``critic.cache.require_cached`` says: no training waits on them).
        A RewardBenchCallback in the config is replaced by this evaluation, which keeps its ``critic``.

        Args:
            ckpt_path: Checkpoint to score (``last``, ``best`` or a path).
            source: The benchmark's rows, in its layout: by default those of a configured
                RewardBenchCallback of the same benchmark, else its hub set (``allenai/reward-bench``,
                ``allenai/reward-bench-2``, ``THU-KEG/RM-Bench``, ``ScalerLab/JudgeBench``; RMB:
                the ``RMB_dataset`` folder of its GitHub repository).
            subsets: Only these subsets.
            batch_size: Sequences per forward pass.
            max_rows: Score a sample of N rows, each subset in proportion to its size (the same
                rows every time), so the scores keep the benchmark's weighting; a full pass costs a
                critique and a forward pass per completion.
            benchmark: ``rewardbench``, ``rewardbench2`` (best-of-4 and the Ties metric),
                ``rmbench`` (3 x 3 styles: hard, normal, easy), ``judgebench`` (correctness pairs),
                ``rmb`` (pairwise and best-of-N, helpfulness and harmlessness), ``ppe_human``
                (Chatbot Arena votes) or ``ppe_correctness`` (best-of-K on verified answers).
        """
        configured = [c for c in self.callbacks if isinstance(c, RewardBenchCallback)]
        critic = next((c.critic for c in configured if c.critic is not None), None)
        if source is None:  # the rows a configured callback of this benchmark reads
            source = next((e.source for c in configured for e in c.evals if e.name == benchmark), None)
        self.callbacks = [c for c in self.callbacks if not isinstance(c, RewardBenchCallback)]
        evaluation = evaluation_for(benchmark, source, subsets, max_rows, critic, batch_size)
        # Worker processes of a multi-device run start inside predict() and find the critiques cached.
        encoder = datamodule.completion_encoder
        evaluation.prepare(encoder, generate=rank_zero_only.rank == 0, require_cached=False)
        at = (self.current_epoch, self.global_step)
        if ckpt_path is not None:
            ckpt_path = str(self._checkpoint(ckpt_path))
            # predict() restores weights, not the step: the scores are logged at the checkpoint's.
            meta = checkpoint_metadata(Path(ckpt_path))
            at = (int(meta.get("epoch", 0)), int(meta.get("global_step", 0)))
        predictions = self.predict(model, dataloaders=evaluation.batches(), ckpt_path=ckpt_path)
        local: dict[int, float] = {}
        for out in predictions or []:
            local.update(collect(out["ids"], out["rewards"]))
        rewards = gather_rewards(local)
        log_dir = Path(self.log_dir or self.default_root_dir)  # a collective: every rank asks
        if self.is_global_zero:
            rows = evaluation.row_rewards(rewards)
            scores = evaluation.scores(rows)
            evaluation.report(self.loggers, log_dir, scores, rows, at=at)
            print(evaluation.table(scores))

    rewardbench = evaluate  # the subcommand's name before there were other benchmarks


    def export(
        self, model: L.LightningModule, datamodule: PreferenceDataModule, ckpt_path: str, out: str,
        reward_stats: bool = True,
    ) -> None:
        """Write a checkpoint as a Hugging Face folder that loads with
        ``transformers.AutoModelForSequenceClassification`` (4.4x and 5.x) and in vLLM's pooling
        runner, and gives the trainer's rewards for ``tokenizer.apply_chat_template(messages)``:
        safetensors weights (LoRA adapters merged), config, the tokenizer with the training chat
        template (a critique is a message of role ``critique`` after the assistant turn), and a
        model card; ``config.json`` records how inputs are formatted and critiqued. A model that
        writes its critiques is written as its causal LM (vLLM and transformers generate from it)
        with the reward head beside it. Written atomically: the folder appears whole or not at all.

        Args:
            ckpt_path: Checkpoint to export: ``last``, ``best``, a ``.ckpt`` file, or the folder of
                a sharded (FSDP2) checkpoint.
            out: The folder to write (must not exist).
            reward_stats: Score the validation set and store the mean and standard deviation of
                its rewards, for ``score --normalize`` (reads the validation data and its critiques).
        """
        path = self._checkpoint(ckpt_path)
        if Path(out).exists():
            raise InputError(f"--out {out}: already exists; give a new folder")
        checkpoint = load_checkpoint_state(path)
        model.configure_model()  # the pretrained backbone (LoRA: its frozen weights), then the checkpoint
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=model.strict_loading)
        if model.lora is not None:
            merge_lora(model.reward_model.backbone)
        stats = validation_reward_stats(model, datamodule) if reward_stats else None
        export_reward_model(model.reward_model, resolve_backbone(model.hparams.backbone),
                            datamodule.tokenizer,
                            datamodule.formatter.chat_template, Path(out),
                            recipe_of(model, datamodule, stats))
        if self.is_global_zero:
            use = (f"its own critic, a causal LM with its reward head: python -m lightning_critrm score "
                   f"--model {out}" if model.reward_model.writes_critiques
                   else f"AutoModelForSequenceClassification.from_pretrained({str(out)!r})")
            print(f"exported {path} to {out}: {use}")

    def _checkpoint(self, ckpt_path: str) -> Path:
        """``ckpt_path`` (``last``, ``best`` or a path) as a checkpoint in this run's folder."""
        folder = self.checkpoint_callback.dirpath if self.checkpoint_callback is not None else None
        return resolve_checkpoint(ckpt_path, folder)


def validation_reward_stats(model: L.LightningModule, datamodule: PreferenceDataModule) -> dict:
    """Mean and standard deviation of the model's rewards over every completion of the validation
    set (OpenRLHF's reward normalisation), on a GPU where there is one."""
    try:
        datamodule.setup("validate")
    except InputError as err:
        raise InputError(f"{err}\n(or export without reward statistics: --reward_stats false)") from err
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = model.to(device).eval()
    rewards = []
    with torch.no_grad():
        for batch in tqdm(datamodule.val_dataloader(), desc="reward statistics", unit="batch",
                          file=console.progress_stream()):
            rewards.append(net(batch.to(device)).float().cpu())
    model.to("cpu")
    values = torch.cat(rewards)
    if values.numel() < 2:
        raise InputError(
            "reward statistics need at least 2 validation completions; or pass --reward_stats false")
    return {"mean": values.mean().item(), "std": values.std().item(), "sequences": values.numel(),
            "data": "validation set"}


def load_checkpoint_state(path: Path) -> dict:
    """A checkpoint as one dict on CPU: a file, or the folder of a sharded (FSDP2, torch
    distributed checkpoint) save, consolidated without a process group."""
    if path.is_dir():
        import tempfile

        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        with tempfile.TemporaryDirectory() as tmp:
            dcp_to_torch_save(path, Path(tmp) / "full.pt")
            return torch.load(Path(tmp) / "full.pt", map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)
