"""TRL's RewardTrainer on pre-tokenized pairs, timed per step: the peer side of train_throughput.py.

Runs in TRL's own virtual environment (see train_throughput.py), reads the pairs that script
tokenized (the very token ids our trainer trains on), and prints one JSON object: per-step
seconds, real and processed tokens, and losses.

    python benchmarks/trl_reward_run.py --ids ids.jsonl --model FOLDER --steps 4 --batch 8 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference


class CountingCollator(DataCollatorForPreference):
    """TRL's own collator, counting what each batch holds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[dict] = []

    def torch_call(self, examples):
        out = super().torch_call(examples)
        self.batches.append({"real": int(out["attention_mask"].sum()),
                             "processed": int(out["input_ids"].numel())})
        return out


class StepTimer(TrainerCallback):
    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        sync()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        sync()
        self.seconds.append(time.perf_counter() - self._start)


def sync() -> None:
    """Wait for queued GPU work, so a step's time is its kernels', not their launch's."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="fp32")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--pad-token", default="<|endoftext|>")
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sequential", action="store_true",
                        help="take the pairs in file order, batch after batch (no shuffling)")
    parser.add_argument("--group-by-length", action="store_true",
                        help="transformers' length-grouped sampler "
                             "(train_sampling_strategy='group_by_length')")
    parser.add_argument("--head", help="a torch file with the score head's initial weight [1, hidden]")
    args = parser.parse_args()

    rows = [json.loads(line) for line in open(args.ids)]
    # ``length``: what the length-grouped sampler sorts by; a pair pads to its longer sequence.
    dataset = Dataset.from_list([{"chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"],
                                  "length": max(len(r["chosen_ids"]), len(r["rejected_ids"]))} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # not EOS: the classifier reads the last non-pad token, our scoring EOS
    tokenizer.pad_token = args.pad_token
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=torch.float32)
    if args.head:
        with torch.no_grad():
            model.score.weight.copy_(torch.load(args.head))
    config = RewardConfig(
        output_dir=args.out + ".trainer", per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, bf16=args.precision == "bf16",
        gradient_checkpointing=True, logging_steps=1, report_to=[], save_strategy="no",
                          use_cpu=args.device == "cpu",
        dataloader_num_workers=0, max_length=args.max_length, disable_dropout=True, seed=0,
                          pad_token=args.pad_token,
        train_sampling_strategy=("sequential" if args.sequential
                                 else "group_by_length" if args.group_by_length else "random"),
        # the sampler reads ``length``; the collator ignores it
        remove_unused_columns=not args.group_by_length,
    )
    timer = StepTimer()
    collator = CountingCollator(pad_token_id=tokenizer.pad_token_id)
    trainer = RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                            data_collator=collator, callbacks=[timer])
    kept = len(trainer.train_dataset)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {"pairs_kept": kept, "seconds": timer.seconds, "batches": collator.batches[: len(timer.seconds)],
              "losses": losses, "trl": __import__("trl").__version__,
              "transformers": __import__("transformers").__version__}
    with open(args.out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
