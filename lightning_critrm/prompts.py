"""Text templates the reward model reads: where the critique goes, and a chat fallback.

The critique is appended after the completion as a clearly delimited block. The template is
configuration (with a version string that enters every cache key), and the same
:class:`CritiqueFormat` renders training and evaluation inputs, so the two cannot drift apart.
"""

from __future__ import annotations

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
    """The block that carries a critique after the completion.

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


def render_plain_conversation(messages: Sequence[Message]) -> str:
    """Prompt text for tokenizers without a chat template (encoders such as MiniLM).

    Ends with the assistant cue so the completion follows directly, mirroring
    ``add_generation_prompt=True`` of a chat template.
    """
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + "\n\nAssistant: "


# -- what the critic is asked ------------------------------------------------------------------
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

[Critique]"""
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
