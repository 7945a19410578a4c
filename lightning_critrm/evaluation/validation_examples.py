"""What the reward model reads, in TensorBoard: a few validation pairs, as text, with their rewards."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only


class ValidationExamples(L.Callback):
    def __init__(self, num_pairs: int = 3):
        """At the end of every validation, the first ``num_pairs`` validation pairs in TensorBoard's
        text tab (``val/examples``): each sequence decoded token for token as the model reads it
        (chat template, completion and critique), and the reward it gave. The same pairs every
        time, so their rewards can be followed through training.

        Args:
            num_pairs: Validation pairs shown.
        """
        self.num_pairs = num_pairs

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, "val_dataset", None)
        if trainer.sanity_checking or dataset is None or not len(dataset) or not self.num_pairs:
            return
        rows = dataset.select(range(min(self.num_pairs, len(dataset))))
        features = [{"chosen_input_ids": c, "rejected_input_ids": r, "index": i}
                    for i, (c, r) in enumerate(zip(rows["chosen_input_ids"], rows["rejected_input_ids"]))]
        batch = datamodule.collator()(features).to(pl_module.device)
        # Every rank runs the forward (a sharded model's is a collective); rank 0 writes.
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            chosen, rejected = batch.split_pairs(pl_module(batch).float())
        if rank_zero_only.rank == 0:
            text = examples_markdown(features, chosen.tolist(), rejected.tolist(), datamodule.tokenizer)
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_text"):
                    experiment.add_text("val/examples", text, trainer.global_step)


def examples_markdown(features: list[dict], chosen: list[float], rejected: list[float], tokenizer) -> str:
    """Markdown of pairs: a heading with both rewards, then each sequence as a code block (the
    tokens decoded with their special tokens, so the chat template shows)."""
    blocks = []
    for f, r_c, r_r in zip(features, chosen, rejected):
        verdict = "chosen ahead" if r_c > r_r else "rejected ahead (wrong)"
        parts = [f"**pair {f['index']}**: chosen {r_c:+.3f}, rejected {r_r:+.3f}, {verdict}"]
        for side in ("chosen", "rejected"):
            text = tokenizer.decode(f[f"{side}_input_ids"], skip_special_tokens=False)
            parts.append(f"*{side}*\n\n" + "\n".join("    " + line for line in text.splitlines()))
        blocks.append("\n\n".join(parts))
    return "\n\n---\n\n".join(blocks)
