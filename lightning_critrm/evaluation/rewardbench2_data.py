"""RewardBench 2 rows: the hub's ``allenai/reward-bench-2`` (split ``test``) or local files in its
layout: ``id, prompt, chosen (list), rejected (list), num_correct, subset`` (``total_completions``
checked when present). Errors name the file, the row and the field, as for v1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.evaluation.rewardbench_data import json_object, select_rows
from lightning_critrm.records import Message, RecordError

HUB_NAME_V2 = "allenai/reward-bench-2"
HUB_SPLIT_V2 = "test"


@dataclass(frozen=True)
class RewardBench2Row:
    id: str
    subset: str
    prompt: tuple[Message, ...]
    completions: tuple[str, ...]  # the correct ones first
    num_correct: int


def _texts(raw: dict, field: str, where: str) -> list[str]:
    value = raw[field]
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise RecordError(f"{where}: field '{field}': expected a non-empty list of non-empty strings")
    return value


def _row(raw: Any, where: str) -> RewardBench2Row:
    raw = json_object(raw, where, ("id", "prompt", "chosen", "rejected", "subset", "num_correct"),
                      strings=("prompt", "subset"))
    chosen, rejected = _texts(raw, "chosen", where), _texts(raw, "rejected", where)
    if raw["num_correct"] != len(chosen) or isinstance(raw["num_correct"], bool):
        raise RecordError(
            f"{where}: field 'num_correct': {raw['num_correct']!r}, but 'chosen' holds {len(chosen)}")
    total = raw.get("total_completions")
    if total is not None and total != len(chosen) + len(rejected):
        raise RecordError(f"{where}: field 'total_completions': {total!r}, but there are "
                          f"{len(chosen) + len(rejected)}")
    return RewardBench2Row(str(raw["id"]), raw["subset"], ({"role": "user", "content": raw["prompt"]},),
                           tuple(chosen + rejected), len(chosen))


def load_rewardbench2(source: str = HUB_NAME_V2,
                      subsets: Optional[Sequence[str]] = None) -> list[RewardBench2Row]:
    """Rows of ``source`` (local files, or a hub name with optional ``:split``), restricted to
    ``subsets`` when given. Duplicate ids within a subset are an error: each prompt counts once."""
    return select_rows(source, HUB_SPLIT_V2, _row, subsets, key=lambda row: (row.subset, row.id))
