"""Training step time per batch layout on one device: padded, packed and shared-prompt rows, each
attended the way the reward model picks for that device, plus packed rows forced through the
one-sequence-at-a-time loop (``sdpa_segments``) to show what it costs there.

Pairs: token ids written by ``train_throughput.py --prepare DIR`` (MT-Bench pairs with critiques,
chat-templated), 8 pairs a batch in file order; the backbone: that folder's config with seeded
random weights (speed does not depend on them). bf16 autocast, gradient checkpointing, AdamW.

    python benchmarks/gpu_layouts.py --work .gpu_work --out benchmarks/results/gpu_layouts.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.reward_model import RewardModel


def batches(ids: Path, pairs: int, count: int) -> list[list[list[int]]]:
    rows = [json.loads(line) for line in ids.open()]
    out = []
    for b in range(count):
        chunk = rows[b * pairs : (b + 1) * pairs]
        out.append([r["chosen_ids"] for r in chunk] + [r["rejected_ids"] for r in chunk])
    return out


def layouts(seqs: list[list[int]], max_length: int) -> dict[str, RewardBatch]:
    n = len(seqs) // 2
    groups = [[i, n + i] for i in range(n)]
    whole = sum(map(len, seqs))
    return {
        "padded": RewardBatch.padded(seqs, 0, num_pairs=n),
        "packed_rows_of_max_length": RewardBatch.packed(seqs, 0, row_tokens=max_length, num_pairs=n),
        "packed_one_row": RewardBatch.packed(seqs, 0, row_tokens=whole, num_pairs=n),
        "shared": RewardBatch.shared_prompt(seqs, groups, 0, num_pairs=n),
        "shared_rows_of_max_length": RewardBatch.shared_prompt(seqs, groups, 0, pack=True,
                                                               row_tokens=max_length,
                                                               num_pairs=n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--batches", type=int, default=6, help="the first is a warm-up")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--layers", type=int, help="fewer layers (a quick check)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from transformers import AutoConfig, AutoModel

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = AutoConfig.from_pretrained(args.work / "backbone")
    if args.layers:
        config.num_hidden_layers = args.layers
    torch.manual_seed(0)
    backbone = AutoModel.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = RewardModel(backbone).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    data = [layouts(seqs, args.max_length) for seqs in batches(args.work / "ids.jsonl", args.pairs,
                                                               args.batches)]

    def step(batch: RewardBatch) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            rewards = model(batch)
        chosen, rejected = batch.split_pairs(rewards)
        (-torch.nn.functional.logsigmoid(chosen - rejected).mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
        return rewards.detach()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    cases = [(name, False) for name in data[0]] + [("packed_one_row", True)]
    results = {}
    for name, loop in cases:
        label = f"{name}, one sequence at a time (forced)" if loop else name
        if loop:  # what the segment loop costs on this device, whatever the model would pick
            RewardModel.attends_per_sequence = lambda self, device: True
        seconds, real, processed = [], 0, 0
        for k, batch_set in enumerate(data):
            batch = batch_set[name].to(device)
            sync()
            started = time.perf_counter()
            step(batch)
            sync()
            if k:  # the first batch warms up
                seconds.append(time.perf_counter() - started)
                real += batch.num_tokens
                processed += batch.num_positions
        results[label] = {"real_tokens_per_s": round(real / sum(seconds), 1),
                          "processed_tokens_per_s": round(processed / sum(seconds), 1),
                          "ms_per_step": round(1000 * sum(seconds) / len(seconds), 1)}
        print(label, results[label], flush=True)
    # Same rewards from every layout (the model has trained a little between them: compare one pass).
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        reference = model(data[0]["padded"].to(device))
        gaps = {name: float((model(batch.to(device)) - reference).abs().max()) for name,
                batch in data[0].items()}
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__,
              "layers": config.num_hidden_layers, "pairs_per_batch": args.pairs,
              "timed_batches": args.batches - 1,
              "precision": "bf16 autocast", "results": results, "max_reward_gap_vs_padded": gaps}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
