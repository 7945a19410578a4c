"""RM-Bench rows: the hub's ``THU-KEG/RM-Bench`` (its ``total_dataset.json``, split ``train``) or
local files in its layout (``data/total_dataset.json`` or a domain's file of the official
repository): ``id, prompt, chosen (3), rejected (3), domain``, each list in the styles concise,
detailed plain text, detailed markdown. Errors name the file, the row and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.evaluation.rewardbench_data import json_object, select_rows
from lightning_critrm.evaluation.rmbench_scoring import STYLES
from lightning_critrm.records import Message, RecordError

HUB_NAME_RMBENCH = "THU-KEG/RM-Bench"
HUB_SPLIT_RMBENCH = "train"


@dataclass(frozen=True)
class RMBenchRow:
    id: str
    subset: str  # the `domain` field: chat, code, math, safety-refuse or safety-response
    prompt: tuple[Message, ...]
    chosen: tuple[str, ...]  # in STYLES order
    rejected: tuple[str, ...]


def _styles(raw: dict, field: str, where: str) -> tuple[str, ...]:
    value = raw[field]
    if not isinstance(value, list) or len(value) != len(STYLES) or not all(isinstance(t, str) for t in value):
        raise RecordError(f"{where}: field '{field}': expected a list of {len(STYLES)} strings "
                          f"({', '.join(STYLES)}), got {_shape(value)}")
    return tuple(value)


def _shape(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} ({', '.join(sorted({type(v).__name__ for v in value})) or 'empty'})"
    return type(value).__name__


def _row(raw: Any, where: str) -> RMBenchRow:
    raw = json_object(raw, where, ("id", "prompt", "chosen", "rejected", "domain"),
                      strings=("prompt", "domain"))
    return RMBenchRow(str(raw["id"]), raw["domain"], ({"role": "user", "content": raw["prompt"]},),
                      _styles(raw, "chosen", where), _styles(raw, "rejected", where))


def load_rmbench(source: str = HUB_NAME_RMBENCH, subsets: Optional[Sequence[str]] = None) -> list[RMBenchRow]:
    """Rows of ``source`` (local files, or a hub name with optional ``:split``), only those whose
    ``domain`` is in ``subsets`` when given. A duplicate id is an error: each prompt counts once."""
    return select_rows(source, HUB_SPLIT_RMBENCH, _row, subsets, key=lambda row: row.id)
