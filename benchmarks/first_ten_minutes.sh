#!/usr/bin/env bash
# The first ten minutes, timed as a newcomer meets them:
#
#   bash benchmarks/first_ten_minutes.sh      (run by hand, nothing else on the machine; ~12 min on 2 cores)
#
# Clones this checkout's HEAD into a temporary folder, runs `make install`, then from empty caches
# `make quickstart` (the machine's own path: bf16 where the CPU has it natively) and the all-fp32
# path that CPUs without native bf16 take (`--trainer.precision 32-true --data.critic.dtype
# float32`), then the quickstart again on the filled caches (does training after the critic run as
# fast as without it?). Writes benchmarks/results/first_ten_minutes.json: wall times, lines printed,
# processes left behind, the critique and training speeds, validation accuracy and loss, the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$(mktemp -d /tmp/first_ten_minutes.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/clone"
cd "$WORK/clone"
OFFLINE=(env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_CPU_KVCACHE_SPACE=1)

timed() {  # name, command...: wall seconds, output lines, processes left behind
  local name=$1; shift
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" > "$WORK/$name.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  local left
  left=$(pgrep -f "EngineCor|lightning_critrm fit" | wc -l || true)
  echo "$name $rc $(echo "$t1 - $t0" | bc) $(wc -l < "$WORK/$name.out") $left" >> "$WORK/times"
  [ "$rc" = 0 ] || { tail -20 "$WORK/$name.out"; exit 1; }
}

timed install make install
LIGHTNING_CRITRM_CACHE=$WORK/cache timed quickstart make quickstart
LIGHTNING_CRITRM_CACHE=$WORK/cache_fp32 timed all_fp32 "${OFFLINE[@]}" .venv/bin/python -m lightning_critrm fit \
  --config conf/quickstart.yaml --trainer.precision 32-true --data.critic.dtype float32 \
  --trainer.default_root_dir runs/quickstart_fp32
LIGHTNING_CRITRM_CACHE=$WORK/cache timed cached_rerun "${OFFLINE[@]}" .venv/bin/python -m lightning_critrm fit \
  --config conf/quickstart.yaml --trainer.default_root_dir runs/quickstart_rerun

.venv/bin/python - "$WORK" "$REPO/benchmarks/results/first_ten_minutes.json" <<'EOF'
import json, re, subprocess, sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_critrm.hardware import cpu_has_native_bf16

work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = {"quickstart": "runs/quickstart", "all_fp32": "runs/quickstart_fp32", "cached_rerun": "runs/quickstart_rerun"}
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
result = {"cpu": f"{cpu}, {subprocess.check_output(['nproc']).decode().strip()} cores",
          "cpu_native_bf16": cpu_has_native_bf16(), "commit": subprocess.check_output(
              ["git", "rev-parse", "HEAD"], cwd=work / "clone").decode().strip(), "steps": {}}
for line in (work / "times").read_text().splitlines():
    name, rc, wall, lines, left = line.split()
    step = {"wall_s": round(float(wall), 1), "lines_printed": int(lines), "processes_left": int(left)}
    if name in runs:
        events = EventAccumulator(str(work / "clone" / runs[name] / "lightning_logs" / "version_0")).Reload()
        step["val_acc"] = {s.step + 1: round(s.value, 3) for s in events.Scalars("val/acc")}
        step["val_loss"] = {s.step + 1: round(s.value, 4) for s in events.Scalars("val/loss")}
        step["train_real_tokens_per_s"] = round(events.Scalars("train/real_tokens_per_s")[-1].value, 1)
        critiques = re.search(r"(\d+) generated.*?; (\d+) tokens in ([\d.]+) s", (work / f"{name}.out").read_text())
        if critiques:
            step["critiques"] = {"generated": int(critiques[1]), "tokens": int(critiques[2]),
                                 "seconds": float(critiques[3])}
    result["steps"][name] = step
out.write_text(json.dumps(result, indent=1) + "\n")
print(json.dumps(result, indent=1))
EOF
