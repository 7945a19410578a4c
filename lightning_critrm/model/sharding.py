"""FSDP2 (``fully_shard``) for a :class:`RewardModel`, with weights loaded straight into shards.

Used by ``configure_model`` under Lightning's ``ModelParallelStrategy``, which hands the module a
device mesh. Every rank builds the model on the meta device (no memory), shards each decoder layer
and then the root, and receives only its own shard of the pretrained weights: rank 0 reads the
checkpoint and broadcasts it tensor by tensor, so the other ranks never hold the full model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from lightning_critrm.errors import InputError


def layer_classes(backbone: nn.Module, names: Optional[Sequence[str]] = None) -> tuple[type[nn.Module], ...]:
    """The classes each FSDP unit is made of: ``names`` if given, else the backbone's own
    ``_no_split_modules`` (``LlamaDecoderLayer`` for Llama-style models)."""
    wanted = set(names or getattr(backbone, "_no_split_modules", None) or ())
    if not wanted:
        raise InputError(
            f"{type(backbone).__name__} names no decoder layer class (_no_split_modules); "
            "set model.fsdp_layer_classes to the class names to shard one by one"
        )
    found = {type(m) for m in backbone.modules() if type(m).__name__ in wanted}
    if not found:
        raise InputError(f"model.fsdp_layer_classes: no module of class {sorted(wanted)} in "
                         f"{type(backbone).__name__}")
    return tuple(sorted(found, key=lambda c: c.__name__))


def fully_shard_reward_model(
    model: nn.Module,
    mesh,
    classes: tuple[type[nn.Module], ...],
    param_dtype: Optional[torch.dtype] = None,
) -> nn.Module:
    """Shard each module of ``classes``, then the root (embeddings, final norm, the ``score``
    head). ``param_dtype`` (e.g. bf16) is what forward and backward compute in; gradients are
    reduced and parameters kept in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for module in model.modules():
        if isinstance(module, classes):
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def load_full_state_dict_from_rank0(model: nn.Module, full_state: Optional[dict[str, torch.Tensor]]) -> None:
    """Give each rank its shard of ``full_state`` (on rank 0; ``None`` elsewhere). Parameters on
    the meta device are replaced by real ones, and parameters shared by several modules (a
    language-model head tied to the input embeddings) stay one parameter."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if dist.get_rank() == 0 and full_state is None:
        raise ValueError("rank 0 must pass the full state dict")
    shared = _shared_parameters(model)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=True)
    set_model_state_dict(model, full_state if dist.get_rank() == 0 else {}, options=options)
    # Loading into meta parameters assigns each name its own new parameter, which would untie
    # them; FSDP2 keeps the first name's and sets it on the other modules when it gathers.
    for first, others in shared:
        param = model.get_parameter(first)
        for name in others:
            owner, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(owner), leaf, param)


def _shared_parameters(model: nn.Module) -> list[tuple[str, list[str]]]:
    """(first name, other names) of each parameter that several modules hold."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    return [(found[0], found[1:]) for found in names.values() if len(found) > 1]


def consolidated_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of a ``fully_shard``-ed model, gathered to CPU on rank 0
    (empty on the other ranks, which must call this too: it is a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
