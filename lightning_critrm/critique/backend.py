"""The interface every critic backend implements: ``generate(chat requests) -> list of Generation``.

Backends live in their own modules and import this one; :mod:`lightning_critrm.critique.backend_factory`
picks one by name. Every local backend renders a request with the critic's own chat template and
tokenizes it with ``add_special_tokens=False`` (the template writes BOS where the model wants it),
so vLLM and transformers see identical token ids for the same request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.errors import InputError
from lightning_critrm.prompts import CRITIQUE_ROLE, ContinuationPrompt
from lightning_critrm.records import Message

# Stands for the critique while the text before it is rendered: no template writes it.
_CRITIQUE_MARK = "\x00critique\x00"


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
    context: int = 0  # the context length the critic ran with, where it can cut a generation (vLLM)


def finished(text: str, prompt_tokens: int, completion_tokens: int, context: int = 0) -> Generation:
    text = text.strip()
    if not text:
        return Generation(None, "empty output", prompt_tokens, completion_tokens, context=context)
    return Generation(text, None, prompt_tokens, completion_tokens, context=context)


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


def request_ids(config: CriticConfig, tokenizer, messages: Sequence[Message]) -> list[int]:
    """The token ids a local critic generates from: the chat prompt of an instruction, or for a
    reward model that writes its own critique, the scored text up to the critique."""
    if config.prompting != "continuation":
        return chat_prompt_ids(tokenizer, messages)
    return continuation_prompt_ids(tokenizer, messages, config)


def continuation_prompt_ids(tokenizer, messages: Sequence[Message], config: CriticConfig) -> list[int]:
    """``messages`` (ending with the assistant turn) rendered by the model's chat template with a
    critique after them, up to where the critique starts: the block's opening included. With
    ``engine.max_model_len``, the start is cut (a leading BOS or [CLS] stays) so that
    ``sampling.max_new_tokens`` of critique fit after it."""
    text = tokenizer.apply_chat_template([*messages, {"role": CRITIQUE_ROLE, "content": _CRITIQUE_MARK}],
                                         tokenize=False)
    if _CRITIQUE_MARK not in text:
        raise InputError(
            f"critic {config.model}: its chat template writes no critique message, so it cannot continue "
            "the scored text to one (prompting: continuation reads a folder `export` wrote from a model "
            "trained with model.critique_lm_coef)")
    ids = list(tokenizer(text[: text.index(_CRITIQUE_MARK)], add_special_tokens=False)["input_ids"])
    limit = config.engine.max_model_len
    if limit is None:
        return ids
    keep = max(1, limit - config.sampling.max_new_tokens)
    if len(ids) <= keep:
        return ids
    lead = ids[:1] if ids[0] in {tokenizer.bos_token_id, getattr(tokenizer, "cls_token_id", None)} else []
    return lead + ids[len(ids) - keep + len(lead):]


def written_critique(config: CriticConfig, text: str) -> str:
    """A generation's critique: for a model that writes its own, what comes before the block closes."""
    stop = stop_strings(config)
    return text.split(stop[0])[0] if stop else text


def stop_strings(config: CriticConfig) -> list[str]:
    """Texts that end a generation early: where a written critique's block closes."""
    prompt = config.prompt
    return [prompt.close] if isinstance(prompt, ContinuationPrompt) and prompt.close else []


class CriticBackend(ABC):
    # Whether ``generate`` may be called from several threads at once, the calls overlapping
    # (an endpoint's connections, vLLM's async engine); otherwise callers take turns.
    concurrent = False

    def __init__(self, config: CriticConfig):
        self.config = config

    @abstractmethod
    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        """One generation per request, in request order."""

    def close(self) -> None:
        """Release the model or connections."""
