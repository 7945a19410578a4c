"""JudgeBench pairs: the hub's ``ScalerLab/JudgeBench`` (split ``gpt``, the GPT-4o responses the
paper reports; ``ScalerLab/JudgeBench:claude`` for the other) or local files in the layout of its
``data/dataset=judgebench,response_model=*.jsonl``: ``pair_id, source, question, response_A,
response_B, label``. A pair's subset is its category (knowledge, reasoning, math, coding). Errors
name the file, the row and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.evaluation.judgebench_scoring import CATEGORIES, LABELS, category_of
from lightning_critrm.evaluation.rewardbench_data import json_object, select_rows
from lightning_critrm.records import Message, RecordError

HUB_NAME_JUDGEBENCH = "ScalerLab/JudgeBench"
HUB_SPLIT_JUDGEBENCH = "gpt"


@dataclass(frozen=True)
class JudgeBenchRow:
    id: str  # pair_id
    subset: str  # the category of `source`
    source: str
    prompt: tuple[Message, ...]
    response_a: str
    response_b: str
    label: str


def _row(raw: Any, where: str) -> JudgeBenchRow:
    texts = ("source", "question", "response_A", "response_B", "label")
    raw = json_object(raw, where, ("pair_id", *texts), strings=texts)
    if raw["label"] not in LABELS:
        raise RecordError(f"{where}: field 'label': {raw['label']!r}, expected one of {', '.join(LABELS)}")
    category = category_of(raw["source"])
    if category is None:
        raise RecordError(f"{where}: field 'source': {raw['source']!r} is in no JudgeBench category (sources "
                          f"begin with {', '.join(CATEGORIES.values())})")
    return JudgeBenchRow(str(raw["pair_id"]), category, raw["source"],
                         ({"role": "user", "content": raw["question"]},), raw["response_A"],
                         raw["response_B"], raw["label"])


def load_judgebench(source: str = HUB_NAME_JUDGEBENCH,
                    subsets: Optional[Sequence[str]] = None) -> list[JudgeBenchRow]:
    """Pairs of ``source`` (local files, or a hub name with optional ``:split``), only those of the
    categories in ``subsets`` when given. A repeated ``pair_id`` is an error: each pair counts once."""
    return select_rows(source, HUB_SPLIT_JUDGEBENCH, _row, subsets, key=lambda row: row.id,
                       id_field="pair_id")
