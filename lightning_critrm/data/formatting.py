"""Turn (prompt, completion, critique) into the token ids the reward model scores.

One function serves training, evaluation and ``score``, so the formats cannot drift, and the text
is the ecosystem's: the chat template's rendering of the conversation, tokenized as
``tokenizer.apply_chat_template(messages, tokenize=True)`` does, with the reward read at its last
token. A critique is one more message, of role ``critique``, after the assistant turn; the
formatter's :attr:`~SequenceFormatter.chat_template` folds it into that turn (see
:func:`~lightning_critrm.prompts.critique_chat_template`), and the export ships that template, so
TRL, OpenRLHF, RewardBench's package and vLLM read the model at the token it was trained on.

Only a text that does not fit ``max_length`` is cut, in this order: the start of the prompt (a
leading BOS or ``[CLS]`` stays), the end of the critique, the end of the completion. What the
template writes after the assistant turn (the end-of-turn token, a trailing newline) always stays
last. Standard tools cut differently (or not at all), so only such texts score differently there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.errors import InputError
from lightning_critrm.prompts import (
    CRITIQUE_ROLE,
    CritiqueFormat,
    critique_chat_template,
    plain_chat_template,
)
from lightning_critrm.records import Message

_PROBE = "hello"
_PROBE_PROMPT = [{"role": "user", "content": "Is this a probe?"}]


@dataclass(frozen=True)
class EncodedSequence:
    input_ids: list[int]
    truncated: bool


def _special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after any text, e.g. ([CLS], [SEP])."""
    plain = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


