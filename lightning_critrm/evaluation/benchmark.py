"""One interface for reward-model benchmarks: rows, their critiques and token ids, then scores,
reports and a table.

A benchmark row is a prompt with several completions. Every benchmark formats them exactly like
training (the data module's :class:`~lightning_critrm.data.completion_encoder.CompletionEncoder`:
same formatter, critiques from the same critic and cache), scores each completion once across
ranks, and hands the rewards back per row to its own scoring rule. The per-epoch callback and the
``rewardbench`` subcommand run any :class:`Benchmark`; a new benchmark implements the four
abstract methods.
"""

from __future__ import annotations

import json
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.utilities import rank_zero_only

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.critique import CriticConfig, CritiqueSummary
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.layout import SequenceBatches

log = logging.getLogger(__name__)

# (row index, reward of each of its completions in the row's order; NaN where it was not scored)
RowRewards = list[tuple[int, list[float]]]
# A table line: (label, value, count, note); value None prints "-"
TableLine = tuple[str, Optional[float], Optional[int], str]


class Benchmark(ABC):
    """A benchmark's rows prepared for one reward model's input format.

    Args:
        source: The benchmark's hub set (default) or local files in its layout.
        subsets: Only these subsets (default: all in ``source``).
        max_rows: Only a sample of N rows, drawn from every subset in proportion to its size
            (:func:`sample_rows`: the same rows every time).
        critic: Critic of the evaluation critiques when training read critiques from columns.
        batch_size: Sequences per forward pass.
        sort_by_length: Batch sequences of similar length together.
        num_text_examples: Rows shown in TensorBoard as text.
    """

    name: str  # prefix of its metrics (``name/overall``) and folder of its records
    default_source: str  # its hub set
    unscored_counts_as: str  # what a row that could not be scored (no critique) counts as
    table_headers: tuple[str, str, str] = ("subset", "score", "rows")

    def __init__(self, source: Optional[str] = None, subsets: Optional[list[str]] = None,
                 max_rows: Optional[int] = None,
                 critic: Optional[CriticConfig] = None, batch_size: int = 16, sort_by_length: bool = True,
                 num_text_examples: int = 3):
        self.source, self.subsets, self.max_rows = source or self.default_source, subsets, max_rows
        self.critic, self.batch_size, self.sort_by_length = critic, batch_size, sort_by_length
        self.num_text_examples = num_text_examples
        self.rows: Optional[list] = None
        self.scored: list[tuple[int, int]] = []  # (row index, index of its first sequence) of each scored row
        self.sequences: list[list[int]] = []  # token ids of the completions of every scored row, in order
        self.critiques: list[tuple[Optional[str], ...]] = []  # of each scored row's completions
        self.without_critique: list[str] = []  # ids of the rows that could not be scored

    # -- what a benchmark defines -------------------------------------------------------------
    @abstractmethod
    def load(self) -> list:
        """Every row of ``source`` (``subsets`` only), each with ``id``, ``subset`` and ``prompt``."""

    @abstractmethod
    def completions(self, row) -> Sequence[str]:
        """The row's completions, in the order its scoring rule reads their rewards."""

    @abstractmethod
    def scores(self, rewards: RowRewards) -> Any:
        """The benchmark's scores (with ``subsets``, ``overall`` and ``partial``) from every row's rewards."""

    @abstractmethod
    def table_lines(self, scores) -> list[TableLine]:
        """The lines of the result table."""

    def record_fields(self, scores) -> dict[str, Any]:
        """What the JSON record holds beside the subsets, rows and overall."""
        return {}

    def record_row(self, row, rewards: list[Optional[float]]) -> dict[str, Any]:
        return {"id": row.id, "subset": row.subset, "rewards": rewards}

    def label(self, row, k: int) -> str:
        """What the ``k``-th completion of ``row`` is called in text examples."""
        return f"completion {k}"

    def metrics(self, scores) -> dict[str, float]:
        """Scalars logged as ``<name>/<key>``."""
        values = dict(scores.subsets)
        if scores.overall is not None:
            values["overall"] = scores.overall
        return values

    # -- preparing ----------------------------------------------------------------------------
    def load_rows(self) -> list:
        rows = self.load()
        return rows if self.max_rows is None else sample_rows(rows, self.max_rows)

    def items(self, rows: Sequence) -> list[tuple[tuple, str]]:
        return [(row.prompt, text) for row in rows for text in self.completions(row)]

    def fill_critiques(self, encoder: CompletionEncoder,
                       require_cached: Optional[bool] = None) -> Optional[CritiqueSummary]:
        """Generate the missing critiques of every completion scored here (None: the model reads none)."""
        return encoder.for_evaluation(self.critic).fill(self.items(self.load_rows()), require_cached)

    def prepare(self, encoder: CompletionEncoder, generate: bool,
                require_cached: Optional[bool] = None) -> None:
        """Load rows, get their critiques (``generate``: fill missing ones first; only one process
        should) and tokenize them. A row with a completion whose critique failed is not scored (it
        is never scored without the critique the model was trained to read): it counts as
        :attr:`unscored_counts_as`, and the table and the record say how many there were."""
        if self.rows is not None:
            return
        encoder = encoder.for_evaluation(self.critic)
        rows = self.load_rows()
        items = self.items(rows)
        if generate:
            summary = encoder.fill(items, require_cached)
            if summary is not None and rank_zero_only.rank == 0:
                log.info(f"{self.name} {self.source}: {summary}")
        critiques = encoder.critiques(items)
        self.rows, self.scored, self.sequences, self.critiques, self.without_critique = rows, [], [], [], []
        position = 0
        for i, row in enumerate(rows):
            texts = self.completions(row)
            own = critiques[position : position + len(texts)]
            position += len(texts)
            if encoder.reads_critiques and any(c is None for c in own):
                self.without_critique.append(row.id)
                continue
            self.scored.append((i, len(self.sequences)))
            self.critiques.append(tuple(own))
            self.sequences.extend(encoder.encode(row.prompt, text, c) for text, c in zip(texts, own))
        if self.without_critique and rank_zero_only.rank == 0:
            log.warning(f"{self.name}: {len(self.without_critique)} row(s) have a completion without its "
                        f"critique (its generation failed) and count as {self.unscored_counts_as}: "
                        f"{self.without_critique[:10]}")
        self.pad_token_id = encoder.pad_token_id
        self.layout = encoder.layout

    def batches(self) -> SequenceBatches:
        """The prepared sequences in batches, dealt across ranks when iterated (a row's completions
        together, with their prompt once, under ``data.layout.shared_prompt``)."""
        return SequenceBatches(self.sequences, self.batch_size, self.pad_token_id, self.layout,
                               self.sort_by_length, groups=self.groups())

    def groups(self) -> list[list[int]]:
        """Indices of the prepared sequences of each scored row (its completions share its prompt)."""
        ends = [start for _, start in self.scored[1:]] + [len(self.sequences)]
        return [list(range(start, end)) for (_, start), end in zip(self.scored, ends)]

    # -- scoring ------------------------------------------------------------------------------
    def row_rewards(self, rewards: dict[int, float]) -> RowRewards:
        """Every row's rewards from rewards by sequence index; NaN for a row that was not scored."""
        if sorted(rewards) != list(range(len(self.sequences))):
            raise RuntimeError(
                f"{len(rewards)} of {len(self.sequences)} sequences scored: each must be scored once")
        first = dict(self.scored)
        out = []
        for i, row in enumerate(self.rows):
            n = len(self.completions(row))
            out.append((i, [rewards[first[i] + k] for k in range(n)] if i in first else [math.nan] * n))
        return out

    def report(self, loggers: Sequence, log_dir: Path, scores, rewards: RowRewards,
               at: Optional[tuple[int, int]] = None, record_name: Optional[str] = None) -> Path:
        """Log ``<name>/*`` scalars (and text examples) to ``loggers`` and write the JSON record
        (scores and per-row rewards) into ``log_dir/<name>/<record_name>.json``; returns its path.
        ``at``: the (epoch, step) of the model scored (None for an exported model: logged at step
        0, the record named ``record_name``)."""
        epoch, step = at if at is not None else (None, None)
        metrics = {f"{self.name}/{key}": value for key, value in self.metrics(scores).items()}
        metrics[f"{self.name}/rows_without_critique"] = float(len(self.without_critique))
        for logger in loggers:
            logger.log_metrics(metrics, step=step or 0)
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text") and self.num_text_examples:
                experiment.add_text(f"{self.name}/examples", self.examples(rewards), step or 0)
        record = {
            "source": self.source, "step": step, "overall": scores.overall, "partial": scores.partial,
            **self.record_fields(scores), "subsets": scores.subsets, "rows_per_subset": scores.rows,
            f"without_critique_counted_{self.unscored_counts_as}": self.without_critique,
            # None (JSON null), not NaN: a row without its critique has no reward
            "rows": [self.record_row(self.rows[i], [None if math.isnan(v) else v for v in values])
                     for i, values in rewards],
        }
        out_dir = log_dir / self.name
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{record_name or f'epoch{epoch}-step{step}'}.json"
        write_text_atomically(path, json.dumps(record, indent=1))
        if rank_zero_only.rank == 0:
            overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
            partial = " (partial: see the table)" if scores.partial else ""
            at_step = "" if step is None else f" step {step}"
            log.info(f"{self.name}{at_step}: overall {overall}{partial}; details in {path}")
        return path

    def examples(self, rewards: RowRewards) -> str:
        """The first scored rows as markdown: prompt, then each completion with its reward and critique."""
        blocks = []
        critiques = dict(zip((i for i, _ in self.scored), self.critiques))
        for i, values in [r for r in rewards if r[0] in critiques][: self.num_text_examples]:
            row = self.rows[i]
            parts = [f"**{row.subset} / {row.id}**", f"*prompt:* {row.prompt[-1]['content'][:500]}"]
            for k, (text, reward, critique) in enumerate(zip(self.completions(row), values, critiques[i])):
                parts.append(f"*{self.label(row, k)}* (reward {reward:.3f}): {text[:500]}\n\n"
                             f"*critique:* {(critique or '-')[:500]}")
            blocks.append("\n\n".join(parts))
        return "\n\n---\n\n".join(blocks)

    def table(self, scores) -> str:
        """The result table: one line per section or subset, partial ones marked."""
        return format_table(self.table_lines(scores), self.table_headers)


