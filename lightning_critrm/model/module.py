"""Training a :class:`RewardModel`: the pairwise loss, metrics, optimizer and schedule around it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Literal, Optional

import lightning as L
import torch
import torch.distributed as dist
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric

from lightning_critrm.backbones import empty_backbone, load_backbone
from lightning_critrm.errors import InputError, NonFiniteError
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.lora import LoraSettings, add_lora, is_adapter_or_head
from lightning_critrm.model.losses import critique_lm_loss, joint_loss, pairwise_loss
from lightning_critrm.model.pooling import Pooling
from lightning_critrm.model.reward_model import RewardModel
from lightning_critrm.model.schedules import WarmupCosineLR
from lightning_critrm.model.sharding import (
    consolidated_state_dict,
    fully_shard_reward_model,
    layer_classes,
    load_full_state_dict_from_rank0,
)

log = logging.getLogger(__name__)

# Called as optimizer(params, lr) and lr_scheduler(optimizer, total_steps): the CLI configures the
# remaining arguments, the model supplies these.
OptimizerFactory = Callable[[Iterable, float], Optimizer]
SchedulerFactory = Callable[[Optimizer, int], LRScheduler]


class _StageMetrics(nn.Module):
    """Per-stage running means (torchmetrics syncs them across ranks)."""

    def __init__(self):
        super().__init__()
        self.loss = MeanMetric()
        self.acc = MeanMetric()
        self.reward_mean = MeanMetric()
        self.reward_sq = MeanMetric()
        self.margin = MeanMetric()
        self.critique_lm_loss = MeanMetric()


class CritiqueRewardModel(L.LightningModule):
    def __init__(
        self,
        backbone: str = "smollm2-135m-instruct",
        pooling: Pooling = "last",
        lr: float = 1e-5,
        optimizer: OptimizerFactory = torch.optim.AdamW,
        lr_scheduler: Optional[SchedulerFactory] = WarmupCosineLR,
        center_rewards_coef: float = 0.0,
        gradient_checkpointing: bool = False,
        disable_dropout: bool = True,
        backbone_dtype: Literal["float32", "bfloat16"] = "float32",
        fsdp_layer_classes: Optional[list[str]] = None,
        lora: Optional[LoraSettings] = None,
        max_nonfinite_batches: int = 0,
        critique_lm_coef: float = 0.0,
        pairwise_coef: float = 1.0,
    ):
        """A scalar reward model over a pretrained backbone, trained with the pairwise loss.

        Args:
            backbone: Built-in alias (``smollm2-135m-instruct``, ``all-minilm-l6-v2``), local
                folder, or Hugging Face hub name. Weights load in ``configure_model``.
            pooling: Hidden state read for the reward: ``last`` real token (decoders: the last
                token the chat template writes, as every reward-model reader takes it) or
                ``first`` token (the [CLS] of encoders).
            lr: Peak learning rate.
            optimizer: Optimizer class or callable, called as ``optimizer(params, lr)``.
            lr_scheduler: Schedule class or callable, called as ``lr_scheduler(optimizer,
                total_steps)`` and stepped every optimizer step; ``null`` keeps ``lr`` constant.
            center_rewards_coef: Weight of the reward-centering term ``mean((r_c + r_r)^2)``.
            gradient_checkpointing: Recompute backbone activations in backward to save memory.
            disable_dropout: Set every dropout in the backbone to 0, so the chosen and rejected
                sequences of a pair are scored by the same function (as TRL and OpenRLHF do).
            backbone_dtype: Dtype the backbone weights are stored in. The head and loss are fp32.
            fsdp_layer_classes: Under FSDP2 (``ModelParallelStrategy``), the module classes that
                each become one shard unit (default: the backbone's ``_no_split_modules``, its
                decoder layer). Parameters are built on the meta device and each rank loads only
                its shard; with ``precision: bf16-mixed`` they compute in bf16 and reduce in fp32.
            lora: Train LoRA adapters (``peft``) and the head instead of the whole backbone.
            max_nonfinite_batches: A training batch whose loss or a reward is NaN or infinite is
                skipped (no update, though the step counts; a warning names the step and the pairs;
                TensorBoard ``train/nonfinite_batches_skipped``) up to this many times in a run; the next one
                stops the run with an error naming them. 0: stop at the first.
            critique_lm_coef: Above 0, the model also learns to write the critiques it reads (the
                critique-out-loud recipe): the backbone keeps its language-model head, and the
                loss adds this weight times the next-token cross-entropy of the critique tokens
                (TensorBoard ``<stage>/critique_lm_loss``; ``<stage>/loss`` stays the pairwise
                loss, comparable across models). Decoder backbones; the data then carries each
                critique's token positions (the CLI sets ``data.critique_targets``).
            pairwise_coef: Weight of the pairwise loss; 0 trains the critique writer alone (the
                recipe's first stage, on teacher critiques), the reward head frozen.
        """
        super().__init__()
        if critique_lm_coef < 0 or pairwise_coef < 0 or critique_lm_coef == pairwise_coef == 0:
            raise InputError(
                f"model.critique_lm_coef={critique_lm_coef} and model.pairwise_coef={pairwise_coef}: "
                "both must be >= 0 and one of them > 0")
        # Checkpoints hold plain values only, so they load with torch.load(weights_only=True); the
        # callables are recorded by the CLI's config.yaml.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "lora"])
        self.lora = lora
        self.hparams["lora"] = asdict(lora) if lora is not None else None  # plain values: weights_only loads
        # Adapter-only checkpoints leave the frozen weights out: they come from the backbone again.
        self.strict_loading = not (lora is not None and lora.save_adapters_only)  # reset for FSDP2 below
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.reward_model: Optional[RewardModel] = None
        self.train_metrics = _StageMetrics()
        self.val_metrics = _StageMetrics()
        self.test_metrics = _StageMetrics()
        self._nonfinite_skipped = 0  # training batches skipped so far (kept in checkpoints)
        # The random state the model is built from (head, adapters), taken here, right after the
        # CLI's seed_everything: whatever runs before configure_model (a vLLM critic in
        # prepare_data reseeds the process) must not change the model a seed gives.
        self._init_rng_state = torch.get_rng_state()

    # -- building -----------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.reward_model is not None:  # called again for each trainer entry point
            return
        dtype = getattr(torch, self.hparams.backbone_dtype)
        name, lm_head = self.hparams.backbone, self.writes_critiques
        if self.device_mesh is None:
            torch.set_rng_state(self._init_rng_state)
            self.reward_model = self._reward_model(load_backbone(name, dtype, lm_head))
            return
        # FSDP2 (ModelParallelStrategy): build on the meta device, shard, then load each shard.
        rng = self._init_rng_state
        model = self._reward_model(empty_backbone(name, dtype, lm_head))
        mesh = self.device_mesh["data_parallel"]
        self.strict_loading = True  # sharded checkpoints hold every parameter
        mixed = self.trainer is not None and str(self.trainer.precision) == "bf16-mixed"
        classes = layer_classes(model.backbone, self.hparams.fsdp_layer_classes)
        fully_shard_reward_model(model, mesh, classes, param_dtype=torch.bfloat16 if mixed else None)
        full = None
        if dist.get_rank() == 0:
            # Built exactly as one process builds it (same random state for the head and any
            # adapters), so a sharded run starts from the same model.
            torch.set_rng_state(rng)
            full = self._reward_model(load_backbone(name, dtype, lm_head)).state_dict()
        load_full_state_dict_from_rank0(model, full)
        self.reward_model = model

    def _reward_model(self, backbone: nn.Module) -> RewardModel:
        # from_pretrained returns eval mode and Lightning keeps submodule modes as it finds them.
        backbone.train()
        if self.hparams.disable_dropout:
            for module in backbone.modules():
                if isinstance(module, nn.Dropout):
                    module.p = 0.0
        if getattr(backbone.config, "use_cache", None):
            backbone.config.use_cache = False  # no generation here; the KV cache only costs memory
        model = RewardModel(backbone, self.hparams.pooling)
        if self.lora is not None:  # after the dropout rule: LoRA's own dropout is the user's
            add_lora(model.backbone, self.lora)
            if model.lm_head is not None:  # frozen like the weights it may be tied to
                model.lm_head.requires_grad_(False)
        if self.hparams.pairwise_coef == 0:  # the critique writer alone: the head has nothing to learn
            model.score.requires_grad_(False)
        if self.hparams.gradient_checkpointing:
            model.backbone.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        return model

    @property
    def writes_critiques(self) -> bool:
        """Whether the model learns to write critiques (keeps its language-model head)."""
        return self.hparams.critique_lm_coef > 0

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The reward model's whole state dict with Hugging Face names (``model.*``, ``score.weight``),
        on CPU: consolidated from the shards under FSDP2 (a collective: every rank calls it; rank 0
        gets the tensors, the others an empty dict)."""
        if self.device_mesh is not None:
            return consolidated_state_dict(self.reward_model)
        return {k: v.detach().cpu() for k, v in self.reward_model.state_dict().items()}

    @property
    def backbone(self) -> Optional[nn.Module]:
        return None if self.reward_model is None else self.reward_model.backbone

    @property
    def score(self) -> Optional[nn.Linear]:
        return None if self.reward_model is None else self.reward_model.score

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["nonfinite_batches_skipped"] = self._nonfinite_skipped
        # (A sharded checkpoint keeps every shard: the distributed loader expects them all.)
        adapters_only = self.lora is not None and self.lora.save_adapters_only and self.device_mesh is None
        if adapters_only and "state_dict" in checkpoint:
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items()
                if not k.startswith("reward_model.") or is_adapter_or_head(k[len("reward_model."):])
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._nonfinite_skipped = int(checkpoint.get("nonfinite_batches_skipped", 0))
        if (trained := checkpoint.get("hyper_parameters")) is not None:
            refuse_other_weights(trained, self.hparams)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, batch: RewardBatch) -> torch.Tensor:
        """Rewards [N] (fp32) of the sequences of ``batch``."""
        return self.reward_model(batch)

    def _pair_step(self, batch: RewardBatch, metrics: _StageMetrics, stage: str) -> Optional[torch.Tensor]:
        hp = self.hparams
        if self.writes_critiques:
            if batch.critique_index is None:
                raise InputError("model.critique_lm_coef > 0 needs batches with critique targets: set "
                                 "data.critique_targets: true (the CLI links it)")
            rewards, logits = self.reward_model(batch, critique_logits=True)
            lm_loss = critique_lm_loss(logits, batch.critique_labels)
        else:
            rewards, lm_loss = self(batch), None
        r_c, r_r = batch.split_pairs(rewards)
        loss = pairwise_loss(r_c, r_r, batch.margin, hp.center_rewards_coef)
        objective = (loss if lm_loss is None
                     else joint_loss(loss, lm_loss, hp.critique_lm_coef, hp.pairwise_coef))
        if stage == "train" and not self._finite_or_skip(objective, rewards, batch):
            return None  # Lightning skips backward and the optimizer step
        rewards, gap = rewards.detach(), (r_c - r_r).detach()
        # Calling a metric (forward) accumulates it for the epoch and returns this batch's value,
        # so the same objects serve per-step (train) and per-epoch (val) logging.
        metrics.loss(loss.detach(), weight=r_c.numel())
        metrics.acc((gap > 0).float())  # ties count as wrong
        metrics.reward_mean(rewards)
        metrics.margin(gap)
        train = stage == "train"
        if not train:
            metrics.reward_sq.update(rewards**2)  # for the epoch's std; not logged itself
        opts = {"on_step": train, "on_epoch": True, "batch_size": r_c.numel()}
        self.log(f"{stage}/loss", metrics.loss, prog_bar=True, **opts)
        self.log(f"{stage}/acc", metrics.acc, prog_bar=True, **opts)
        self.log(f"{stage}/reward_mean", metrics.reward_mean, **opts)
        self.log(f"{stage}/margin_mean", metrics.margin, **opts)
        if train:
            self.log("train/reward_std", rewards.std(), on_step=True, on_epoch=False)
        if lm_loss is not None and batch.critique_labels.numel():
            metrics.critique_lm_loss(lm_loss.detach(), weight=batch.critique_labels.numel())
            self.log(f"{stage}/critique_lm_loss", metrics.critique_lm_loss, prog_bar=True,
                     **{**opts, "batch_size": batch.critique_labels.numel()})
        return objective

    def training_step(self, batch: RewardBatch, batch_idx: int) -> Optional[torch.Tensor]:
        return self._pair_step(batch, self.train_metrics, "train")

    def _finite_or_skip(self, loss: torch.Tensor, rewards: torch.Tensor, batch: RewardBatch) -> bool:
        """True for a finite batch. Otherwise skip it (False) within ``max_nonfinite_batches`` or
        stop, naming the step and the pairs. Every rank decides alike: a batch skipped on one rank
        and trained on another would hang the gradient all-reduce."""
        bad = ~torch.isfinite(rewards.detach())
        flag = (bad.any() | ~torch.isfinite(loss.detach())).float().reshape(1)
        if dist.is_available() and dist.is_initialized() and self.trainer.world_size > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not flag.item():
            return True
        n = batch.num_pairs
        pair_ids = batch.ids.tolist()
        named = sorted({pair_ids[k % n] for k in bad.nonzero().flatten().tolist()}) or pair_ids
        where = (
            f"non-finite loss or reward at step {self.global_step} (epoch {self.current_epoch}); training "
            f"pairs {named} of data.source (rank {self.global_rank}; indices of the training set)"
        )
        limit = self.hparams.max_nonfinite_batches
        if self._nonfinite_skipped >= limit:
            raise NonFiniteError(
                f"{where}. Stopped rather than train on it ({self._nonfinite_skipped} such batches skipped, "
                f"model.max_nonfinite_batches={limit}). Lower model.lr, train in fp32, or allow skipping "
                "with model.max_nonfinite_batches"
            )
        self._nonfinite_skipped += 1
        log.warning(f"{where}: batch skipped ({self._nonfinite_skipped} of at most {limit})")
        self.log("train/nonfinite_batches_skipped", float(self._nonfinite_skipped), on_step=True,
                 on_epoch=False)
        return False

    def attends_per_sequence(self) -> Optional[bool]:
        """Whether packed rows cost only their sequences' attention here (None before the model
        is built); the data module sizes packed rows by it."""
        return None if self.reward_model is None else self.reward_model.attends_per_sequence(self.device)

    def validation_step(self, batch: RewardBatch, batch_idx: int) -> None:
        self._pair_step(batch, self.val_metrics, "val")

    def test_step(self, batch: RewardBatch, batch_idx: int) -> None:
        self._pair_step(batch, self.test_metrics, "test")

    def predict_step(self, batch: RewardBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Rewards of the sequences of ``batch`` with their ``ids`` (how ``rewardbench`` scores)."""
        return {"ids": batch.ids, "rewards": self(batch)}

    def on_validation_epoch_end(self) -> None:
        self._log_reward_std("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_reward_std("test", self.test_metrics)

    def _log_reward_std(self, stage: str, m: _StageMetrics) -> None:
        std = (m.reward_sq.compute() - m.reward_mean.compute() ** 2).clamp(min=0).sqrt()
        self.log(f"{stage}/reward_std", std, sync_dist=True)  # already global: every rank holds the same
        m.reward_sq.reset()  # Lightning resets only logged metrics

    # -- optimization -------------------------------------------------------------------------
    def configure_optimizers(self):
        # trainer.model, not self: after FSDP wraps the model the parameters to optimize are the
        # sharded ones.
        params = [p for p in self.trainer.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params, self.hparams.lr)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _weight_settings(hparams) -> dict:
    """option -> (what of it decides which weights a checkpoint holds, its value): a language-model
    head or none; adapters of a rank and scale on which layers, or none."""
    coef, lora = hparams.get("critique_lm_coef", 0.0), hparams.get("lora")
    adapters = None if lora is None else {k: lora.get(k) for k in ("r", "alpha", "target_modules")}
    return {"model.critique_lm_coef": (coef > 0, coef), "model.lora": (adapters, adapters)}


def refuse_other_weights(trained, here) -> None:
    """Stop, naming the option, where a checkpoint was trained with other weight settings than the
    model it is loaded into: otherwise a writer's checkpoint fails on an "unexpected key
    lm_head.weight", and adapters of another scale would load and score wrong."""
    ours = _weight_settings(here)
    for option, (kind, value) in _weight_settings(trained).items():
        if kind != ours[option][0]:
            raise InputError(
                f"this checkpoint was trained with {option}={value}, this model has {ours[option][1]}: "
                f"load it with the settings it was trained with (its run's config.yaml, or --{option})")
