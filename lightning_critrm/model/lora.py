"""LoRA adapters on the backbone, through ``peft`` (an optional extra: ``pip install
'lightning_critrm[lora]'``).

Adapters are injected into the backbone in place (no wrapper model), so parameter names keep the
layout of a Hugging Face model and the ``score`` head stays outside them, trained in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from lightning_critrm.errors import MissingExtraError

MISSING_PEFT = "LoRA needs peft, an optional extra: pip install 'lightning_critrm[lora]'"


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the backbone: its own weights stay frozen; adapters and the ``score`` head train.

    Args:
        r: Rank of each adapter.
        alpha: Scale numerator: updates are scaled by ``alpha / r``.
        dropout: Dropout on each adapter's input. The backbone's own dropout stays off
            (``model.disable_dropout``); this one is yours to set.
        target_modules: Names of the linear layers that get adapters (Llama-style attention by
            default; add ``gate_proj``, ``up_proj``, ``down_proj`` for the MLP).
        save_adapters_only: Checkpoints hold the adapters and the head only (the frozen weights
            are read from ``model.backbone`` again on load). Single process and DDP; sharded
            (FSDP2) checkpoints always hold every shard.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    save_adapters_only: bool = True


def add_lora(backbone: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject adapters into ``backbone`` in place and freeze everything else in it."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as err:
        raise MissingExtraError(MISSING_PEFT) from err
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    backbone = inject_adapter_in_model(config, backbone)
    for name, param in backbone.named_parameters():
        param.requires_grad = "lora_" in name
    return backbone


def is_adapter_or_head(name: str) -> bool:
    """Whether a reward model parameter is trained under LoRA (the ``score`` head included)."""
    return "lora_" in name or name == "score.weight" or name.endswith(".score.weight")


def merge_lora(backbone: nn.Module) -> nn.Module:
    """Fold every adapter into the layer it adapts and put the plain layer back, in place: the
    backbone then has the parameter names and shapes of the pretrained model."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError as err:
        raise MissingExtraError(MISSING_PEFT) from err
    adapted = [(name, module) for name,
               module in backbone.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, module in adapted:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        setattr(parent, child, module.get_base_layer())
    return backbone
