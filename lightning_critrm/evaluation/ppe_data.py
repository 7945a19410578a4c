"""PPE rows in the layout of its hub sets, from the hub or from local files.

* **Human preference**: ``lmarena-ai/PPE-Human-Preference-V1`` (split ``test``) or local files of
  its rows: ``question_id, prompt, response_1, response_2, winner`` (``model_a``: response 1 was
  preferred, ``model_b``: response 2; a tie vote is left out), with ``language`` (the row's subset;
  ``unknown`` where absent) and the flags ``hard_prompt, math_prompt, is_code`` where present.
* **Correctness**: the five ``lmarena-ai/PPE-<set>-Best-of-K`` sets (split ``train``): rows of
  ``question_id, model_name, prompt, scores`` (one verified label per response) and
  ``response_1 .. response_K``. The source is ``lmarena-ai`` (every set on the hub), one set (a hub
  name, or a local file or folder under a folder named like the set), or a folder holding folders
  named like the sets (``huggingface-cli download --repo-type dataset lmarena-ai/<set> --local-dir
  <folder>/<set>`` for each). A row's subset is its set's short name (``mmlu_pro``, ``math``, ...).

Errors name the file, the row and the field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Optional

from lightning_critrm.data import sources
from lightning_critrm.errors import InputError
from lightning_critrm.evaluation.ppe_scoring import CATEGORIES, CORRECTNESS_SETS
from lightning_critrm.evaluation.rewardbench_data import json_object, select_rows
from lightning_critrm.records import Message, RecordError

HUB_NAME_PPE_HUMAN = "lmarena-ai/PPE-Human-Preference-V1"
HUB_SPLIT_PPE_HUMAN = "test"
HUB_ORG_PPE = "lmarena-ai"  # the correctness source meaning every set on the hub
HUB_SPLIT_PPE_CORRECTNESS = "train"
WINNERS = ("model_a", "model_b")


@dataclass(frozen=True)
class PPEHumanRow:
    id: str  # question_id
    subset: str  # language
    prompt: tuple[Message, ...]
    responses: tuple[str, str]  # response_1 (model_a's), response_2 (model_b's)
    winner: str  # model_a, model_b, or a tie vote (left out by the loader)
    categories: tuple[str, ...]  # the flags of CATEGORIES that are set

    @property
    def preferred(self) -> int:
        """Index of the response the voter preferred."""
        return WINNERS.index(self.winner)


@dataclass(frozen=True)
class PPECorrectnessRow:
    id: str  # question_id/model_name
    subset: str  # the set's short name
    question_id: str
    model_name: str
    prompt: tuple[Message, ...]
    responses: tuple[str, ...]
    correct: tuple[bool, ...]


def _human_row(raw: Any, where: str) -> PPEHumanRow:
    texts = ("prompt", "response_1", "response_2", "winner")
    raw = json_object(raw, where, ("question_id", *texts), strings=texts)
    language = raw.get("language") or "unknown"
    if not isinstance(language, str):
        raise RecordError(f"{where}: field 'language': expected a string, got {type(language).__name__}")
    for flag in CATEGORIES:
        if raw.get(flag) not in (None, True, False, 0, 1):
            raise RecordError(f"{where}: field '{flag}': expected true or false, got {raw[flag]!r:.40}")
    return PPEHumanRow(str(raw["question_id"]), language, ({"role": "user", "content": raw["prompt"]},),
                       (raw["response_1"], raw["response_2"]), raw["winner"],
                       tuple(flag for flag in CATEGORIES if raw.get(flag)))


def load_ppe_human(source: str = HUB_NAME_PPE_HUMAN, subsets: Optional[Sequence[str]] = None
                   ) -> list[PPEHumanRow]:
    """The voted rows of ``source`` (local files, or a hub name with optional ``:split``), only
    those of the languages in ``subsets`` when given; tie votes are left out (they prefer neither
    response). A repeated ``question_id`` is an error: each vote counts once."""
    rows = select_rows(source, HUB_SPLIT_PPE_HUMAN, _human_row, subsets, key=lambda row: row.id,
                       id_field="question_id")
    return [row for row in rows if row.winner in WINNERS]


def _labels(value: Any, where: str) -> tuple[bool, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise RecordError(f"{where}: field 'scores': expected a non-empty list of true/false labels, one "
                          f"per response")
    for i, label in enumerate(value):
        if label not in (True, False, 0, 1):
            raise RecordError(f"{where}: field 'scores': label {i} is {label!r:.40}, expected true or false")
    return tuple(bool(label) for label in value)


def _correctness_row(subset: str):
    def parse(raw: Any, where: str) -> PPECorrectnessRow:
        raw = json_object(raw, where, ("question_id", "model_name", "prompt", "scores"),
                          strings=("model_name", "prompt"))
        correct = _labels(raw["scores"], where)
        fields = [f"response_{k}" for k in range(1, len(correct) + 1)]
        raw = json_object(raw, f"{where} ({len(correct)} labels in 'scores')", fields, strings=fields)
        question = str(raw["question_id"])
        return PPECorrectnessRow(f"{question}/{raw['model_name']}", subset, question, raw["model_name"],
                                 ({"role": "user", "content": raw["prompt"]},),
                                 tuple(raw[f] for f in fields), correct)

    return parse


def set_named_in(source: str) -> Optional[str]:
    """Short name of the correctness set a hub name or path names (a part named like the set)."""
    named = [name for part in PurePath(source.partition(":")[0]).parts
             for name, hub in CORRECTNESS_SETS.items() if part.lower() == hub.lower()]
    return named[-1] if named else None


def correctness_sources(source: str, subsets: Optional[Sequence[str]] = None) -> dict[str, str]:
    """Where each correctness set of ``source`` is read from (``subsets`` only, each of which must
    be there), by short name in :data:`CORRECTNESS_SETS` order."""
    unknown = sorted(set(subsets or ()) - set(CORRECTNESS_SETS))
    if unknown:
        raise InputError(f"PPE correctness subsets {unknown}: expected some of {', '.join(CORRECTNESS_SETS)}")
    named = set_named_in(source)
    if source == HUB_ORG_PPE:
        found = {name: f"{HUB_ORG_PPE}/{hub}" for name, hub in CORRECTNESS_SETS.items()}
    elif named:
        found = {named: source}
    elif os.path.isdir(source):
        found = {name: os.path.join(source, hub) for name, hub in CORRECTNESS_SETS.items()
                 if os.path.isdir(os.path.join(source, hub))}
        if not found:
            raise InputError(f"{source}: holds no PPE correctness set: expected folders named "
                             f"{', '.join(CORRECTNESS_SETS.values())} (one per set, in the hub's layout)")
    else:
        raise InputError(f"PPE correctness source {source!r}: expected {HUB_ORG_PPE} (every set on the hub), "
                         f"a hub set or a local file or folder named like one of "
                         f"{', '.join(CORRECTNESS_SETS.values())}, or a folder holding such folders")
    missing = [name for name in subsets or () if name not in found]
    if missing:
        raise InputError(f"subsets {missing} are not in {source}; it has: {', '.join(found)}")
    return {name: where for name, where in found.items() if not subsets or name in subsets}


def load_ppe_correctness(source: str = HUB_ORG_PPE, subsets: Optional[Sequence[str]] = None
                         ) -> list[PPECorrectnessRow]:
    """Rows of every correctness set of ``source`` (see :func:`correctness_sources`), set by set.
    A repeated (``question_id``, ``model_name``) within a set is an error: each row counts once."""
    rows: list[PPECorrectnessRow] = []
    for name, where in correctness_sources(source, subsets).items():
        if not sources.is_local(where) and where.partition(":")[0].count("/") != 1:
            raise InputError(f"{where}: no such file or folder (a PPE set is a local path or a hub name)")
        rows += select_rows(where, HUB_SPLIT_PPE_CORRECTNESS, _correctness_row(name), None,
                            key=lambda row: row.id, id_field="question_id, model_name")
    return rows
