"""RMB items: the ``RMB_dataset`` folder of its GitHub repository (RMB publishes no hub set), or any
file or subfolder of it: ``Pairwise_set/<goal>/.../<scenario>.json`` items with ``pair_uid,
conversation_input, chosen {answer}, reject {answer}, category_path`` and ``BoN_set/...`` items with
``bon_uid, conversation_input, bon_best {answer}, loser_list [{answer}, ...], category_path``. The
conversation (several turns in the multi-turn scenarios) is the prompt, rendered through the chat
template like any other; an item's subset is its scenario (``category_path``). Errors name the file,
the item and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.data import sources
from lightning_critrm.errors import MissingInputError
from lightning_critrm.evaluation.rewardbench_data import json_object, select_rows
from lightning_critrm.evaluation.rmb_scoring import SECTIONS, section_of
from lightning_critrm.records import Message, RecordError, read_messages

RMB_REPOSITORY = "https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark"
DEFAULT_SOURCE_RMB = "RMB_dataset"  # the folder of a clone of RMB_REPOSITORY
# Kind of item -> (its id field, its preferred answer's field, its other answers' field)
FIELDS = {"pairwise": ("pair_uid", "chosen", "reject"), "bon": ("bon_uid", "bon_best", "loser_list")}


@dataclass(frozen=True)
class RMBRow:
    id: str  # pair_uid or bon_uid
    subset: str  # the scenario: category_path
    kind: str  # "pairwise" or "bon"
    prompt: tuple[Message, ...]
    answers: tuple[str, ...]  # the chosen (or best) answer first, then the rejected one (or the losers)


def _answer(value: Any, where: str, field: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("answer"), str):
        raise RecordError(f"{where}: field '{field}': expected an object with a string 'answer', "
                          f"got {value!r:.80}")
    return value["answer"]


def _row(raw: Any, where: str) -> RMBRow:
    raw = json_object(raw, where, ("category_path",), strings=("category_path",))
    kind = "pairwise" if "pair_uid" in raw else "bon" if "bon_uid" in raw else None
    if kind is None:
        raise RecordError(f"{where}: field 'pair_uid': missing (an RMB item has pair_uid, or bon_uid "
                          f"in the best-of-N set)")
    uid, best, others = FIELDS[kind]
    raw = json_object(raw, where, (uid, "conversation_input", best, others))
    path = raw["category_path"]
    if section_of(path) is None or (kind == "bon") != path.startswith("BoN_set/"):
        starts = [s for s in SECTIONS.values() if s.startswith("BoN_set/") == (kind == "bon")]
        raise RecordError(f"{where}: field 'category_path': {path!r}: a {uid} item's path begins with "
                          f"{' or '.join(starts)}")
    prompt = read_messages(raw["conversation_input"], where, "conversation_input")
    if prompt[-1]["role"] != "user":
        raise RecordError(f"{where}: field 'conversation_input': the conversation must end with a user "
                          f"message (the answers reply to it), it ends with role {prompt[-1]['role']!r}")
    if kind == "pairwise":
        rest = [_answer(raw[others], where, others)]
    else:
        if not isinstance(raw[others], list) or not raw[others]:
            raise RecordError(f"{where}: field '{others}': expected a non-empty list of answers")
        rest = [_answer(v, where, f"{others}[{i}]") for i, v in enumerate(raw[others])]
    return RMBRow(str(raw[uid]), path, kind, tuple(prompt), (_answer(raw[best], where, best), *rest))


def load_rmb(source: str = DEFAULT_SOURCE_RMB, subsets: Optional[Sequence[str]] = None) -> list[RMBRow]:
    """Items of ``source`` (the ``RMB_dataset`` folder, a subfolder or files of it; or a hub set
    holding items in the same layout), only those of the scenarios in ``subsets`` when given. A
    repeated ``pair_uid`` (or ``bon_uid``) is an error: each item counts once."""
    if source == DEFAULT_SOURCE_RMB and not sources.is_local(source):
        raise MissingInputError(
            f"RMB is published in its GitHub repository, not on the hub: git clone {RMB_REPOSITORY} "
            f"and set the source to its RMB_dataset folder (or a subfolder or file of it)")
    return select_rows(source, "train", _row, subsets, key=lambda row: (row.kind, row.id),
                       id_field=lambda row: FIELDS[row.kind][0])
