"""The reward model alone: a backbone, a pooling rule and a scalar head, as a plain ``nn.Module``.

Its parameter names are those of a Hugging Face sequence-classification model: the backbone sits
under the name its class uses as ``base_model_prefix`` (``model`` for Llama-style decoders) and the
head is ``score``, so ``RewardModel(...).state_dict()`` loads into
``AutoModelForSequenceClassification`` of the same config (for decoders, whose classification
head is exactly this bias-free ``score``). No Lightning here: export and scoring need none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_critrm.layout.attention import BackboneAttention
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.pooling import Pooling, gather_hidden, reward_positions


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
        self.attention = BackboneAttention(backbone)

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    def forward(self, batch: RewardBatch) -> torch.Tensor:
        """Rewards [N], fp32, one per sequence of ``batch``."""
        # [B, T, H]
        hidden = self.backbone(input_ids=batch.input_ids, **self.attention.inputs(batch)).last_hidden_state
        pooled = gather_hidden(hidden, reward_positions(batch, self.pooling))  # [N, H]
        # fp32 whatever the parameters' dtype (a sharded bf16 head, bf16-true) or autocast says:
        # bf16 rounding of rewards creates ties.
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            # A new tensor, not a view: FSDP2 hooks the root output for backward.
            return F.linear(pooled.float(), self.score.weight.float()).squeeze(-1).clone()

    def attends_per_sequence(self, device: torch.device) -> bool:
        """Whether packed rows cost only their own sequences' attention on ``device``."""
        return self.attention.per_sequence(device)
