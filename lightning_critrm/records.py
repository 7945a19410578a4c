"""Preference records: the one shape every data source is normalized into.

A row of any source (hub dataset, JSON, JSONL, parquet, the built-in quickstart set) becomes a
:class:`PreferencePair`: the prompt as a list of chat messages, the chosen and rejected completions
as plain strings, and optionally one critique per completion and a per-pair margin. Normalization
errors name the source, the row and the field so a bad line in a 100k-row file can be fixed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.errors import InputError

Message = dict[str, str]


class RecordError(InputError):
    """A source row that cannot be read as a preference pair (names file, row and field)."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold each part of a preference pair.

    Args:
        prompt: Column with the prompt: a string, or a list of ``{"role", "content"}`` messages.
            If the column is absent and ``chosen`` is a conversation, the prompt is the conversation
            before its last (assistant) message.
        chosen: Column with the preferred completion: a string or a conversation ending in an
            assistant message.
        rejected: Column with the dispreferred completion, same forms as ``chosen``.
        chosen_critique: Column with the critique of the chosen completion.
        rejected_critique: Column with the critique of the rejected completion.
        margin: Optional column with a per-pair margin for the loss (``None``: no margin).
    """

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    chosen_critique: str = "chosen_critique"
    rejected_critique: str = "rejected_critique"
    margin: Optional[str] = None


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: two completions of the same prompt, the first preferred."""

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    chosen_critique: Optional[str] = None
    rejected_critique: Optional[str] = None
    margin: Optional[float] = None

    def prompt_key(self) -> str:
        """Stable id of the prompt, used to split train/validation by prompt rather than by row."""
        text = json.dumps(list(self.prompt), sort_keys=True, ensure_ascii=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def read_messages(value: Any, where: str, field: str) -> list[Message]:
    """``value`` checked to be a non-empty list of messages with string role and content (other keys
    dropped); otherwise an error naming ``where`` and ``field``."""
    if not isinstance(value, list) or not value:
        raise RecordError(f"{where}: field '{field}': expected a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        if (
            not isinstance(msg, Mapping)
            or not isinstance(msg.get("role"), str)
            or not isinstance(msg.get("content"), str)
        ):
            raise RecordError(
                f"{where}: field '{field}': message {i} must be a mapping with string 'role' and "
                f"'content', got {msg!r:.80}"
            )
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


def _completion(value: Any, where: str, field: str) -> tuple[str, Optional[list[Message]]]:
    """Return (completion text, conversation before it or None for a plain string)."""
    if isinstance(value, str):
        if not value.strip():
            raise RecordError(f"{where}: field '{field}': the completion is empty")
        return value, None
    if isinstance(value, list):
        msgs = read_messages(value, where, field)
        if msgs[-1]["role"] != "assistant":
            raise RecordError(
                f"{where}: field '{field}': the conversation must end with an assistant message, "
                f"it ends with role '{msgs[-1]['role']}'"
            )
        if not msgs[-1]["content"].strip():
            raise RecordError(f"{where}: field '{field}': the completion is empty")
        return msgs[-1]["content"], msgs[:-1]
    raise RecordError(
        f"{where}: field '{field}': expected a string or a list of messages, got "
        f"{type(value).__name__}"
    )


def _critique(row: Mapping[str, Any], column: str, where: str) -> str:
    if column not in row:
        raise RecordError(
            f"{where}: field '{column}': missing (critiques are read from columns; set "
            f"critiques: none to train without them, or map the column in data.columns)"
        )
    value = row[column]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{where}: field '{column}': expected a non-empty critique string")
    return value


def normalize_row(
    row: Mapping[str, Any], columns: ColumnMap, where: str, with_critiques: bool
) -> PreferencePair:
    """Read one source row as a :class:`PreferencePair`.

    Args:
        row: The raw row.
        columns: Where each field lives.
        where: ``"file.jsonl: row 12"``-style location used in every error message.
        with_critiques: Require and read the two critique columns.
    """
    for field in (columns.chosen, columns.rejected):
        if field not in row:
            raise RecordError(f"{where}: field '{field}': missing")
    chosen, chosen_ctx = _completion(row[columns.chosen], where, columns.chosen)
    rejected, rejected_ctx = _completion(row[columns.rejected], where, columns.rejected)

    raw_prompt = row.get(columns.prompt)
    if raw_prompt is None:
        if not chosen_ctx:
            raise RecordError(
                f"{where}: field '{columns.prompt}': missing, and '{columns.chosen}' is not a "
                f"conversation the prompt could be taken from"
            )
        prompt = chosen_ctx
        if rejected_ctx is not None and rejected_ctx != chosen_ctx:
            raise RecordError(
                f"{where}: field '{columns.rejected}': its conversation does not share the prompt "
                f"of '{columns.chosen}'"
            )
    elif isinstance(raw_prompt, str):
        if not raw_prompt.strip():
            raise RecordError(f"{where}: field '{columns.prompt}': the prompt is empty")
        prompt = [{"role": "user", "content": raw_prompt}]
    else:
        prompt = read_messages(raw_prompt, where, columns.prompt)
    # A conversational completion may repeat the prompt before its answer; if it carries a
    # different history, the pair is ambiguous and we refuse it rather than guess.
    for field, ctx in ((columns.chosen, chosen_ctx), (columns.rejected, rejected_ctx)):
        if ctx and ctx != prompt:
            raise RecordError(
                f"{where}: field '{field}': the conversation before the completion differs from "
                f"the prompt in '{columns.prompt}'"
            )

    margin = None
    if columns.margin is not None:
        value = row.get(columns.margin)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: field '{columns.margin}': expected a number, got {value!r:.40}")
        if not math.isfinite(value):  # JSON readers accept NaN and Infinity; the loss would not
            raise RecordError(f"{where}: field '{columns.margin}': expected a finite number, got {value}")
        margin = float(value)

    chosen_critique = rejected_critique = None
    if with_critiques:
        chosen_critique = _critique(row, columns.chosen_critique, where)
        rejected_critique = _critique(row, columns.rejected_critique, where)
    return PreferencePair(
        prompt=tuple(prompt),
        chosen=chosen,
        rejected=rejected,
        chosen_critique=chosen_critique,
        rejected_critique=rejected_critique,
        margin=margin,
    )
