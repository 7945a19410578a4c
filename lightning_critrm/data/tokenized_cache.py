"""Tokenize preference pairs once, store them with ``datasets``, reuse them on every rerun.

The cache key covers everything that changes the token ids (source content, columns, critique
mode and template, tokenizer, max length, this module's format version) and nothing else, so a
rerun with another learning rate or batch size loads the stored Arrow files instead of
retokenizing. Folders are written under a temporary name and renamed into place: a killed run
never leaves a cache entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightning_critrm.atomic_write import atomic_folder
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.errors import InputError

log = logging.getLogger(__name__)

# Bump when the token layout produced by SequenceFormatter changes.
# 2: the chat template's whole text, critique inside the assistant turn; 3: pairs with identical
# completions left out when read
FORMAT_VERSION = 3


@dataclass
class TokenizedStats:
    """What tokenization did to a source, logged so nothing is dropped silently."""

    pairs_read: int
    pairs_truncated: int
    pairs_dropped_identical: int  # the same tokens once truncated, critiques included
    pairs_dropped_failed_critique: int = 0
    rows_skipped: list[str] = field(default_factory=list)  # bad rows left out, by location
    identical_completions: list[str] = field(default_factory=list)  # pairs left out, by location

    @property
    def pairs_kept(self) -> int:
        return (self.pairs_read - self.pairs_dropped_identical - self.pairs_dropped_failed_critique
                - len(self.identical_completions))


def tokenizer_identity(tokenizer) -> dict:
    template = getattr(tokenizer, "chat_template", None) or ""
    return {
        "name": tokenizer.name_or_path,
        "class": type(tokenizer).__name__,
        "vocab": len(tokenizer),
        "template": hashlib.sha1(str(template).encode()).hexdigest()[:12],
        "specials": str(sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())),
    }


def critique_contents(pairs, dropped_failed: int) -> str:
    """Fingerprint of the critiques a set of pairs carries. Generated critiques live in a SQLite
    file that can be swapped, regenerated or filled in later; keying on what was read (not on
    the file's name) means a tokenized entry never holds other critiques than the store."""
    h = hashlib.sha1(str(dropped_failed).encode())
    for pair in pairs:
        for critique in (pair.chosen_critique, pair.rejected_critique):
            h.update((critique or "").encode())
            h.update(b"\0")
    return h.hexdigest()[:16]


def cache_key(parts: dict) -> str:
    blob = json.dumps({**parts, "format_version": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def _encode_rows(rows: dict, formatter: SequenceFormatter, critique_targets: bool = False) -> dict:
    out: dict[str, list] = {"chosen_input_ids": [], "rejected_input_ids": [], "truncated": [], "keep": [],
                            "length": []}
    if critique_targets:
        out["chosen_critique_span"], out["rejected_critique_span"] = [], []
    for prompt_json, chosen, rejected, c_crit, r_crit in zip(
        rows["prompt"], rows["chosen"], rows["rejected"], rows["chosen_critique"], rows["rejected_critique"]
    ):
        prompt = json.loads(prompt_json)
        c = formatter.encode(prompt, chosen, c_crit or None)
        r = formatter.encode(prompt, rejected, r_crit or None)
        out["chosen_input_ids"].append(c.input_ids)
        out["rejected_input_ids"].append(r.input_ids)
        out["truncated"].append(c.truncated or r.truncated)
        # Identical inputs give r_c == r_r: zero gradient and a guaranteed "wrong" pair.
        out["keep"].append(c.input_ids != r.input_ids)
        out["length"].append(max(len(c.input_ids), len(r.input_ids)))
        if critique_targets:  # [start, end) of each critique's tokens; [] where there is none
            for side, completion, critique in (("chosen", chosen, c_crit), ("rejected", rejected, r_crit)):
                span = formatter.critique_span(prompt, completion, critique or None)
                out[f"{side}_critique_span"].append(list(span) if span else [])
    return out


def build_or_load(
    pairs_loader, formatter: SequenceFormatter, key: str, cache_dir: Path, critique_targets: bool = False
) -> tuple["datasets.Dataset", TokenizedStats]:  # noqa: F821
    """The tokenized pairs for ``key``: loaded from ``cache_dir`` or built from ``pairs_loader()``,
    which returns a :class:`~lightning_critrm.data.sources.SourcePairs`. The key must
    cover everything that changes the token ids, generated critiques included
    (:func:`critique_contents`), and ``critique_targets`` (columns ``chosen_critique_span`` and
    ``rejected_critique_span``: where each critique's tokens are, for a model that learns them)."""
    import datasets

    folder = cache_dir / "tokenized" / key
    if (folder / "stats.json").exists():
        log.debug("loading tokenized pairs from %s", folder)
        stats = TokenizedStats(**json.loads((folder / "stats.json").read_text()))
        return datasets.load_from_disk(str(folder / "data")), stats

    read = pairs_loader()
    pairs = read.pairs
    if not pairs:
        raise InputError("the data source holds no preference pairs with a critique")
    table = {
        "prompt": [json.dumps(list(p.prompt), ensure_ascii=False) for p in pairs],
        "prompt_key": [p.prompt_key() for p in pairs],
        "chosen": [p.chosen for p in pairs],
        "rejected": [p.rejected for p in pairs],
        "chosen_critique": [p.chosen_critique or "" for p in pairs],
        "rejected_critique": [p.rejected_critique or "" for p in pairs],
    }
    if pairs[0].margin is not None:
        table["margin"] = [p.margin for p in pairs]
    ds = datasets.Dataset.from_dict(table)
    ds = ds.map(
        _encode_rows,
        batched=True,
        batch_size=256,
        fn_kwargs={"formatter": formatter, "critique_targets": critique_targets},
        new_fingerprint=key,
        desc="tokenizing pairs",
    )
    stats = TokenizedStats(
        pairs_read=len(ds) + read.failed_critique + len(read.identical),
        pairs_truncated=int(sum(ds["truncated"])),
        pairs_dropped_identical=int(len(ds) - sum(ds["keep"])),
        pairs_dropped_failed_critique=read.failed_critique,
        rows_skipped=list(read.skipped),
        identical_completions=list(read.identical),
    )
    ds = ds.filter(lambda keep: keep, input_columns="keep", desc="dropping identical pairs")
    with atomic_folder(folder, complete_marker="stats.json") as tmp:
        ds.save_to_disk(str(tmp / "data"))
        (tmp / "stats.json").write_text(json.dumps(asdict(stats)))
    return datasets.load_from_disk(str(folder / "data")), stats


def describe(stats: TokenizedStats, label: str) -> str:
    dropped = {
        "identical completions": len(stats.identical_completions),
        "the same tokens once truncated": stats.pairs_dropped_identical,
        "critique generation failed": stats.pairs_dropped_failed_critique,
    }
    reasons = "".join(f", {n} dropped ({why})" for why, n in dropped.items() if n)
    return f"{label}: {stats.pairs_read} pairs read, {stats.pairs_truncated} truncated{reasons}"
