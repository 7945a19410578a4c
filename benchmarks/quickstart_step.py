"""Where a quickstart training step's time goes: fp32 against bf16 autocast, padded rows against the
shared prompt, on the quickstart's own model and batches.

    VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/quickstart_step.py   (run by hand after the quickstart
    has filled its caches, nothing else on the machine; ~3 min on 2 cores)

Times forward, backward and an AdamW step of SmolLM2-135M on 6 batches of 4 pairs (after one
warm-up batch) in each of the four settings and writes benchmarks/results/quickstart_step.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_critrm.cli import main  # noqa: E402
from lightning_critrm.hardware import cpu_has_native_bf16  # noqa: E402
from lightning_critrm.layout import Layout  # noqa: E402

SETTINGS = [("fp32", "padded", False, Layout()), ("fp32", "shared prompt", False, Layout(shared_prompt=True)),
            ("bf16 autocast", "padded", True, Layout()),
            ("bf16 autocast", "shared prompt", True, Layout(shared_prompt=True))]


def run() -> dict:
    cli = main(["--config", str(REPO / "conf" / "quickstart.yaml"),
                "--trainer.default_root_dir", str(REPO / "runs" / "quickstart_step")], run=False)
    data, model = cli.datamodule, cli.model
    data.connect(model.attends_per_sequence)
    data.prepare_data()
    data.setup("fit")
    model.configure_model()
    net = model.reward_model
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-5)
    rows = []
    for precision, layout_name, bf16, layout in SETTINGS:
        data.layout = layout
        batches = iter(data.train_dataloader())
        seconds, tokens = [], 0
        for k in range(7):
            batch = next(batches)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                rewards = net(batch)
            chosen, rejected = batch.split_pairs(rewards)
            torch.nn.functional.logsigmoid(chosen - rejected).mean().neg().backward()
            optimizer.step()
            optimizer.zero_grad()
            if k:  # the first batch warms up
                seconds.append(time.perf_counter() - start)
                tokens += batch.num_tokens
        rows.append({"precision": precision, "layout": layout_name,
                     "seconds_per_step": round(sum(seconds) / len(seconds), 2),
                     "real_tokens_per_step": round(tokens / len(seconds)),
                     "real_tokens_per_s": round(tokens / sum(seconds), 1)})
        print(rows[-1], flush=True)
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    cpu = names[0] if names else "?"
    return {"cpu": f"{cpu}, {subprocess.check_output(['nproc']).decode().strip()} cores",
            "cpu_native_bf16": cpu_has_native_bf16(), "model": "smollm2-135m-instruct",
            "batch": "4 pairs of the quickstart's training set", "steps_timed": 6, "results": rows}


if __name__ == "__main__":
    result = run()
    out = REPO / "benchmarks" / "results" / "quickstart_step.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
