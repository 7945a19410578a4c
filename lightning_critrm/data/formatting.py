"""Turn (prompt, completion, critique) into the token ids the reward model scores.

One function serves training and evaluation, so the two formats cannot drift. The layout is::

    [tokenizer's leading specials] prompt (chat template, ends with the assistant cue)
    completion (with the template's end-of-turn) [critique block] [end]

``end`` is the token the reward is read at: the tokenizer's trailing specials when it has any
(``[SEP]`` for BERT-style encoders), otherwise EOS. It is always the last token, after truncation
too. Over-long sequences lose, in this order: the start of the prompt, the end of the critique,
the end of the completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from lightning_critrm.errors import InputError
from lightning_critrm.prompts import CritiqueFormat, render_plain_conversation
from lightning_critrm.records import Message

_PROBE = "hello"


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


class SequenceFormatter:
    """Renders and tokenizes one scored sequence with critique interleaving and safe truncation.

    Args:
        tokenizer: A Hugging Face tokenizer. Its chat template renders the prompt (user) and the
            completion (assistant); tokenizers without one use a plain ``User:/Assistant:`` layout.
        max_length: Upper bound on the tokens of one sequence, ``end`` included.
        critique_format: Where the critique goes; ``None`` ignores critiques (plain RM).
    """

    def __init__(self, tokenizer, max_length: int, critique_format: Optional[CritiqueFormat]):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.critique_format = critique_format
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.leading, trailing = _special_wrapping(tokenizer)
        if trailing:
            self.end = trailing
        elif tokenizer.eos_token_id is not None:
            self.end = [tokenizer.eos_token_id]
        else:
            raise InputError(
                f"tokenizer {tokenizer.name_or_path!r} has neither an EOS token nor trailing "
                f"special tokens: there is no token to read the reward at"
            )
        if max_length < len(self.leading) + len(self.end) + 2:
            raise InputError(f"data.max_length={max_length} is too small to hold any text")

    # -- text ---------------------------------------------------------------------------------
    def render_prompt(self, prompt: Sequence[Message]) -> str:
        if not self.has_chat_template:
            return render_plain_conversation(prompt)
        return self.tokenizer.apply_chat_template(
            list(prompt), tokenize=False, add_generation_prompt=True
        )

    def render_completion(self, prompt: Sequence[Message], completion: str) -> str:
        """The completion as the chat template writes it after the prompt (end-of-turn included)."""
        if not self.has_chat_template:
            return completion
        head = self.render_prompt(prompt)
        full = self.tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": completion}], tokenize=False
        )
        if not full.startswith(head):
            # Templates that rewrite history (e.g. strip reasoning) give no clean split; the raw
            # completion keeps train and eval consistent all the same.
            return completion
        # Trailing newlines after the end-of-turn carry nothing and would sit before the critique.
        return full[len(head) :].rstrip("\n")

    def render_text(self, prompt: Sequence[Message], completion: str, critique: Optional[str]) -> str:
        """The whole sequence as text (for people reading TensorBoard samples, not for training)."""
        return self.tokenizer.decode(self.encode(prompt, completion, critique).input_ids)

    # -- tokens -------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def encode(
        self, prompt: Sequence[Message], completion: str, critique: Optional[str]
    ) -> EncodedSequence:
        prompt_text = self.render_prompt(prompt)
        leading = self.leading
        bos = getattr(self.tokenizer, "bos_token", None)
        if leading and bos and prompt_text.startswith(bos):
            leading = []  # the chat template already wrote BOS: never two
        prompt_ids = self._ids(prompt_text)
        completion_ids = self._ids(self.render_completion(prompt, completion))
        critique_ids: list[int] = []
        if self.critique_format is not None:
            if critique is None:
                raise ValueError("critiques are on but this completion has none")
            critique_ids = self._ids(self.critique_format.render(critique))

        budget = self.max_length - len(leading) - len(self.end)
        excess = len(prompt_ids) + len(completion_ids) + len(critique_ids) - budget
        truncated = excess > 0
        if excess > 0:  # the start of the prompt goes first (as RewardBench's reference does)
            cut = min(excess, len(prompt_ids))
            prompt_ids = prompt_ids[cut:]
            excess -= cut
        if excess > 0:
            cut = min(excess, len(critique_ids))
            critique_ids = critique_ids[: len(critique_ids) - cut]
            excess -= cut
        if excess > 0:
            completion_ids = completion_ids[: len(completion_ids) - excess]

        ids = leading + prompt_ids + completion_ids + critique_ids
        if ids[-len(self.end) :] != self.end:
            ids = ids + self.end
        return EncodedSequence(input_ids=ids, truncated=truncated)