def own_chat_template(tokenizer) -> Optional[str]:
    """The tokenizer's chat template (the default one of a tokenizer that names several)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or None


def base_chat_template(tokenizer) -> str:
    """The tokenizer's chat template, or for a tokenizer without one a plain ``Role: content``
    template that starts with its leading specials and ends with its trailing ones (or EOS)."""
    own = own_chat_template(tokenizer)
    if own:
        return own
    leading, trailing = _special_wrapping(tokenizer)
    end = trailing or ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
    if not end:
        raise InputError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template, no EOS token and no trailing "
            f"special tokens: there is no token to read the reward at"
        )
    return plain_chat_template(tokenizer.decode(leading), tokenizer.decode(end))


class SequenceFormatter:
    """Renders and tokenizes one scored sequence: the conversation through the chat template,
    with the critique folded into the assistant turn, cut only where it does not fit.

    Args:
        tokenizer: A Hugging Face tokenizer. Its chat template renders the conversation;
            tokenizers without one get a plain ``User:/Assistant:`` template.
        max_length: Upper bound on the tokens of one sequence.
        critique_format: The critique block; ``None`` ignores critiques (plain RM).
    """

    def __init__(self, tokenizer, max_length: int, critique_format: Optional[CritiqueFormat]):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.critique_format = critique_format
        base = base_chat_template(tokenizer)
        #: The template that renders the scored text; the export ships it as the tokenizer's.
        self.chat_template = (
            base if critique_format is None else critique_chat_template(base, critique_format)
        )
        leading = (tokenizer.bos_token_id, getattr(tokenizer, "cls_token_id", None))
        self._leading_ids = {i for i in leading if i is not None}
        probe = self.conversation(_PROBE_PROMPT, _PROBE, _PROBE if critique_format is not None else None)
        if critique_format is not None and self.render(probe) != self._render(
            [*_PROBE_PROMPT, {"role": "assistant", "content": _PROBE + critique_format.render(_PROBE)}], base
        ):
            raise InputError(
                f"tokenizer {tokenizer.name_or_path!r}: its chat template does not render a critique folded "
                "into the assistant turn as it renders that turn written out; report it with the template"
            )
        fixed = len(self._split(probe, self.render(probe))[3])  # what the template writes after the turn
        if max_length < fixed + 2 + (1 if self._leading_ids else 0):
            raise InputError(f"data.max_length={max_length} is too small to hold any text")

    # -- text ---------------------------------------------------------------------------------
    def conversation(
        self, prompt: Sequence[Message], completion: str, critique: Optional[str]
    ) -> list[Message]:
        """The messages of one scored sequence: the prompt, the completion as the assistant turn,
        and (when the model reads critiques) the critique as a message of role ``critique``."""
        messages = [*prompt, {"role": "assistant", "content": completion}]
        if self.critique_format is not None:
            if critique is None:
                raise ValueError("critiques are on but this completion has none")
            messages.append({"role": CRITIQUE_ROLE, "content": critique})
        return messages

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        return self._render(messages, self.chat_template, add_generation_prompt)

    def _render(self, messages: Sequence[Message], template: str, add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), chat_template=template, tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    # -- tokens -------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        # The template writes every special token itself, as apply_chat_template(tokenize=True) reads it.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def encode(self, prompt: Sequence[Message], completion: str, critique: Optional[str]) -> EncodedSequence:
        messages = self.conversation(prompt, completion, critique)
        text = self.render(messages)
        ids = self._ids(text)
        if len(ids) <= self.max_length:
            return EncodedSequence(input_ids=ids, truncated=False)
        return EncodedSequence(input_ids=self._truncate(messages, text), truncated=True)

    def _split(self, messages: list[Message], text: str) -> tuple[str, str, str, str]:
        """``text`` as (prompt, completion, critique, tail): the tail is what the template writes
        after the assistant turn's content."""
        has_critique = messages[-1]["role"] == CRITIQUE_ROLE
        completion = messages[-2 if has_critique else -1]["content"]
        block = self.critique_format.render(messages[-1]["content"]) if has_critique else ""
        written = completion + block
        # As written, then as a template that trims the turn writes it.
        for content, tail_block in ((written, block), (written.strip(), block.rstrip())):
            start = text.rfind(content) if content else -1
            if start >= 0:
                end = start + len(content)
                cut = end - len(tail_block)
                return text[:start], text[start:cut], text[cut:end], text[end:]
        # A template that rewrites the turn beyond trimming: all counts as prompt (its start is cut).
        return text, "", "", ""

    def critique_span(self, prompt: Sequence[Message], completion: str,
                      critique: Optional[str]) -> Optional[tuple[int, int]]:
        """Positions ``[start, end)`` of the critique block's tokens in :meth:`encode`'s ids (what a
        reward model that writes its own critique learns to generate); None without a critique or
        where truncation cut all of it. A token the tokenizer merges across the block's start
        counts as the block's; one merged across its end does not."""
        if critique is None or self.critique_format is None:
            return None
        messages = self.conversation(prompt, completion, critique)
        text = self.render(messages)
        ids = self._ids(text)
        if len(ids) > self.max_length:
            leading, prompt_ids, completion_ids, critique_ids, _ = self._cut(messages, text)
            start = len(leading) + len(prompt_ids) + len(completion_ids)
            end = start + len(critique_ids)
        else:
            prompt_text, completion_text, critique_text, _ = self._split(messages, text)
            start = _common_prefix(ids, self._ids(prompt_text + completion_text))
            end = _common_prefix(ids, self._ids(prompt_text + completion_text + critique_text))
        return (start, end) if end > start else None

    def _truncate(self, messages: list[Message], text: str) -> list[int]:
        return [i for part in self._cut(messages, text) for i in part]

    def _cut(self, messages: list[Message], text: str) -> tuple[list[int], ...]:
        """The (leading, prompt, completion, critique, tail) ids of a text too long, cut to fit."""
        prompt_text, completion_text, critique_text, tail_text = self._split(messages, text)
        prompt_ids, completion_ids = self._ids(prompt_text), self._ids(completion_text)
        critique_ids, tail_ids = self._ids(critique_text), self._ids(tail_text)
        leading: list[int] = []
        if prompt_ids and prompt_ids[0] in self._leading_ids:
            leading, prompt_ids = prompt_ids[:1], prompt_ids[1:]

        parts = (leading, prompt_ids, completion_ids, critique_ids, tail_ids)
        excess = sum(map(len, parts)) - self.max_length
        if excess > 0:  # the start of the prompt goes first (as RewardBench's reference does)
            cut = min(excess, len(prompt_ids))
            prompt_ids = prompt_ids[cut:]
            excess -= cut
        if excess > 0:
            cut = min(excess, len(critique_ids))
            critique_ids = critique_ids[: len(critique_ids) - cut]
            excess -= cut
        if excess > 0:
            completion_ids = completion_ids[: max(0, len(completion_ids) - excess)]
        return leading, prompt_ids, completion_ids, critique_ids, tail_ids


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
