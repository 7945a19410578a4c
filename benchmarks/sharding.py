"""Sharding on 2 CPU processes: one process vs DDP vs FSDP2, the same data, seed and optimizer steps.

Run by hand; results go to a JSON file:

    python benchmarks/sharding.py --out benchmarks/results/sharding.json

Each mode runs ``conf/fsdp2_cpu.yaml`` (SmolLM2-135M-Instruct RM, arithmetic pairs, 8 optimizer
steps of 2 pairs per rank) through the real CLI. One process accumulates 2 batches per step, so it
takes the same optimizer steps on the same pairs as 2 ranks. A callback (:class:`ShardStats`)
writes per rank: parameters and optimizer state it holds, peak RSS, seconds per step; the
validation loss at the end (16 held-out pairs, synced across ranks) is the agreement check.
``fsdp2_lora`` trains LoRA adapters (r 16, attention projections) and the head under FSDP2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
MODES = {
    "single_process": ["--trainer.devices", "1", "--trainer.strategy", "auto",
                       "--trainer.accumulate_grad_batches", "2"],
    "ddp": ["--trainer.strategy", "ddp"],
    "fsdp2": [],  # the config as shipped
    # LoRA on the attention projections; its own learning rate, so its loss is not comparable.
    "fsdp2_lora": ["--model.lora", '{"r": 16, "alpha": 32, "dropout": 0.0}', "--model.lr", "1e-4"],
}


def _local_numel(t: torch.Tensor) -> int:
    return t.to_local().numel() if hasattr(t, "to_local") else t.numel()


class ShardStats(L.Callback):
    """Per-rank memory and speed figures, written to ``$SHARDING_STATS_DIR/rank<r>.json``."""

    def __init__(self):
        self.step_times: list[float] = []
        self._began = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._began = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.step_times.append(time.perf_counter() - self._began)

    def on_train_end(self, trainer, module):
        # The optimizer holds what a rank keeps between steps (FSDP2: its shards). The module's
        # registered parameters are not a fair count here: after the last validation forward,
        # FSDP2's root unit stays gathered until the next backward.
        optimizer = trainer.optimizers[0]
        held = [p for group in optimizer.param_groups for p in group["params"]]
        state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
        for m in module.modules():  # FSDP2 units back to their shards, to count what is kept
            if hasattr(m, "reshard") and hasattr(m, "unshard"):
                m.reshard()
        stats = {
            "rank": trainer.global_rank,
            "parameters_held": sum(_local_numel(p) for p in held),
            "all_parameters_held": sum(_local_numel(p) for p in module.parameters()),  # frozen ones too
            "parameter_bytes": sum(_local_numel(p) * p.element_size() for p in held),
            "optimizer_state_bytes": sum(_local_numel(v) * v.element_size() for v in state if v.dim() > 0),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            # The first step includes warm-up (allocations, first gathers): left out of the mean.
            "s_per_step": round(sum(self.step_times[1:]) / max(len(self.step_times) - 1, 1), 3),
            "steps": trainer.global_step,
        }
        out = Path(os.environ["SHARDING_STATS_DIR"]) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(stats))


def run_mode(name: str, extra: list[str], work: Path) -> dict:
    stats_dir = work / name / "stats"
    stats_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHARDING_STATS_DIR": str(stats_dir), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lightning_critrm", "fit", "--config", str(REPO / "conf" / "fsdp2_cpu.yaml"),
           "--trainer.default_root_dir", str(work / name), "--trainer.enable_progress_bar", "false",
           "--trainer.callbacks+=benchmarks.sharding.ShardStats", *extra]
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((work / name / "lightning_logs").glob("version_*"))))
    events.Reload()
    val = events.Scalars("val/loss")
    ranks = [json.loads(p.read_text()) for p in sorted(stats_dir.glob("rank*.json"))]
    return {"wall_s": round(wall, 1), "final_val_loss": val[-1].value,
            "val_loss_by_step": [(e.step, e.value) for e in val],
            "ranks": ranks}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sharding.json"))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    result = {
        "command": "python benchmarks/sharding.py",
        "machine": {"cpu": cpu, "cpus": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
                    "torch": torch.__version__, "platform": platform.platform()},
        "config": "conf/fsdp2_cpu.yaml (SmolLM2-135M-Instruct, 8 steps, 2 pairs per rank per step, fp32)",
        "modes": {},
    }
    if Path(args.out).exists() and set(args.modes) != set(MODES):  # rerun some modes, keep the rest
        result["modes"] = json.loads(Path(args.out).read_text())["modes"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.modes:
            print(f"running {name} ...", flush=True)
            result["modes"][name] = run_mode(name, MODES[name], Path(tmp))
            print(json.dumps(result["modes"][name], indent=1), flush=True)
    modes = result["modes"]
    if "single_process" in modes:
        base = modes["single_process"]
        params = base["ranks"][0]["parameters_held"]
        for name, m in modes.items():
            m["parameters_held_share_of_single"] = [
                round(r.get("all_parameters_held", r["parameters_held"]) / params, 4) for r in m["ranks"]
            ]
            m["val_loss_minus_single"] = m["final_val_loss"] - base["final_val_loss"]
            m["command"] = "python benchmarks/sharding.py --modes " + name
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
