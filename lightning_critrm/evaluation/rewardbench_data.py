"""RewardBench rows: the hub's ``allenai/reward-bench`` (split ``filtered``) or local files.

Local files (``.jsonl``/``.json``/``.parquet``) hold ``id, prompt, chosen, rejected, subset``;
errors name the file, the row and the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.data import sources
from lightning_critrm.errors import InputError
from lightning_critrm.records import Message, RecordError

HUB_NAME = "allenai/reward-bench"
HUB_SPLIT = "filtered"
FIELDS = ("id", "prompt", "chosen", "rejected", "subset")


@dataclass(frozen=True)
class RewardBenchRow:
    id: str
    subset: str
    prompt: tuple[Message, ...]
    chosen: str
    rejected: str


def _row(raw: Any, where: str) -> RewardBenchRow:
    if isinstance(raw, RecordError):  # a line that is not JSON or not UTF-8
        raise raw
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for field in FIELDS:
        if field not in raw or raw[field] is None:
            raise RecordError(f"{where}: field '{field}': missing")
    for field in ("prompt", "chosen", "rejected", "subset"):
        if not isinstance(raw[field], str):
            raise RecordError(f"{where}: field '{field}': expected a string, got {type(raw[field]).__name__}")
    return RewardBenchRow(
        id=str(raw["id"]),
        subset=raw["subset"],
        prompt=({"role": "user", "content": raw["prompt"]},),
        chosen=raw["chosen"],
        rejected=raw["rejected"],
    )


def _raw_rows(source: str) -> Iterator[tuple[str, Any]]:
    if sources.is_local(source):
        for path in sources.local_files(source):
            yield from sources.rows_of_file(path)
        return
    import datasets

    name, _, split = source.partition(":")
    for i, row in enumerate(datasets.load_dataset(name, split=split or HUB_SPLIT)):
        yield f"{source}: row {i}", row


def load_rewardbench(source: str = HUB_NAME, subsets: Optional[Sequence[str]] = None) -> list[RewardBenchRow]:
    """Rows of ``source`` (a local file/glob/folder, or a hub name with optional ``:split``),
    restricted to ``subsets`` when given. Duplicate ids are an error: each row counts once."""
    wanted = set(subsets) if subsets else None
    rows, seen, present = [], {}, set()
    for where, raw in _raw_rows(source):
        row = _row(raw, where)
        present.add(row.subset)
        if wanted is not None and row.subset not in wanted:
            continue
        if row.id in seen:
            raise RecordError(f"{where}: field 'id': {row.id} already appeared at {seen[row.id]}")
        seen[row.id] = where
        rows.append(row)
    unknown = sorted((wanted or set()) - present)
    if unknown:
        raise InputError(f"subsets {unknown} are not in {source}; it has: {', '.join(sorted(present))}")
    return rows
