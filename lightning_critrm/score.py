"""``python -m lightning_critrm score``: rewards from an exported reward model, for new rows.

Reads only the exported folder and the rows: no training data, no checkpoint, no config file. The
folder's ``config.json`` says how its inputs were made (``lightning_critrm`` recipe); a model that
read generated critiques gets them from the same critic (template, sampling and model), missing
ones generated and cached in the same SQLite cache as training uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from lightning_critrm import console
from lightning_critrm.atomic_write import atomic_file
from lightning_critrm.data.sources import local_files, rows_of_file
from lightning_critrm.locations import writable_file
from lightning_critrm.records import ColumnMap, RecordError, normalize_row
from lightning_critrm.reward.exported import ExportedRewardModel, command_parser, split_model_options


def score(reward_model: ExportedRewardModel, input: str, output: str, normalize: bool = False) -> None:
    """Score rows with a reward model written by ``export``, and write one JSON line per row.

    Rows (``.jsonl``/``.json``/``.parquet``) hold a ``prompt`` (a string or chat messages) and either
    a ``completion`` (scored alone: ``reward``) or ``chosen`` and ``rejected`` (a pair:
    ``reward_chosen``, ``reward_rejected`` and ``preferred``). A model that read critiques from
    data columns needs them here too (``critique``, or ``chosen_critique`` and
    ``rejected_critique``); one that read generated critiques gets them from its recorded critic.
    A row whose critique failed gets ``null`` rewards and the ``error``. The output file is
    written whole or not at all.

    Args:
        reward_model: The exported model (``--model`` and its options).
        input: Rows to score.
        output: JSON lines to write, one per input row, in input order.
        normalize: Write ``(reward - mean) / std`` with the validation statistics the export
            stored (as OpenRLHF's ``normalize_reward``), not the raw reward.
    """
    rows = read_score_rows(input, needs_critiques=reward_model.critiques_from == "columns")
    items = [(row["prompt"], completion) for row in rows for completion in row["completions"]]
    given = ([c for row in rows for c in row["critiques"]] if reward_model.critiques_from == "columns"
             else None)
    rewards = reward_model.rewards(items, given, normalize=normalize)
    _write(Path(output), rows, rewards)
    scored = sum(r is not None for r in rewards)
    print(f"scored {scored} of {len(rewards)} completions in {len(rows)} rows: {output}")


def score_parser():
    """The ``score`` options: the exported model's, then :func:`score`'s."""
    return command_parser(score)


def run_score_command(options: dict[str, Any]) -> None:
    """Run :func:`score` with parsed ``options``, other libraries' output (a vLLM critic's) going to
    ``<output>.log``."""
    model, values = split_model_options(options)
    writable_file(values["output"], "--output")  # before scoring, not after it
    log = Path(f"{values['output']}.log")
    if console.send_other_output_to(log):
        print(f"other libraries' output: {log} (LIGHTNING_CRITRM_SHOW_LOGS=1 shows it here)")
    else:
        console.show_package_logs()
    score(ExportedRewardModel(**model), **values)


def read_score_rows(source: str, needs_critiques: bool) -> list[dict[str, Any]]:
    """Rows as ``{"raw", "prompt", "completions", "critiques"}``; errors name the file, line and field."""
    rows = []
    for path in local_files(source):
        for where, raw in rows_of_file(path):
            if isinstance(raw, RecordError):
                raise raw
            if not isinstance(raw, dict):
                raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
            pair = "chosen" in raw or "rejected" in raw
            if not pair and "completion" not in raw:
                raise RecordError(f"{where}: field 'completion': missing (or give 'chosen' and 'rejected')")
            # A single completion is read as a pair with itself, through the one row normalizer.
            columns = ColumnMap() if pair else ColumnMap(chosen="completion", rejected="completion",
                                                         chosen_critique="critique",
                                                         rejected_critique="critique")
            record = normalize_row(raw, columns, where, with_critiques=needs_critiques)
            completions = [record.chosen, record.rejected] if pair else [record.chosen]
            critiques = [record.chosen_critique,
                         record.rejected_critique] if pair else [record.chosen_critique]
            rows.append({"raw": raw, "prompt": list(record.prompt), "completions": completions,
                         "critiques": critiques})
    return rows


def _write(path: Path, rows: list[dict], rewards: list[Optional[float]]) -> None:
    position = 0
    with atomic_file(path, "w") as fh:
        for row in rows:
            values = rewards[position : position + len(row["completions"])]
            position += len(row["completions"])
            out = dict(row["raw"])
            if None in values:
                out["error"] = "no critique: its generation failed (see the critique cache)"
            if len(values) == 1:
                out["reward"] = values[0]
            else:
                out["reward_chosen"], out["reward_rejected"] = values
                if None not in values:
                    gap = values[0] - values[1]
                    out["preferred"] = "chosen" if gap > 0 else "rejected" if gap < 0 else "tie"
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
