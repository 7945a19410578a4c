"""The reward model alone: a backbone, a pooling rule and a scalar head, as a plain ``nn.Module``.

Its parameter names are those of a Hugging Face sequence-classification model: the backbone sits
under the name its class uses as ``base_model_prefix`` (``model`` for Llama-style decoders) and the
head is ``score``, so ``RewardModel(...).state_dict()`` loads into
``AutoModelForSequenceClassification`` of the same config (for decoders, whose classification
head is exactly this bias-free ``score``). A reward model that also writes its critiques keeps the
language-model head beside it as ``lm_head``, named as in ``AutoModelForCausalLM`` (tied to the
input embeddings where the backbone ties them). No Lightning here: export and scoring need none.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lightning_critrm.layout.attention import BackboneAttention
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.pooling import Pooling, gather_hidden, reward_positions


class RewardModel(nn.Module):
    """Rewards for the sequences of a :class:`RewardBatch`.

    Args:
        backbone: A Hugging Face base model (``AutoModel``: hidden states, no LM head), or a causal
            language model (``AutoModelForCausalLM``), whose base model becomes the backbone and
            whose head is kept as ``lm_head``.
        pooling: ``last`` (decoders: the token that closes the sequence) or ``first`` (the [CLS]
            of encoders).
    """

    def __init__(self, backbone: nn.Module, pooling: Pooling = "last"):
        super().__init__()
        lm_head = None
        if hasattr(backbone, "get_output_embeddings") and backbone.get_output_embeddings() is not None:
            lm_head = backbone.get_output_embeddings()
            backbone = getattr(backbone, backbone.base_model_prefix)
        self.base_model_prefix = getattr(backbone, "base_model_prefix", "") or "model"
        self.add_module(self.base_model_prefix, backbone)
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.score = nn.Linear(hidden, 1, bias=False, dtype=torch.float32)
        nn.init.normal_(self.score.weight, std=1.0 / (hidden + 1) ** 0.5)
        self.attention = BackboneAttention(backbone)
        self.lm_head: Optional[nn.Module] = lm_head

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    @property
    def writes_critiques(self) -> bool:
        """Whether the model keeps a language-model head (to learn and write critiques)."""
        return self.lm_head is not None

    def forward(self, batch: RewardBatch, critique_logits: bool = False):
        """Rewards [N], fp32, one per sequence of ``batch``; with ``critique_logits``, also the
        language-model logits [M, V] at ``batch.critique_index`` (only there: a whole batch's
        logits would cost T x V per row)."""
        # [B, T, H]
        hidden = self.backbone(input_ids=batch.input_ids, **self.attention.inputs(batch)).last_hidden_state
        pooled = gather_hidden(hidden, reward_positions(batch, self.pooling))  # [N, H]
        # fp32 whatever the parameters' dtype (a sharded bf16 head, bf16-true) or autocast says:
        # bf16 rounding of rewards creates ties.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            # A new tensor, not a view: FSDP2 hooks the root output for backward.
            rewards = F.linear(pooled.float(), self.score.weight.float()).squeeze(-1).clone()
        if not critique_logits:
            return rewards
        if self.lm_head is None or batch.critique_index is None:
            raise ValueError("critique logits need a model with its LM head and a batch with critique "
                             "targets")
        # Computed inside forward: under FSDP2 the head's weight is gathered only while it runs.
        return rewards, self.lm_head(hidden.reshape(-1, hidden.shape[-1])[batch.critique_index])

    def attends_per_sequence(self, device: torch.device) -> bool:
        """Whether packed rows cost only their own sequences' attention on ``device``."""
        return self.attention.per_sequence(device)
