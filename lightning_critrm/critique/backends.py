"""Critic backends: one interface, ``generate(list of chat requests) -> list of Generation``.

Every local backend renders a request with the critic's own chat template and tokenizes it with
``add_special_tokens=False`` (the template writes BOS where the model wants it), so vLLM and
transformers see identical token ids for the same request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.backbones import resolve_backbone
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.records import Message


@dataclass(frozen=True)
class Generation:
    """One critic output. ``text`` is None when generation failed; ``error`` says why.
    ``too_long``: the prompt (of ``prompt_tokens``) does not fit the critic's context, so the
    same critic would fail it again; it is retried only under a larger ``max_model_len``."""

    text: Optional[str]
    error: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    too_long: bool = False


def finished(text: str, prompt_tokens: int, completion_tokens: int) -> Generation:
    text = text.strip()
    if not text:
        return Generation(None, "empty output", prompt_tokens, completion_tokens)
    return Generation(text, None, prompt_tokens, completion_tokens)


def chat_prompt_ids(tokenizer, messages: Sequence[Message]) -> list[int]:
    """Token ids of ``messages`` rendered for generation, with exactly one BOS if the model uses one."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    # Some templates (Llama 3) write BOS themselves; others rely on the tokenizer adding it.
    adds_bos = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
    if adds_bos and ids[:1] != [bos]:
        ids = [bos, *ids]
    return ids


class CriticBackend(ABC):
    def __init__(self, config: CriticConfig):
        self.config = config

    @abstractmethod
    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        """One generation per request, in request order."""

    def close(self) -> None:
        """Release the model or connections."""


def _torch_dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class TransformersCritic(CriticBackend):
    """Batched ``model.generate`` with left padding, for machines without vLLM."""

    def __init__(self, config: CriticConfig):
        super().__init__(config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_backbone(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(config.dtype)).eval()
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        stop = self.model.generation_config.eos_token_id
        self.stop_ids = (set(stop if isinstance(stop, list) else [stop]) | {tok.eos_token_id}) - {None}

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        import torch

        cfg = self.config
        ids = [chat_prompt_ids(self.tokenizer, m) for m in requests]
        # Sorted by length so each generate call pads little; results go back in request order.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: list[Optional[Generation]] = [None] * len(ids)
        for start in range(0, len(order), cfg.generation_batch_size):
            chunk = order[start : start + cfg.generation_batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                input_ids[row, width - len(ids[i]) :] = torch.tensor(ids[i])
                mask[row, width - len(ids[i]) :] = 1
            sampling = {"do_sample": False}
            if cfg.temperature > 0:
                torch.manual_seed(cfg.seed)
                sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=cfg.max_new_tokens,
                    pad_token_id=self.pad_id, **sampling,
                )
            for row, i in enumerate(chunk):
                new = out[row, width:].tolist()
                end = next((k for k, t in enumerate(new) if t in self.stop_ids), len(new))
                text = self.tokenizer.decode(new[:end], skip_special_tokens=True)
                results[i] = finished(text, len(ids[i]), end)
        return results  # type: ignore[return-value]


def build_backend(config: CriticConfig) -> CriticBackend:
    """The backend ``config.backend`` names; heavy imports happen here, not at import time."""
    backend = config.effective_backend
    if backend == "transformers":
        return TransformersCritic(config)
    if backend == "vllm":
        from lightning_critrm.critique.vllm_backend import VLLMCritic

        return VLLMCritic(config)
    if backend == "openai":
        from lightning_critrm.critique.openai_backend import OpenAICritic

        return OpenAICritic(config)
    raise ValueError(f"unknown critic backend {config.backend!r}")
