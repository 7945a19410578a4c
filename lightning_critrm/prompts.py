"""Text templates the reward model reads: where the critique goes, and a chat fallback.

The critique is appended after the completion as a clearly delimited block. The template is
configuration (with a version string that enters every cache key), and the same
:class:`CritiqueFormat` renders training and evaluation inputs, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
            raise ValueError(
                f"critique template must contain {CRITIQUE_PLACEHOLDER} exactly once, found {count}: "
                f"{self.template!r}"
            )
        if not self.version.strip():
            raise ValueError("critique template version must not be empty")

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
