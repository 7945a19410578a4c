#!/usr/bin/env bash
# Does an export score the same in the official `rewardbench` package as in `score`?
#
#   bash benchmarks/interop_rewardbench.sh [EXPORT_DIR]      (run by hand; ~15 min on 2 CPU cores)
#
# Without EXPORT_DIR it trains and exports the quickstart's plain RM (--data.critiques none); the
# package builds its own prompt -> completion conversations, so a critique-reading export cannot
# be given its critiques there. It builds a separate venv (.venv-rewardbench: rewardbench 0.1.4,
# which pins transformers 4.51, on the same CPU torch), scores ROWS (default 300) seeded RewardBench
# rows from ../shared/data/rewardbench/ with both, and writes
# benchmarks/results/interop_rewardbench.json: the largest |difference| of rewards (goal <= 1e-3)
# and the accuracy each reports. The package's pipeline sends inputs to "cuda" unconditionally; its
# launcher (benchmarks/interop_rewardbench.py official) sends them to the CPU where there is no GPU,
# and leaves the package's files as installed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=$REPO/.venv/bin/python
RB_VENV=${RB_VENV:-$REPO/.venv-rewardbench}
ROWS=${ROWS:-300}
WORK=$REPO/runs/interop_rewardbench
DATA=$REPO/../shared/data/rewardbench/rewardbench_filtered_partial.jsonl
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -f "$DATA" ] || { echo "no RewardBench rows at $DATA (../shared/data)"; exit 1; }
mkdir -p "$WORK"

EXPORT=${1:-$WORK/export}
if [ ! -d "$EXPORT" ]; then
  plain=(--config conf/quickstart.yaml --data.critiques none --trainer.default_root_dir "$WORK/run")
  [ -f "$WORK/run/checkpoints/last.ckpt" ] || "$PY" -m lightning_critrm fit "${plain[@]}"
  "$PY" -m lightning_critrm export "${plain[@]}" --ckpt_path last --out "$EXPORT"
fi

if [ ! -f "$RB_VENV/.installed" ]; then
  python3 -m venv "$RB_VENV"
  "$RB_VENV/bin/pip" install -q torch==2.13.0  # the local CPU build, before anything pulls another
  # trl 0.19+ wants a newer transformers; the package imports pkg_resources, gone from setuptools 81.
  "$RB_VENV/bin/pip" install -q rewardbench==0.1.4 trl==0.18.2 'setuptools<81'
  touch "$RB_VENV/.installed"
fi

"$PY" benchmarks/interop_rewardbench.py prepare --data "$DATA" --rows "$ROWS" --out "$WORK/rows"

# The package names its outputs after --model and --output_dir (concatenated): run it from WORK
# with the export linked there under a short name.
ln -sfn "$(realpath "$EXPORT")" "$WORK/model"
rm -rf "$WORK/official"
(cd "$WORK" && /usr/bin/time -f "official: %e s" "$RB_VENV/bin/python" "$REPO/benchmarks/interop_rewardbench.py" official \
  --model model --dataset rows/official_rows.jsonl --load_json --not_quantized --torch_dtype float32 \
  --batch_size 8 --output_dir official/ > official.log 2>&1) || { tail -30 "$WORK/official.log"; exit 1; }
tail -1 "$WORK/official.log"

/usr/bin/time -f "score: %e s" "$PY" -m lightning_critrm score --model "$EXPORT" --input "$WORK/rows/score_rows.jsonl" \
  --output "$WORK/score.jsonl" --device cpu

"$PY" benchmarks/interop_rewardbench.py compare --model "$EXPORT" --ours "$WORK/score.jsonl" \
  --official "$WORK/official/model_outputs.jsonl" --official-summary "$WORK/official/model.json" \
  --result benchmarks/results/interop_rewardbench.json
