"""RewardBench scoring speed: arrival order, length-grouped batches, and the shared-prompt pass, in one run.

Run by hand; results go to a JSON file:

    python benchmarks/rewardbench_scoring.py --out benchmarks/results/rewardbench_scoring.json

SmolLM2-135M-Instruct as the reward model (untrained head: speed, not accuracy), critiques off,
rows from ../shared/data/rewardbench/rewardbench_filtered_partial.jsonl (1,403 official rows, or a
seeded sample of ``--rows`` of them), the same rows, model and batch size (sequences per pass) for
every mode:

* ``unsorted``: sequences in arrival order, padded batches;
* ``length_grouped``: sorted by length, padded batches;
* ``shared_prompt``: each row's chosen and rejected completions in one row with the prompt once
  (``data.layout.shared_prompt``), rows sorted by length.

Speedups are against ``unsorted``; rewards must agree across modes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RB = REPO.parent / "shared" / "data" / "rewardbench" / "rewardbench_filtered_partial.jsonl"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="seeded sample of this many rows (default: "
                                                               "all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: autocast, as the callback runs under bf16-mixed (CPUs with native bf16 "
                             "only)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rewardbench_scoring.json"))
    args = parser.parse_args()

    import torch

    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval
    from lightning_critrm.layout import Layout, SequenceBatches
    from lightning_critrm.model import CritiqueRewardModel
    from lightning_critrm.model.reward_pass import score_batches

    tmp = tempfile.mkdtemp()
    rows = [json.loads(line) for line in RB.read_text().splitlines()]
    if args.rows:
        rows = random.Random(0).sample(rows, args.rows)
    source = Path(tmp) / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dm = PreferenceDataModule(source="builtin:arithmetic:8", backbone="smollm2-135m-instruct",
                              critiques="none",
                              max_length=args.max_length, cache_dir=tmp)
    model = CritiqueRewardModel(backbone="smollm2-135m-instruct")
    model.configure_model()
    evaluation = RewardBenchEval(source=str(source), batch_size=args.batch_size)
    evaluation.prepare(dm.completion_encoder, generate=False)
    sequences = evaluation.sequences
    lengths = [len(s) for s in sequences]
    cpu = torch.device("cpu")

    modes = {
        "unsorted": dict(sort_by_length=False),
        "length_grouped": dict(sort_by_length=True),
        "shared_prompt": dict(sort_by_length=True, layout=Layout(shared_prompt=True),
                              groups=[[k, k + 1] for k in range(0, len(sequences), 2)]),
    }

    def batches_of(mode, seqs=sequences):
        kwargs = dict(modes[mode]) if seqs is sequences else {}
        return SequenceBatches(seqs, args.batch_size, dm.pad_token_id, **kwargs)

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        score_batches(model, batches_of("length_grouped", sequences[:4]), cpu)  # warm-up
    result = {"machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "platform": platform.platform(),
                          "torch_threads": torch.get_num_threads()},
              "model": "smollm2-135m-instruct", "precision": args.precision, "rows": len(rows),
              "sequences": len(sequences),
              "real_tokens": sum(lengths), "batch_size": args.batch_size, "max_length": args.max_length,
              "command": "python benchmarks/rewardbench_scoring.py " + " ".join(sys.argv[1:])}
    rewards = {}
    for mode in modes:
        batches = batches_of(mode)
        laid_out = list(batches.build(batches.plan(0, 1)))
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            scored = score_batches(model, batches, cpu, progress=True, desc=mode)
        wall = time.perf_counter() - began
        rewards[mode] = [scored[i] for i in range(len(sequences))]
        result[mode] = {"wall_s": round(wall, 2), "sequences_per_s": round(len(sequences) / wall, 2),
                        "processed_tokens": sum(b.num_positions for b in laid_out),
                        "padding_share": round(sum(b.num_padding for b in laid_out)
                                               / sum(b.num_positions for b in laid_out), 4)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for mode in ("length_grouped", "shared_prompt"):
        result[mode]["speedup_over_unsorted"] = round(result["unsorted"]["wall_s"] / result[mode]["wall_s"],
                                                      2)
        result[mode]["max_abs_reward_difference_to_unsorted"] = max(
            abs(a - b) for a, b in zip(rewards[mode], rewards["unsorted"]))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
