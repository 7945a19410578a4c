"""``python -m lightning_critrm score``: rewards from an exported reward model, for new rows.

Reads only the exported folder and the rows: no training data, no checkpoint, no config file. The
folder's ``config.json`` says how its inputs were made (``lightning_critrm`` recipe); a model that
read generated critiques gets them from the same critic (template, sampling and model), missing
ones generated and cached in the same SQLite cache as training uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.atomic_write import atomic_file
from lightning_critrm.backbones import cache_root
from lightning_critrm.critique import CriticConfig
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.data.sources import local_files, rows_of_file
from lightning_critrm.errors import InputError, MissingInputError
from lightning_critrm.layout import SequenceBatches
from lightning_critrm.locations import writable_file, writable_folder
from lightning_critrm.prompts import CritiqueFormat
from lightning_critrm.records import ColumnMap, RecordError, normalize_row


def score(
    model: str,
    input: str,
    output: str,
    batch_size: int = 16,
    cache_dir: Optional[str] = None,
    device: str = "auto",
    critic_base_url: Optional[str] = None,
    critic_api_key_env: Optional[str] = None,
    normalize: bool = False,
) -> None:
    """Score rows with a reward model written by ``export``, and write one JSON line per row.

    Rows (``.jsonl``/``.json``/``.parquet``) hold a ``prompt`` (a string or chat messages) and either
    a ``completion`` (scored alone: ``reward``) or ``chosen`` and ``rejected`` (a pair:
    ``reward_chosen``, ``reward_rejected`` and ``preferred``). A model that read critiques from
    data columns needs them here too (``critique``, or ``chosen_critique`` and
    ``rejected_critique``); one that read generated critiques gets them from its recorded critic.
    A row whose critique failed gets ``null`` rewards and the ``error``. The output file is
    written whole or not at all.

    Args:
        model: Folder written by ``python -m lightning_critrm export``.
        input: Rows to score.
        output: JSON lines to write, one per input row, in input order.
        batch_size: Sequences per forward pass.
        cache_dir: Where generated critiques are cached (default: ``$LIGHTNING_CRITRM_CACHE`` or
            ``~/.cache/lightning_critrm``, as in training).
        device: ``auto`` (a GPU where there is one), ``cpu`` or ``cuda``.
        critic_base_url: Where the recorded critic is served, when it is an endpoint (``openai``
            backend): the export records what the critic is, never where it ran.
        critic_api_key_env: Environment variable holding that endpoint's API key.
        normalize: Write ``(reward - mean) / std`` with the validation statistics the export
            stored (as OpenRLHF's ``normalize_reward``), not the raw reward.
    """
    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise MissingInputError(f"--model {model}: not a folder written by `export` (no config.json)")
    recipe = json.loads((folder / "config.json").read_text()).get("lightning_critrm")
    if not recipe:
        raise InputError(
            f"--model {model}: config.json has no `lightning_critrm` recipe; export it with this tool")
    stats = recipe.get("reward_stats")
    if normalize and not stats:
        raise InputError(f"--model {model}: no reward statistics to normalize with; export it with "
                         "--reward_stats true")
    rows = read_score_rows(input, needs_critiques=recipe["critiques"] == "columns")

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    critique_format = (
        CritiqueFormat(recipe["critique_template"], recipe["critique_template_version"])
        if recipe["critiques"] != "none" else None
    )
    formatter = SequenceFormatter(tokenizer, recipe["max_length"], critique_format)
    items = [(row["prompt"], completion) for row in rows for completion in row["completions"]]
    endpoint = {"base_url": critic_base_url, "api_key_env": critic_api_key_env}
    critiques = _critiques(recipe, rows, items, Path(cache_dir) if cache_dir else cache_root(), endpoint)

    sequences: list[Optional[list[int]]] = [
        None if critique_format is not None and critique is None
        else formatter.encode(prompt, completion, critique).input_ids
        for (prompt, completion), critique in zip(items, critiques)
    ]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    net = AutoModelForSequenceClassification.from_pretrained(folder).to(target).eval()
    rewards = _rewards(net, sequences, tokenizer.pad_token_id, batch_size, target)
    if normalize:
        rewards = [None if r is None else (r - stats["mean"]) / stats["std"] for r in rewards]
    _write(Path(output), rows, rewards)
    scored = sum(r is not None for r in rewards)
    print(f"scored {scored} of {len(rewards)} completions in {len(rows)} rows: {output}")


def score_parser():
    """The ``score`` options, from :func:`score`'s docstring."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(description=score.__doc__.split("\n\n")[0])
    parser.add_function_arguments(score, as_group=False)
    return parser


def run_score_command(options: dict[str, Any]) -> None:
    """Run :func:`score` with parsed ``options``, other libraries' output (a vLLM critic's) going to
    ``<output>.log``."""
    values = {k: v for k, v in options.items() if k != "config"}
    writable_file(values["output"], "--output")  # before scoring, not after it
    if values.get("cache_dir"):
        writable_folder(values["cache_dir"], "--cache_dir")
    log = Path(f"{values['output']}.log")
    if console.send_other_output_to(log):
        print(f"other libraries' output: {log} (LIGHTNING_CRITRM_SHOW_LOGS=1 shows it here)")
    else:
        console.show_package_logs()
    score(**values)


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


def _critiques(recipe: dict, rows: list[dict], items: list, cache_dir: Path,
               endpoint: dict) -> list[Optional[str]]:
    if recipe["critiques"] == "none":
        return [None] * len(items)
    if recipe["critiques"] == "columns":
        return [c for row in rows for c in row["critiques"]]
    values = dict(recipe["critic"])
    if values.get("backend") == "openai":
        if not endpoint["base_url"]:
            raise InputError(
                f"this model read critiques by the endpoint critic {values.get('model')!r}: give "
                "--critic_base_url (and --critic_api_key_env if it needs a key)"
            )
        values["endpoint"] = {k: v for k, v in endpoint.items() if v}
    critic = CriticConfig.from_dict(values)
    store = CritiqueStore.for_critic(critic, cache_dir)
    store.fill(items, require_cached=False)
    return store.lookup(items)


def _rewards(net, sequences: Sequence[Optional[list[int]]], pad: int, batch_size: int,
             device) -> list[Optional[float]]:
    kept = [i for i, s in enumerate(sequences) if s is not None]
    rewards: list[Optional[float]] = [None] * len(sequences)
    with torch.no_grad(), tqdm(total=len(kept), desc="scoring", unit="seq",
                               file=console.progress_stream()) as bar:
        # sorted by length, right-padded
        for batch in SequenceBatches([sequences[i] for i in kept], batch_size, pad):
            batch = batch.to(device)
            logits = net(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()[:, 0]
            for k, value in zip(batch.ids.tolist(), logits.tolist()):
                rewards[kept[k]] = value
            bar.update(batch.num_sequences)
    return rewards


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
