"""What a run's data came to, told once: pair counts in the log and TensorBoard, and every row a
source lost on the way, named by line."""

from __future__ import annotations

import logging
from typing import Optional

from lightning.pytorch.utilities import rank_zero_only

from lightning_critrm.data.tokenized_cache import TokenizedStats, describe

log = logging.getLogger(__name__)

# Rows a source loses on the way, named one by one: stats field -> (TensorBoard text tag, what happened).
LEFT_OUT = {
    "rows_skipped": ("skipped_rows", "bad row(s) skipped (data.on_bad_row: skip)"),
    "identical_completions": ("identical_pairs", "pair(s) dropped: chosen and rejected are the same text"),
}


def report_data(stats: dict[str, TokenizedStats], train, val, critiques: str,
                logger: Optional[object]) -> None:
    """Log each source's tokenizing summary and the train/val split (rank 0), warn with the rows left
    out, and give ``logger`` (when there is one) the counts as scalars at step 0 and the rows left out
    as TensorBoard text (``data/<source>_<tag>``)."""
    lines = [describe(s, name) for name, s in stats.items()]
    lines.append(
        f"train: {len(train)} pairs over {len(set(train['prompt_key']))} prompts; "
        f"val: {len(val)} pairs over {len(set(val['prompt_key']))} prompts; critiques: {critiques}"
    )
    if rank_zero_only.rank == 0:
        log.info("\n".join(lines))
        for name, s in stats.items():
            for attr, (_, what) in LEFT_OUT.items():
                if where := getattr(s, attr):
                    log.warning(f"{name}: {len(where)} {what}:\n" + _listing(where, "  "))
    if logger is None:
        return
    metrics = {"data/train_pairs": len(train), "data/val_pairs": len(val)}
    add_text = getattr(getattr(logger, "experiment", None), "add_text", None)  # TensorBoard
    for name, s in stats.items():
        metrics[f"data/{name}_pairs_truncated"] = s.pairs_truncated
        metrics[f"data/{name}_pairs_dropped"] = s.pairs_dropped_identical
        metrics[f"data/{name}_pairs_dropped_failed_critique"] = s.pairs_dropped_failed_critique
        metrics[f"data/{name}_pairs_dropped_identical_completions"] = len(s.identical_completions)
        metrics[f"data/{name}_rows_skipped"] = len(s.rows_skipped)
        for attr, (tag, _) in LEFT_OUT.items():
            if (where := getattr(s, attr)) and add_text is not None:
                add_text(f"data/{name}_{tag}", "\n".join(f"    {w}" for w in where), 0)
    logger.log_metrics(metrics, step=0)


def _listing(lines: list[str], indent: str, most: int = 20) -> str:
    """``lines`` one per line, the first ``most`` of them (all are in TensorBoard's text tab)."""
    shown = [indent + line for line in lines[:most]]
    if len(lines) > most:
        shown.append(f"{indent}... and {len(lines) - most} more (TensorBoard: the data/ text entries)")
    return "\n".join(shown)
