"""Where a small critic job's time goes on CPU: vLLM engine start vs generation, per dtype and mode.

Run by hand; results go to a JSON file:

    python benchmarks/critic_start.py --out benchmarks/results/critic_start.json

For each (dtype, enforce_eager) it builds the quickstart critic (SmolLM2-135M-Instruct through
vLLM, max_model_len 1024, 48 new tokens) in a fresh process, times the engine start, then writes
critiques for the first ``--n`` quickstart completions. ``--emulate-avx2`` runs every case with
torch's and oneDNN's kernels capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2``,
``ONEDNN_MAX_CPU_ISA=AVX2``): an approximation of a CPU without AVX-512 and native bf16, not one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = [("float32", True), ("float32", False), ("bfloat16", True), ("bfloat16", False)]


def one_case(dtype: str, eager: bool, n: int) -> dict:
    """Runs in a fresh process: engine start, then n critiques."""
    from lightning_critrm.critique import CriticConfig, Engine, Sampling, pair_items
    from lightning_critrm.critique.vllm_backend import VLLMCritic
    from lightning_critrm.data.arithmetic import arithmetic_pairs

    config = CriticConfig(backend="vllm", model="smollm2-135m-instruct", dtype=dtype,
                          sampling=Sampling(max_new_tokens=48),
                          engine=Engine(max_model_len=1024, enforce_eager=eager))
    items = pair_items(arithmetic_pairs(200, seed=0))[:n]
    began = time.perf_counter()
    critic = VLLMCritic(config)
    start_s = time.perf_counter() - began
    began = time.perf_counter()
    out = critic.generate([config.prompt.render(p, c) for p, c in items])
    gen_s = time.perf_counter() - began
    tokens = sum(g.completion_tokens for g in out)
    critic.close()
    return {"dtype": dtype, "enforce_eager": eager, "engine_start_s": round(start_s, 1),
            "critiques": len(out), "completion_tokens": tokens, "generate_s": round(gen_s, 1),
            "tokens_per_s": round(tokens / gen_s, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="critiques per case")
    parser.add_argument("--emulate-avx2", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "critic_start.json"))
    parser.add_argument("--case", nargs=2, metavar=("DTYPE", "EAGER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # the child process
        print(json.dumps(one_case(args.case[0], args.case[1] == "1", args.n)))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    if args.emulate_avx2:
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    flags = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":",
            1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    flags = " --emulate-avx2" if args.emulate_avx2 else ""
    result = {"command": "python benchmarks/critic_start.py" + flags,
              "machine": {"cpu": cpu, "cpus": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
                          "emulated_avx2": args.emulate_avx2, "platform": platform.platform()},
              "cases": []}
    for dtype, eager in CASES:
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--case", dtype,
                               "1" if eager else "0"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        case = json.loads(proc.stdout.strip().splitlines()[-1])
        case["process_wall_s"] = round(time.perf_counter() - began, 1)
        result["cases"].append(case)
        print(json.dumps(case), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
