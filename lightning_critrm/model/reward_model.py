"""The reward model alone: a backbone, a pooling rule and a scalar head, as a plain ``nn.Module``.

Its parameter names are those of a Hugging Face sequence-classification model: the backbone sits
under the name its class uses as ``base_model_prefix`` (``model`` for Llama-style decoders) and the
head is ``score``, so ``RewardModel(...).state_dict()`` loads into
``AutoModelForSequenceClassification`` of the same config (for decoders, whose classification
head is exactly this bias-free ``score``). No Lightning here: export and scoring need none.
"""

from __future__ import annotations

import inspect
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from lightning_critrm.errors import InputError
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model import segment_attention
from lightning_critrm.model.pooling import Pooling, gather_hidden, reward_positions

# Longest packed row for eager attention, which materializes attention weights over whole rows:
# they grow with the square of the row (at 8,192 tokens, 2.4 GB of fp32 weights per layer for 9 heads).
WHOLE_ROW_ATTENTION_LIMIT = 8192


class RewardModel(nn.Module):
    """Rewards for the sequences of a :class:`RewardBatch`.

    Args:
        backbone: A Hugging Face base model (``AutoModel``: hidden states, no LM head).
        pooling: ``last`` (decoders: the token that closes the sequence) or ``first`` (the [CLS]
            of encoders).
    """

    def __init__(self, backbone: nn.Module, pooling: Pooling = "last"):
        super().__init__()
        self.base_model_prefix = getattr(backbone, "base_model_prefix", "") or "model"
        self.add_module(self.base_model_prefix, backbone)
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.score = nn.Linear(hidden, 1, bias=False, dtype=torch.float32)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden + 1) ** 0.5)
        self._takes_position_ids = "position_ids" in inspect.signature(backbone.forward).parameters
        self._causal = is_causal(backbone)
        if self._causal and getattr(backbone.config, "_attn_implementation", None) == "sdpa":
            # sdpa as before, plus packed and shared-prompt rows attended one sequence at a time
            # (segment_attention): the causal fast path where a 4-D mask would lose it.
            backbone.set_attn_implementation(segment_attention.register())

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    def forward(self, batch: RewardBatch) -> torch.Tensor:
        """Rewards [N], fp32, one per sequence of ``batch``."""
        attention_mask = batch.attention_mask
        segments = {}
        # One sequence at a time where that pays: on CPUs. On GPUs the loop launches kernels per
        # sequence and layer; one masked fused kernel runs the row there.
        by_segment = (self._attention == segment_attention.IMPLEMENTATION
                      and self.attends_per_sequence(batch.input_ids.device))
        if attention_mask is None:
            self._check_row_width(batch)
            if not by_segment and self._attention != "eager":
                warnings.warn(
                    f"packed or shared-prompt rows under {self._attention!r} attention on {batch.input_ids.device.type} "
                    "attend over whole masked rows: for speed, load the backbone with flash_attention_2 or set "
                    "data.layout.packing and data.layout.shared_prompt to false", stacklevel=2)
        if batch.block_ids is not None:
            self._check_shared_prefix(batch)
            if by_segment:
                segments = {"attention_segments": batch.attention_segments()}
            else:
                attention_mask = self._shared_prefix_mask(batch)
        elif attention_mask is None and not self._takes_position_ids:
            # Without position ids a packed row would be one long sequence attending across its parts.
            raise InputError(
                f"packed batches need a backbone that reads position ids; {type(self.backbone).__name__} does not: "
                "set data.layout.packing: false"
            )
        elif attention_mask is None and by_segment:
            segments = {"attention_segments": batch.attention_segments()}
        if segments:
            attention_mask = segment_attention.mask_stand_in(batch.input_ids)
        kwargs = {"position_ids": batch.position_ids} if self._takes_position_ids else {}
        if batch.block_ids is None and self._causal and batch.is_right_padded:
            # A causal decoder's real tokens never see padding that comes after them, and nothing
            # reads the padding's outputs: without a mask, attention takes its causal fast path
            # (benchmarks/results/attention_mask.json) and the rewards are the same. Positions
            # count on through the padding (the default), or transformers would read the padding's
            # repeated positions as packed sequences and build a mask after all.
            attention_mask = None
            kwargs = {}
        hidden = self.backbone(
            input_ids=batch.input_ids, attention_mask=attention_mask, **kwargs, **segments
        ).last_hidden_state  # [B, T, H]
        pooled = gather_hidden(hidden, reward_positions(batch, self.pooling))  # [N, H]
        # fp32 whatever the parameters' dtype (a sharded bf16 head, bf16-true) or autocast says:
        # bf16 rounding of rewards creates ties.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            # A new tensor, not a view: FSDP2 hooks the root output for backward.
            return F.linear(pooled.float(), self.score.weight.float()).squeeze(-1).clone()

    @property
    def _attention(self) -> str:
        return getattr(self.backbone.config, "_attn_implementation", None) or "eager"

    def attends_per_sequence(self, device: torch.device) -> bool:
        """Whether a packed row costs only its own sequences' attention on ``device`` (segment
        attention on CPUs, flash-attention's variable-length kernels), so one row can hold a whole
        batch; elsewhere attention runs over whole rows under a mask."""
        on_cpu = torch.device(device).type == "cpu"
        return (self._attention == segment_attention.IMPLEMENTATION and on_cpu) or self._attention.startswith("flash")

    def _check_row_width(self, batch: RewardBatch) -> None:
        """Refuse packed rows too wide for eager attention, which materializes the weights of whole
        rows (fused kernels given a mask keep only the mask), before it allocates them."""
        width = batch.input_ids.shape[1]
        if self._attention != "eager" or width <= WHOLE_ROW_ATTENTION_LIMIT:
            return
        starts = batch.first_token_index.unique()  # a shared prefix's sequences start together
        if starts.numel() > (starts // width).unique().numel():  # some row holds several sequences
            raise InputError(
                f"packed rows of {width} tokens under {self._attention!r} attention, which weighs whole rows "
                f"(memory grows with the square of the row): set data.layout.row_tokens to at most "
                f"{WHOLE_ROW_ATTENTION_LIMIT} (e.g. data.max_length)"
            )

    def _check_shared_prefix(self, batch: RewardBatch) -> None:
        config = self.backbone.config
        if not (self._takes_position_ids and self._causal):  # found once, at construction
            raise InputError(shared_prompt_refusal(self.backbone))
        window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
        if window and batch.input_ids.shape[1] > window:
            raise InputError(
                f"data.layout.shared_prompt: rows of {batch.input_ids.shape[1]} tokens exceed the backbone's sliding "
                f"window ({window}), which a custom mask would ignore; set data.layout.shared_prompt: false"
            )
        if self._attention not in ("sdpa", "eager", segment_attention.IMPLEMENTATION):
            raise InputError(
                f"data.layout.shared_prompt needs sdpa or eager attention; the backbone uses {self._attention!r}: "
                "set data.layout.shared_prompt: false or load it with sdpa"
            )

    def _shared_prefix_mask(self, batch: RewardBatch) -> torch.Tensor:
        """The 4-D mask of a shared-prefix batch, in the form the backbone's attention takes
        (transformers passes a 4-D mask through unchanged)."""
        blocks = batch.attention_blocks()
        if self._attention in ("sdpa", segment_attention.IMPLEMENTATION):
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
