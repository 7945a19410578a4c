"""What a backbone is given so that it attends as a batch's layout says, and which layouts it can take.

Padded rows need a padding mask only where a token could see padding (left padding, encoders);
packed and shared-prompt rows need attention confined to each sequence: one sequence at a time
under ``sdpa_segments`` where that pays (CPUs), a 4-D block mask elsewhere, or the variable-length
kernels of flash-attention read from the restarting position ids.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import nn

from lightning_critrm.errors import InputError
from lightning_critrm.layout import segment_attention
from lightning_critrm.layout.batch import RewardBatch

# Longest packed row for eager attention, which materializes attention weights over whole rows:
# they grow with the square of the row (at 8,192 tokens, 2.4 GB of fp32 weights per layer for 9 heads).
WHOLE_ROW_ATTENTION_LIMIT = 8192


class BackboneAttention:
    """How one backbone attends: found once, when the reward model is built.

    A causal decoder under ``sdpa`` is switched to ``sdpa_segments`` (``sdpa`` itself, plus packed
    and shared-prompt rows attended one sequence at a time, keeping the causal fast path a 4-D mask
    would lose)."""

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone
        self.reads_positions = "position_ids" in inspect.signature(backbone.forward).parameters
        self.causal = is_causal(backbone)
        if self.causal and getattr(backbone.config, "_attn_implementation", None) == "sdpa":
            backbone.set_attn_implementation(segment_attention.register())

    @property
    def implementation(self) -> str:
        return getattr(self.backbone.config, "_attn_implementation", None) or "eager"

    def per_sequence(self, device: torch.device) -> bool:
        """Whether a packed row costs only its own sequences' attention on ``device`` (segment
        attention on CPUs, flash-attention's variable-length kernels), so one row can hold a whole
        batch; elsewhere attention runs over whole rows under a mask."""
        segments = self.implementation == segment_attention.IMPLEMENTATION
        return (segments and torch.device(device).type == "cpu") or self.implementation.startswith("flash")

    def inputs(self, batch: RewardBatch) -> dict[str, Any]:
        """The backbone's keyword arguments besides ``input_ids`` for ``batch``."""
        if batch.attention_mask is not None:
            if self.causal and batch.is_right_padded:
                # A causal decoder's real tokens never see padding that comes after them, and nothing
                # reads the padding's outputs: without a mask attention takes its causal fast path,
                # with the same rewards. Positions count on through the padding (the default), or
                # transformers would read the padding's repeated positions as packed sequences.
                return {"attention_mask": None}
            return {"attention_mask": batch.attention_mask, **self._positions(batch)}
        # Packed or shared-prompt rows. One sequence at a time where that pays: on CPUs. On GPUs the
        # loop launches kernels per sequence and layer; one masked fused kernel runs the row there.
        by_segment = (self.implementation == segment_attention.IMPLEMENTATION
                      and self.per_sequence(batch.input_ids.device))
        self._check_row_width(batch)
        if not by_segment and self.implementation != "eager":
            warnings.warn(
                f"packed or shared-prompt rows under {self.implementation!r} attention on "
                f"{batch.input_ids.device.type} attend over whole masked rows: for speed, load the backbone "
                "with flash_attention_2 or set "
                "data.layout.packing and data.layout.shared_prompt to false", stacklevel=3)
        if batch.block_ids is not None:
            self._check_shared_prompt(batch)
        elif not self.reads_positions:
            # Without position ids a packed row would be one long sequence attending across its parts.
            raise InputError(f"packed batches need a backbone that reads position ids; "
                             f"{type(self.backbone).__name__} does not: set data.layout.packing: false")
        positions = self._positions(batch)
        if by_segment:
            return {"attention_mask": segment_attention.mask_stand_in(batch.input_ids),
                    "attention_segments": batch.attention_segments(), **positions}
        if batch.block_ids is not None:
            return {"attention_mask": self._shared_prompt_mask(batch), **positions}
        return {"attention_mask": None, **positions}  # transformers reads the restarting positions

    def _positions(self, batch: RewardBatch) -> dict[str, torch.Tensor]:
        return {"position_ids": batch.position_ids} if self.reads_positions else {}

    def _check_row_width(self, batch: RewardBatch) -> None:
        """Refuse packed rows too wide for eager attention, which materializes the weights of whole
        rows (fused kernels given a mask keep only the mask), before it allocates them."""
        width = batch.input_ids.shape[1]
        if self.implementation != "eager" or width <= WHOLE_ROW_ATTENTION_LIMIT:
            return
        starts = batch.first_token_index.unique()  # a shared prefix's sequences start together
        if starts.numel() > (starts // width).unique().numel():  # some row holds several sequences
            raise InputError(
                f"packed rows of {width} tokens under {self.implementation!r} attention, which weighs whole "
                "rows (memory grows with the square of the row): set data.layout.row_tokens to at most "
                f"{WHOLE_ROW_ATTENTION_LIMIT} (e.g. data.max_length)"
            )

    def _check_shared_prompt(self, batch: RewardBatch) -> None:
        config = self.backbone.config
        if not (self.reads_positions and self.causal):
            raise InputError(shared_prompt_refusal(self.backbone))
        sliding = getattr(config, "use_sliding_window", True)
        window = getattr(config, "sliding_window", None) if sliding else None
        if window and batch.input_ids.shape[1] > window:
            raise InputError(
                f"data.layout.shared_prompt: rows of {batch.input_ids.shape[1]} tokens exceed the backbone's "
                f"sliding window ({window}), which a custom mask would ignore; set "
                "data.layout.shared_prompt: false"
            )
        if self.implementation not in ("sdpa", "eager", segment_attention.IMPLEMENTATION):
            raise InputError(
                "data.layout.shared_prompt needs sdpa or eager attention; the backbone uses "
                f"{self.implementation!r}: set data.layout.shared_prompt: false or load it with sdpa"
            )

    def _shared_prompt_mask(self, batch: RewardBatch) -> torch.Tensor:
        """The 4-D mask of a shared-prompt batch, in the form the backbone's attention takes
        (transformers passes a 4-D mask through unchanged)."""
        blocks = batch.attention_blocks()
        if self.implementation in ("sdpa", segment_attention.IMPLEMENTATION):
            return blocks
        # Eager attention adds the mask to its scores.
        dtype = self.backbone.get_input_embeddings().weight.dtype
        if torch.is_autocast_enabled(blocks.device.type):
            dtype = torch.get_autocast_dtype(blocks.device.type)
        zero = torch.zeros((), dtype=dtype, device=blocks.device)
        return torch.where(blocks, zero, torch.finfo(dtype).min)


def is_causal(backbone: nn.Module) -> bool:
    """Whether every attention layer of a transformers backbone attends causally (each token to
    itself and what precedes it only)."""
    flags = [m.is_causal for m in backbone.modules() if isinstance(getattr(m, "is_causal", None), bool)]
    return bool(flags) and all(flags)


def require_causal_decoder(backbone: nn.Module) -> None:
    """Raise unless ``backbone`` can score a shared prompt once: a causal decoder that reads
    position ids (a bidirectional encoder's prompt reads the completion after it)."""
    if "position_ids" not in inspect.signature(backbone.forward).parameters or not is_causal(backbone):
        raise InputError(shared_prompt_refusal(backbone))


def shared_prompt_refusal(backbone: nn.Module) -> str:
    return (
        f"data.layout.shared_prompt needs a causal decoder backbone that reads position ids; "
        f"{type(backbone).__name__} is not one: set data.layout.shared_prompt: false"
    )
