"""RewardBench scoring speed: length-grouped batches vs unsorted batches, in one run.

Run by hand; results go to a JSON file:

    python benchmarks/rewardbench_scoring.py --out benchmarks/results/rewardbench_scoring.json

SmolLM2-135M-Instruct as the reward model (untrained head: speed, not accuracy), critiques off,
rows from ../shared/data/rewardbench/rewardbench_filtered_partial.jsonl (1,403 official rows, or a
seeded sample of ``--rows`` of them), the same rows, model and batch size for both orders.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RB = REPO.parent / "shared" / "data" / "rewardbench" / "rewardbench_filtered_partial.jsonl"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="seeded sample of this many rows (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rewardbench_scoring.json"))
    args = parser.parse_args()

    import torch

    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval
    from lightning_critrm.model import CritiqueRewardModel
    from lightning_critrm.model.reward_pass import SequenceBatches, score_batches

    tmp = tempfile.mkdtemp()
    rows = [json.loads(line) for line in RB.read_text().splitlines()]
    if args.rows:
        rows = random.Random(0).sample(rows, args.rows)
    source = Path(tmp) / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = PreferenceDataModule(source="builtin:arithmetic:8", backbone="smollm2-135m-instruct", critiques="none",
                              max_length=args.max_length, cache_dir=tmp)
    model = CritiqueRewardModel(backbone="smollm2-135m-instruct")
    model.configure_model()
    evaluation = RewardBenchEval(source=str(source), batch_size=args.batch_size)
    evaluation.prepare(dm.completion_encoder, generate=False)
    sequences = evaluation.sequences
    lengths = [len(s) for s in sequences]
    cpu = torch.device("cpu")

    def reward_sequences(seqs, batch_size, sort_by_length=True, progress=False):
        batches = SequenceBatches(seqs, batch_size, dm.pad_token_id, sort_by_length)
        rewards = score_batches(model, batches, cpu, progress=progress)
        return [rewards[i] for i in range(len(seqs))]

    def padded_tokens(sort):
        order = sorted(lengths) if sort else lengths
        return sum(max(order[i : i + args.batch_size]) * len(order[i : i + args.batch_size])
                   for i in range(0, len(order), args.batch_size))

    reward_sequences(sequences[:4], 4)  # warm-up
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
              "model": "smollm2-135m-instruct", "rows": len(rows), "sequences": len(sequences),
              "real_tokens": sum(lengths), "batch_size": args.batch_size, "max_length": args.max_length}
    rewards = {}
    for name, sort in (("length_grouped", True), ("unsorted", False)):
        began = time.perf_counter()
        rewards[name] = reward_sequences(sequences, args.batch_size, sort_by_length=sort, progress=True)
        wall = time.perf_counter() - began
        result[name] = {"wall_s": round(wall, 2), "sequences_per_s": round(len(sequences) / wall, 2),
                        "padded_tokens": padded_tokens(sort),
                        "padding_share": round(1 - sum(lengths) / padded_tokens(sort), 4)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    result["speedup"] = round(result["unsorted"]["wall_s"] / result["length_grouped"]["wall_s"], 2)
    result["max_abs_reward_difference"] = max(abs(a - b) for a, b in zip(rewards["length_grouped"], rewards["unsorted"]))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
