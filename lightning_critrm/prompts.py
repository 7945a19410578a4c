"""Text templates the reward model reads: where the critique goes, and a chat fallback.

The critique follows the completion, inside the assistant turn, as a clearly delimited block; in
chat form it is a message of role ``critique`` that :func:`critique_chat_template` folds into the
turn before it. The block is configuration (with a version string that enters every cache key),
and the same :class:`CritiqueFormat` renders training and evaluation inputs, so the two cannot
drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lightning_critrm.errors import InputError
from lightning_critrm.records import Message

CRITIQUE_PLACEHOLDER = "{critique}"
DEFAULT_CRITIQUE_TEMPLATE = "\n\n[Critique of the response]\n{critique}\n[End of critique]"
DEFAULT_CRITIQUE_TEMPLATE_VERSION = "critique-block-v1"


@dataclass(frozen=True)
class CritiqueFormat:
    """The block that carries a critique after the completion (inside the assistant turn).

    Args:
        template: Text with exactly one ``{critique}`` placeholder. Other braces are literal.
        version: A name for this template; change it whenever the text changes.
    """

    template: str = DEFAULT_CRITIQUE_TEMPLATE
    version: str = DEFAULT_CRITIQUE_TEMPLATE_VERSION

    def __post_init__(self) -> None:
        count = self.template.count(CRITIQUE_PLACEHOLDER)
        if count != 1:
            raise InputError(
                f"critique template must contain {CRITIQUE_PLACEHOLDER} exactly once, found {count}: "
                f"{self.template!r}"
            )
        if not self.version.strip():
            raise InputError("critique template version must not be empty")

    def render(self, critique: str) -> str:
        # str.replace, not str.format: critiques quote code full of braces.
        return self.template.replace(CRITIQUE_PLACEHOLDER, critique.strip())


# -- the chat form the reward model reads -------------------------------------------------------
CRITIQUE_ROLE = "critique"


def _jinja_string(text: str) -> str:
    """``text`` as a Jinja string literal (Jinja reads Python's escapes, which JSON writes)."""
    return json.dumps(text)


def plain_chat_template(leading: str, end: str) -> str:
    """A chat template for tokenizers that have none (encoders such as MiniLM, base decoders).

    Turns are ``Role: content`` joined by blank lines; ``add_generation_prompt`` ends with the
    assistant cue. ``leading`` (e.g. ``[CLS]`` or BOS) starts the text and ``end`` (``[SEP]`` or
    EOS) closes a conversation that ends with an assistant turn: the token the reward is read at.
    Newlines are written as Jinja strings, which the block trimming of chat templates never eats.
    """
    return (
        "{{ " + _jinja_string(leading) + " }}"
        "{% for message in messages %}{% if not loop.first %}{{ '\\n\\n' }}{% endif %}"
        "{{ message['role'] | capitalize }}: {{ message['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '\\n\\nAssistant: ' }}"
        "{% elif messages and messages[-1]['role'] == 'assistant' %}"
        "{{ " + _jinja_string(end) + " }}{% endif %}"
    )


def critique_chat_template(base: str, critique_format: CritiqueFormat) -> str:
    """``base`` that also reads a critique, given as a message of role ``critique`` right after the
    assistant turn it judges.

    Such a message is folded into that assistant turn, whose content becomes
    ``completion + critique block``; then ``base`` renders the conversation as usual. So
    ``apply_chat_template([*prompt, assistant, {"role": "critique", "content": critique}])`` gives
    exactly the text the model was trained on, with any chat template. A template that folds the
    same block already (the tokenizer of an export that writes its critiques, trained on further)
    is returned as it is.
    """
    before, after = critique_format.template.split(CRITIQUE_PLACEHOLDER)
    fold = (
        "{% set folded = namespace(messages=[]) %}"
        "{% for message in messages %}"
        "{% if message['role'] == " + _jinja_string(CRITIQUE_ROLE) + " and folded.messages"
        " and folded.messages[-1]['role'] == 'assistant' %}"
        "{% set folded.messages = folded.messages[:-1] + [{'role': 'assistant', 'content': "
        "folded.messages[-1]['content'] + " + _jinja_string(before) + " + (message['content'] | trim) + "
        + _jinja_string(after) + "}] %}"
        "{% else %}{% set folded.messages = folded.messages + [message] %}{% endif %}"
        "{% endfor %}"
        "{% set messages = folded.messages %}"
    )
    return base if base.startswith(fold) else fold + base


# -- what the critic is asked ------------------------------------------------------------------
# The text enters every critique's cache key: rewrapping it would orphan cached critiques.
DEFAULT_CRITIC_INSTRUCTION = """You are reviewing one response written by an AI assistant. Write a critique of it.

Evaluate the response on:
- Instruction following: does it do what the user asked, completely and within the stated constraints?
- Correctness and truthfulness: are its facts, reasoning, calculations and code right? Point out every error.
- Helpfulness: does it address the user's actual need with the right depth and detail?
- Style: is it clear, well organized and appropriately concise?

List the response's main strengths and weaknesses. Be specific and refer to the response itself.
{score_rule}

[User prompt]
{prompt}

[Response]
{completion}

[Critique]"""  # noqa: E501
DEFAULT_CRITIC_INSTRUCTION_VERSION = "critic-instruction-v1"
_NO_SCORE = "Do not give a numeric score or a final verdict label; the critique must stand on its own."
_PLACEHOLDERS = re.compile(r"\{score_rule\}|\{prompt\}|\{completion\}")
_WITH_SCORE = "End with a line 'Score: N/10' rating the response's overall quality."


@dataclass(frozen=True)
class CriticPrompt:
    """The request sent to the critic for one completion (never a pair, so no label can leak).

    Args:
        template: Text with ``{prompt}``, ``{completion}`` and ``{score_rule}`` placeholders.
        version: A name for this template; it enters the critique cache key.
        allow_score: Ask the critic to end with a numeric score (off by default, as in the paper).
    """

    template: str = DEFAULT_CRITIC_INSTRUCTION
    version: str = DEFAULT_CRITIC_INSTRUCTION_VERSION
    allow_score: bool = False

    def __post_init__(self) -> None:
        for field in ("{prompt}", "{completion}"):
            if self.template.count(field) != 1:
                raise InputError(f"critic template must contain {field} exactly once")

    def render(self, prompt: Sequence[Message], completion: str) -> list[Message]:
        """The chat messages asking for a critique of ``completion`` as an answer to ``prompt``."""
        if len(prompt) == 1 and prompt[0]["role"] == "user":
            prompt_text = prompt[0]["content"]
        else:  # a multi-turn prompt is shown as a transcript
            prompt_text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)
        values = {
            "{score_rule}": _WITH_SCORE if self.allow_score else _NO_SCORE,
            "{prompt}": prompt_text,
            "{completion}": completion,
        }
        # One pass, so a prompt that itself contains "{completion}" is left as written.
        text = _PLACEHOLDERS.sub(lambda m: values[m.group(0)], self.template)
        return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class ContinuationPrompt:
    """The request to a reward model that writes its own critique (a critic with ``prompting:
    continuation``): the conversation with the completion as the assistant turn, which the model
    continues from the critique block's opening (its chat template folds a ``critique`` message
    into that turn) until the block closes.

    Args:
        block: The critique block the model was trained to write.
    """

    block: CritiqueFormat

    def render(self, prompt: Sequence[Message], completion: str) -> list[Message]:
        return [*prompt, {"role": "assistant", "content": completion}]

    @property
    def close(self) -> str:
        """Where a written critique ends: the block's text after ``{critique}``, stripped."""
        return self.block.template.split(CRITIQUE_PLACEHOLDER)[1].strip()
