"""Training throughput against TRL's RewardTrainer, on the same pairs, token ids, batch and steps.

Pairs: MT-Bench pairs with GPT-4 critiques from ../shared/data, chat-templated with the critique
after each completion by this project's formatter, kept only where both sequences fit
``--max-length`` (TRL drops longer pairs, we would truncate them: benchmarking on pairs that fit
keeps the work identical). TRL gets the very token ids we train on, so both sides process the same
sequences; TRL pads a batch to its longest sequence in arrival order. Ours groups by length and
lays the batch out in one of four ways (``--modes``):

* ``padded``: one sequence per row, right-padded (so a causal decoder runs without a mask);
* ``packed``: several sequences to a row with no padding between them;
* ``shared``: one row per pair, ``prompt | chosen rest | rejected rest``, the prompt once;
* ``packed_shared``: those rows packed several to a row.

``trl_matched`` checks the losses rather than the speed: TRL trains on the pairs in the order of our
padded run's batches (no shuffling) from the score head our run starts from, so with ``padded`` in
the same invocation the per-step losses can be compared (``loss_agreement`` in the summary).

Each contender runs in its own process, alternating, ``--rounds`` times, over the same pairs in one
pass; every step is timed by default. (Leaving a first step untimed would leave different pairs
untimed on each side: ours puts its heaviest batch first, TRL takes a random one.) A step's time is forward, backward and optimizer step (data
loading excluded on both sides). Reported per mode: real tokens/s (the tokens of the sequences),
processed tokens/s (padding included; below the real tokens when prompts are shared), the padded
share of the processed positions, the ratio to TRL, peak RSS of the process, and the losses of the
timed steps.

TRL runs in its own virtual environment (its pins may differ from ours):

    python -m venv ../trl_venv && ../trl_venv/bin/pip install torch==2.13.0 \
        && ../trl_venv/bin/pip install -c constraints.txt trl==1.16.0
    python benchmarks/train_throughput.py --trl-python ../trl_venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "critiques" / "mtbench_vicuna_gpt4_critique_pairs.jsonl"
BACKBONE = "smollm2-135m-instruct"
CONFIG_SEED = 0  # seed_everything of conf/mtbench_smollm2.yaml, which our runs use
PACKED = ("packed", "packed_shared")
SHARED = ("shared", "packed_shared")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def select_pairs(args, work: Path) -> tuple[list[dict], str]:
    """Pairs that fit, as raw rows (for our trainer) and token ids (for TRL); the backbone folder."""
    from lightning_critrm.backbones import resolve_backbone
    from lightning_critrm.data import PreferenceDataModule

    dm = PreferenceDataModule(source=str(SOURCE), backbone=BACKBONE, max_length=args.max_length, val_fraction=0.0,
                              critiques="columns", cache_dir=str(work / "cache"))
    dm.setup("fit")
    data = dm.train_dataset
    fits = [i for i, cut in enumerate(data["truncated"]) if not cut]
    needed = args.pairs_per_step * (args.steps + args.warmup)
    chosen = sorted(random.Random(args.seed).sample(fits, needed))
    rows = []
    with open(work / "pairs.jsonl", "w") as raw, open(work / "ids.jsonl", "w") as ids:
        for i in chosen:
            row = data[i]
            raw.write(json.dumps({"prompt": json.loads(row["prompt"]), "chosen": row["chosen"], "rejected": row["rejected"],
                                  "chosen_critique": row["chosen_critique"],
                                  "rejected_critique": row["rejected_critique"]}) + "\n")
            ids.write(json.dumps({"chosen_ids": row["chosen_input_ids"], "rejected_ids": row["rejected_input_ids"]}) + "\n")
            rows.append(row)
    print(f"{len(fits)} of {len(data)} pairs fit {args.max_length} tokens; benchmarking {len(chosen)}", flush=True)
    return rows, resolve_backbone(BACKBONE)


def timed(command: list[str], log: Path) -> tuple[float, int]:
    """Run ``command``; (wall seconds, peak RSS in MB)."""
    rss = log.with_suffix(".rss")
    started = time.monotonic()
    with open(log, "w") as fh:
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", str(rss), *command], stdout=fh, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if code != 0:
        raise SystemExit(f"{command[:4]} failed ({code}); see {log}")
    return time.monotonic() - started, int(rss.read_text().strip().splitlines()[-1]) // 1024


def run_ours(args, work: Path, mode: str, round_: int) -> dict:
    root = work / f"ours_{mode}_{round_}"
    command = [
        sys.executable, "-m", "lightning_critrm", "fit", "--config", str(REPO / "conf" / "mtbench_smollm2.yaml"),
        "--data.source", str(work / "pairs.jsonl"), "--data.val_fraction", "0", "--data.max_length", str(args.max_length),
        "--data.batch_size", str(args.pairs_per_step), "--data.packing", str(mode in PACKED).lower(),
        "--data.shared_prompt", str(mode in SHARED).lower(),
        # Packed rows as long as the longest allowed sequence: short sequences fill them up.
        "--data.packing_row_tokens", str(args.max_length),
        "--data.cache_dir", str(work / "cache"), "--data.seed", str(args.seed),
        "--model.lr", str(args.lr), "--model.lr_scheduler", "lightning_critrm.model.schedules.ConstantLR",
        "--model.gradient_checkpointing", "true", "--trainer.precision", args.precision,
        "--trainer.max_steps", str(args.steps + args.warmup), "--trainer.max_epochs", "-1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1",
        "--trainer.val_check_interval", "null", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root), "--checkpoint.save_last", "false", "--checkpoint.save_top_k", "0",
    ]
    wall, rss = timed(command, work / f"ours_{mode}_{round_}.log")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((root / "lightning_logs").iterdir())), size_guidance={"scalars": 0})
    events.Reload()
    speed = {e.step: e.value for e in events.Scalars("train/tokens_per_s")}
    losses = {e.step: e.value for e in events.Scalars("train/loss_step")}
    batches = our_batches(args, work, mode)
    steps = sorted(speed)  # the k-th logged step trained on the k-th batch
    assert len(steps) == args.steps + args.warmup and sorted(losses) == steps, (steps, sorted(losses))
    timed_steps = range(args.warmup, len(steps))
    shutil.rmtree(root / "checkpoints", ignore_errors=True)
    return {"mode": mode, "round": round_, "wall_s": round(wall, 1), "peak_rss_mb": rss,
            "seconds": [batches[k]["real"] / speed[steps[k]] for k in timed_steps],
            "batches": [batches[k] for k in timed_steps], "losses": [losses[steps[k]] for k in timed_steps]}


def our_batches(args, work: Path, mode: str) -> list[dict]:
    """The batches our run trained on, rebuilt (their order depends on data.seed alone)."""
    from lightning_critrm.data import PreferenceDataModule

    dm = PreferenceDataModule(source=str(work / "pairs.jsonl"), backbone=BACKBONE, max_length=args.max_length,
                              val_fraction=0.0, batch_size=args.pairs_per_step, seed=args.seed,
                              packing=mode in PACKED, shared_prompt=mode in SHARED, packing_row_tokens=args.max_length,
                              critiques="columns", cache_dir=str(work / "cache"))
    dm.setup("fit")
    return [{"real": b.num_tokens, "processed": b.num_positions, "padding": b.num_padding, "pairs": b.ids.tolist()}
            for b in dm.train_dataloader()]


def write_matched_inputs(args, work: Path) -> None:
    """For ``trl_matched``: the pairs in the order of our padded run's batches, and the score head
    our run starts from (the CLI seeds, then builds the model; so do we)."""
    import lightning as L
    import torch

    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.model import CritiqueRewardModel

    dm = PreferenceDataModule(source=str(work / "pairs.jsonl"), backbone=BACKBONE, max_length=args.max_length,
                              val_fraction=0.0, batch_size=args.pairs_per_step, seed=args.seed,
                              critiques="columns", cache_dir=str(work / "cache"))
    dm.setup("fit")
    with open(work / "ids_matched.jsonl", "w") as out:
        for batch in our_batches(args, work, "padded"):
            for i in batch["pairs"]:
                row = dm.train_dataset[i]
                out.write(json.dumps({"chosen_ids": row["chosen_input_ids"], "rejected_ids": row["rejected_input_ids"]}) + "\n")
    L.seed_everything(CONFIG_SEED)
    model = CritiqueRewardModel(backbone=BACKBONE)
    model.configure_model()
    torch.save(model.reward_model.score.weight.detach().clone(), work / "head.pt")


def run_trl(args, work: Path, backbone_dir: str, round_: int, matched: bool = False) -> dict:
    out = work / f"trl{'_matched' if matched else ''}_{round_}.json"
    ids = work / ("ids_matched.jsonl" if matched else "ids.jsonl")
    command = [args.trl_python, str(REPO / "benchmarks" / "trl_reward_run.py"), "--ids", str(ids),
               "--model", backbone_dir, "--steps", str(args.steps + args.warmup), "--batch", str(args.pairs_per_step),
               "--precision", "bf16" if "bf16" in args.precision else "fp32", "--lr", str(args.lr),
               "--max-length", str(args.max_length), "--out", str(out)]
    if matched:
        command += ["--sequential", "--head", str(work / "head.pt")]
    wall, rss = timed(command, out.with_suffix(".log"))
    result = json.loads(out.read_text())
    timed_steps = slice(args.warmup, None)
    return {"mode": "trl_matched" if matched else "trl", "round": round_, "wall_s": round(wall, 1), "peak_rss_mb": rss,
            "seconds": result["seconds"][timed_steps], "batches": result["batches"][timed_steps],
            "losses": result["losses"][timed_steps], "pairs_kept": result["pairs_kept"], "versions": {
                "trl": result["trl"], "transformers": result["transformers"]}}


def summarize(runs: list[dict]) -> dict:
    by_mode: dict[str, dict] = {}
    for mode in dict.fromkeys(r["mode"] for r in runs):
        mine = [r for r in runs if r["mode"] == mode]
        seconds = sum(sum(r["seconds"]) for r in mine)
        real = sum(b["real"] for r in mine for b in r["batches"])
        processed = sum(b["processed"] for r in mine for b in r["batches"])
        padding = sum(b.get("padding", b["processed"] - b["real"]) for r in mine for b in r["batches"])
        per_round = [sum(b["real"] for b in r["batches"]) / sum(r["seconds"]) for r in mine]
        by_mode[mode] = {
            "real_tokens_per_s": round(real / seconds, 1), "processed_tokens_per_s": round(processed / seconds, 1),
            "padded_share": round(padding / processed, 4), "real_tokens_per_s_by_round": [round(x, 1) for x in per_round],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
            "mean_loss_timed_steps": round(sum(sum(r["losses"]) for r in mine) / sum(len(r["losses"]) for r in mine), 4),
        }
    for mode, entry in by_mode.items():
        if "trl" in by_mode and not mode.startswith("trl"):
            entry["ratio_to_trl"] = round(entry["real_tokens_per_s"] / by_mode["trl"]["real_tokens_per_s"], 2)
    matched = [r for r in runs if r["mode"] == "trl_matched"]
    padded = [r for r in runs if r["mode"] == "padded"]
    if matched and padded:  # the same pairs in the same batches from the same head: per-step losses
        pairs = list(zip(padded[0]["losses"], matched[0]["losses"]))
        by_mode["loss_agreement"] = {"padded_vs_trl_matched": [[round(a, 4), round(b, 4)] for a, b in pairs],
                                     "max_abs_difference": round(max(abs(a - b) for a, b in pairs), 4)}
    return by_mode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl-python", default=str(REPO.parent / "trl_venv" / "bin" / "python"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps first (see above before using)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pairs-per-step", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--precision", default="bf16-mixed", help="ours; TRL gets the same (bf16 autocast or fp32)")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="trl,padded,packed,shared,packed_shared")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_throughput.json")
    args = parser.parse_args()
    if not SOURCE.exists():
        raise SystemExit(f"needs the shared MT-Bench pairs at {SOURCE}")
    work = Path(tempfile.mkdtemp(prefix="train_throughput-"))
    _, backbone_dir = select_pairs(args, work)
    if "trl_matched" in args.modes.split(","):
        write_matched_inputs(args, work)
    runs = []
    for round_ in range(args.rounds):
        for mode in args.modes.split(","):
            if mode.startswith("trl"):
                run = run_trl(args, work, backbone_dir, round_, matched=mode == "trl_matched")
            else:
                run = run_ours(args, work, mode, round_)
            runs.append(run)
            real = sum(b["real"] for b in run["batches"])
            print(f"round {round_} {mode}: {real / sum(run['seconds']):.1f} real tokens/s, losses "
                  f"{[round(x, 4) for x in run['losses']]}, peak RSS {run['peak_rss_mb']} MB", flush=True)
    result = {
        "what": "real tokens/s training SmolLM2-135M-Instruct as a reward model on MT-Bench pairs with GPT-4 "
                "critiques that fit max_length, same token ids, batch and steps; ours vs TRL RewardTrainer",
        "cpu": cpu_name(), "cores": os.cpu_count(), "precision": args.precision,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "trl_python")},
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
        "summary": summarize(runs), "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
