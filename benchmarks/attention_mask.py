"""What an attention mask costs a training step: the causal fast path against masked attention.

Run by hand; results go to a JSON file:

    python benchmarks/attention_mask.py --out benchmarks/results/attention_mask.json

SmolLM2-135M-Instruct (the backbone alone), ``--rows`` rows of ``--tokens`` random tokens, bf16
autocast, gradient checkpointing, forward and backward timed ``--repeats`` times per case:

* ``no_mask``: what right-padded batches of a causal decoder now run (attention's ``is_causal``
  path, which skips the blocks above the diagonal);
* ``padding_mask``: a 2-D padding mask (one row padded from token 1,500), as before;
* ``block_mask``: a 4-D boolean mask (the shared-prompt layout's kind; here plain causal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "attention_mask.json")
    args = parser.parse_args()

    import torch

    from lightning_critrm.backbones import load_backbone

    torch.manual_seed(0)
    model = load_backbone("smollm2-135m-instruct", dtype=torch.float32)
    model.gradient_checkpointing_enable()
    model.train()
    rows, tokens = args.rows, args.tokens
    ids = torch.randint(100, 40000, (rows, tokens))
    positions = torch.arange(tokens).expand(rows, tokens)
    padding = torch.ones(rows, tokens, dtype=torch.long)
    padding[-1, min(1500, tokens - 1):] = 0
    causal = torch.ones(tokens, tokens, dtype=torch.bool).tril()[None, None].expand(rows, 1, tokens,
                                                                                    tokens).contiguous()
    cases = {"no_mask": None, "padding_mask": padding, "block_mask": causal}
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
              "precision": "bf16 autocast",
              "gradient_checkpointing": True, "rows": rows, "tokens": tokens,
              "command": "python benchmarks/attention_mask.py " + " ".join(f"--{k} {v}" for k,
                      v in vars(args).items() if k != "out")}
    for name, mask in cases.items():
        seconds = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                hidden = model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            hidden[:, -1].float().sum().backward()
            seconds.append(round(time.perf_counter() - began, 2))
        result[name] = {"seconds": seconds, "best_s": min(seconds)}
        print(name, seconds, flush=True)
    for name in ("padding_mask", "block_mask"):
        saved = 1 - result["no_mask"]["best_s"] / result[name]["best_s"]
        result[name]["time_saved_without_mask"] = round(saved, 3)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
