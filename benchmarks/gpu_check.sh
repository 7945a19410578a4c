#!/usr/bin/env bash
# One GPU, under 5 minutes: a ~1B-parameter random-init Llama reward model trained for a few steps in
# bf16 under FSDP2 (ModelParallelStrategy, one process) with per-layer activation checkpointing.
# Prints tokens/s, peak GPU memory and MFU against the GPU's bf16 peak; writes the same to
# benchmarks/results/gpu_check.json.
#
#   bash benchmarks/gpu_check.sh                 # BF16_PEAK_TFLOPS=989 for an H100/H200 SXM (dense)
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh   # a tiny model on CPU: checks the script runs
#
# Needs torch with CUDA, lightning and transformers; nothing is downloaded (the model is built
# from a config, the tokens are random).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python - <<'EOF'
import json, os, time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from transformers import LlamaConfig, LlamaModel

from lightning_critrm.batch import RewardBatch
from lightning_critrm.model.module import CritiqueRewardModel
from lightning_critrm.model.reward_model import RewardModel
from lightning_critrm.model.sharding import fully_shard_reward_model, layer_classes

PEAK = float(os.environ.get("BF16_PEAK_TFLOPS", "989")) * 1e12
SMOKE = os.environ.get("GPU_CHECK_SMOKE") == "1"
DEVICE = "cpu" if SMOKE else "cuda"
SEQ, PAIRS, STEPS = (64, 2, 4) if SMOKE else (2048, 4, 12)
CONFIG = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16,
                     num_key_value_heads=4, vocab_size=32000, max_position_embeddings=SEQ)
if SMOKE:
    CONFIG = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
                         num_key_value_heads=1, head_dim=64, vocab_size=256, max_position_embeddings=SEQ)


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


class RandomInitRM(CritiqueRewardModel):
    """The project's LightningModule, its backbone built from a config instead of weights."""

    def configure_model(self):
        if self.reward_model is not None:
            return
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False):  # parameters on meta, buffers real
            backbone = LlamaModel(CONFIG)
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model = RewardModel(backbone)
        param_dtype = None if SMOKE else torch.bfloat16
        fully_shard_reward_model(model, self.device_mesh["data_parallel"], layer_classes(backbone), param_dtype)
        buffers = {n: b.clone() for n, b in model.named_buffers()}  # rotary frequencies: no checkpoint has them
        model.to_empty(device=DEVICE)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        self.reward_model = model


class Batches(torch.utils.data.IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        while True:
            seqs = torch.randint(0, CONFIG.vocab_size, (2 * PAIRS, SEQ), generator=g).tolist()
            yield RewardBatch.padded(seqs, 0, num_pairs=PAIRS)


class Clock(L.Callback):
    def __init__(self):
        self.times = []

    def on_train_batch_start(self, *a):
        sync()
        self.t = time.perf_counter()

    def on_train_batch_end(self, *a):
        sync()
        self.times.append(time.perf_counter() - self.t)


clock = Clock()
model = RandomInitRM(lr=1e-5)
trainer = L.Trainer(accelerator="cpu" if SMOKE else "gpu", devices=1, strategy=ModelParallelStrategy(),
                    precision="32-true" if SMOKE else "bf16-mixed",
                    max_steps=STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    callbacks=[clock], use_distributed_sampler=False)
if not SMOKE:
    torch.cuda.reset_peak_memory_stats()
trainer.fit(model, torch.utils.data.DataLoader(Batches(), batch_size=None))
params = sum(p.numel() for p in model.parameters())
tokens = 2 * PAIRS * SEQ
step_s = sum(clock.times[2:]) / len(clock.times[2:])  # the first steps warm up
# 6 N flops per token for forward + backward, plus one more forward (2 N) for checkpointing,
# plus attention (12 * layers * hidden * seq per token, with recompute).
flops_per_token = 8 * params + 12 * CONFIG.num_hidden_layers * CONFIG.hidden_size * SEQ * 4 / 3
result = {
    "gpu": "cpu smoke run" if SMOKE else torch.cuda.get_device_name(), "parameters": params, "seq_len": SEQ, "sequences_per_step": 2 * PAIRS,
    "s_per_step": round(step_s, 3), "tokens_per_s": round(tokens / step_s, 1),
    "peak_memory_gib": None if SMOKE else round(torch.cuda.max_memory_allocated() / 2**30, 2),
    "mfu": round(flops_per_token * tokens / step_s / PEAK, 3), "bf16_peak_tflops": PEAK / 1e12,
}
print(json.dumps(result, indent=1))
if not SMOKE:
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
EOF
