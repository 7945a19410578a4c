"""RewardBench rows: the hub's ``allenai/reward-bench`` (split ``filtered``) or local files.

Local files (``.jsonl``/``.json``/``.parquet``) hold ``id, prompt, chosen, rejected, subset``;
errors name the file, the row and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar, Union

from lightning_critrm.data import sources
from lightning_critrm.errors import InputError
from lightning_critrm.records import Message, RecordError

HUB_NAME = "allenai/reward-bench"
HUB_SPLIT = "filtered"
FIELDS = ("id", "prompt", "chosen", "rejected", "subset")
T = TypeVar("T")


@dataclass(frozen=True)
class RewardBenchRow:
    id: str
    subset: str
    prompt: tuple[Message, ...]
    chosen: str
    rejected: str


def json_object(raw: Any, where: str, required: Sequence[str], strings: Sequence[str] = ()) -> dict:
    """``raw``, a benchmark row, checked to be a JSON object with every ``required`` field (not
    null) and ``strings`` fields that are strings; otherwise an error naming ``where`` and the field."""
    if isinstance(raw, RecordError):  # a line that is not JSON or not UTF-8
        raise raw
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for field in required:
        if field not in raw or raw[field] is None:
            raise RecordError(f"{where}: field '{field}': missing")
    for field in strings:
        if not isinstance(raw[field], str):
            raise RecordError(f"{where}: field '{field}': expected a string, got {type(raw[field]).__name__}")
    return raw


def _row(raw: Any, where: str) -> RewardBenchRow:
    raw = json_object(raw, where, FIELDS, strings=("prompt", "chosen", "rejected", "subset"))
    return RewardBenchRow(
        id=str(raw["id"]),
        subset=raw["subset"],
        prompt=({"role": "user", "content": raw["prompt"]},),
        chosen=raw["chosen"],
        rejected=raw["rejected"],
    )


def raw_rows(source: str, default_split: str) -> Iterator[tuple[str, Any]]:
    """(location, raw row) of a local file/glob/folder, or of a hub name with optional ``:split``."""
    if sources.is_local(source):
        for path in sources.local_files(source):
            yield from sources.rows_of_file(path)
        return
    name, _, split = source.partition(":")
    for i, row in enumerate(sources.load_hub_dataset(source, name, split or default_split)):
        yield f"{source}: row {i}", row


def select_rows(
    source: str,
    default_split: str,
    parse: Callable[[Any, str], T],
    subsets: Optional[Sequence[str]],
    key: Callable[[T], Hashable],
    id_field: Union[str, Callable[[T], str]] = "id",
) -> list[T]:
    """The rows of ``source`` parsed by ``parse`` (which names the location of any error), only
    those of ``subsets`` when given (each must be present). A ``key`` seen twice is an error naming
    ``id_field`` (or the field a row's id came from): each row counts once."""
    wanted = set(subsets) if subsets else None
    rows, seen, present = [], {}, set()
    for where, raw in raw_rows(source, default_split):
        row = parse(raw, where)
        present.add(row.subset)
        if wanted is not None and row.subset not in wanted:
            continue
        if key(row) in seen:
            field = id_field(row) if callable(id_field) else id_field
            raise RecordError(f"{where}: field '{field}': {row.id} already appeared at {seen[key(row)]}")
        seen[key(row)] = where
        rows.append(row)
    unknown = sorted((wanted or set()) - present)
    if unknown:
        raise InputError(f"subsets {unknown} are not in {source}; it has: {', '.join(sorted(present))}")
    return rows


def load_rewardbench(source: str = HUB_NAME, subsets: Optional[Sequence[str]] = None) -> list[RewardBenchRow]:
    """Rows of ``source`` (a local file/glob/folder, or a hub name with optional ``:split``),
    restricted to ``subsets`` when given. Duplicate ids are an error: each row counts once."""
    return select_rows(source, HUB_SPLIT, _row, subsets, key=lambda row: row.id)
