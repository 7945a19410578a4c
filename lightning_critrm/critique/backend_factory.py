"""Pick the critic backend a config names; heavy imports (torch, vLLM) happen only here, on use."""

from __future__ import annotations

from lightning_critrm.critique.backend import CriticBackend
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.errors import InputError


def build_backend(config: CriticConfig, concurrent: bool = False) -> CriticBackend:
    """The backend ``config.backend`` names, built (models load here). ``concurrent``: one whose
    ``generate`` overlaps calls from several threads where the backend offers it (vLLM's async
    engine instead of its offline one), for a long-lived caller such as the reward server."""
    backend = config.effective_backend
    if backend == "transformers":
        from lightning_critrm.critique.transformers_backend import TransformersCritic

        return TransformersCritic(config)
    if backend == "vllm":
        from lightning_critrm.critique.vllm_backend import AsyncVLLMCritic, VLLMCritic

        return AsyncVLLMCritic(config) if concurrent else VLLMCritic(config)
    if backend == "openai":
        from lightning_critrm.critique.openai_backend import OpenAICritic

        return OpenAICritic(config)
    raise InputError(f"unknown critic backend {config.backend!r}")