def sample_rows(rows: Sequence, n: int) -> list:
    """``n`` of ``rows``, in their order: each subset gets its share of ``n`` in proportion to its
    size (largest remainders round; ties to the larger, then the earlier subset), its rows drawn at
    random with a seed of the subset's name, so a sample is the same every time and keeps the
    benchmark's weighting (each subset's share of every micro-averaged score). A subset whose share
    rounds to none is missing, and tables mark what it belongs to partial."""
    if n >= len(rows):
        return list(rows)
    members: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        members.setdefault(row.subset, []).append(i)
    # Shares in whole numbers (quota, remainder / len(rows)): no float decides a tie.
    share = {name: divmod(n * len(found), len(rows)) for name, found in members.items()}
    quota = {name: whole for name, (whole, _) in share.items()}
    # A stable sort: equal remainders and sizes keep the order the subsets first appear in.
    by_remainder = sorted(members, key=lambda s: (-share[s][1], -len(members[s])))
    for name in by_remainder[: n - sum(quota.values())]:
        quota[name] += 1
    kept = {i for name, found in members.items() for i in random.Random(name).sample(found, quota[name])}
    return [row for i, row in enumerate(rows) if i in kept]


def format_table(lines: Sequence[TableLine],
                 headers: tuple[str, str, str] = ("subset", "score", "rows")) -> str:
    """Plain-text table of (label, value in [0, 1] shown as a percentage, count, note) lines."""
    width = max(6, len(headers[2]))
    first = max([28, len(headers[0])] + [len(line[0]) for line in lines])
    out = [f"{headers[0]:<{first}} {headers[1]:>8} {headers[2]:>{width}}"]
    for label, value, count, note in lines:
        shown = "-" if value is None else f"{100 * value:.1f}"
        out.append(f"{label:<{first}} {shown:>8}" + ("" if count is None else f" {count:>{width}}") + note)
    return "\n".join(out)
