"""Training throughput against TRL's RewardTrainer, on the same pairs, token ids, batch and steps.

Pairs: MT-Bench pairs with GPT-4 critiques from ../shared/data, chat-templated with the critique
after each completion by this project's formatter, kept only where both sequences fit
``--max-length`` (TRL drops longer pairs, we would truncate them: benchmarking on pairs that fit
keeps the work identical). TRL gets the very token ids we train on, so both sides process the same
sequences. TRL runs twice: ``trl`` (its default: random order, each batch padded to its longest
sequence) and ``trl_grouped`` (transformers' length-grouped sampler, ``train_sampling_strategy=
"group_by_length"``, pairs sorted by their longer sequence: the fairer peer). Ours groups by
length and lays the batch out in one of four ways:

* ``padded``: one sequence per row, right-padded (so a causal decoder runs without a mask);
* ``packed``: the batch's sequences in one row, padding-free (``data.layout.packing``'s default row);
* ``shared``: one row per pair, ``prompt | chosen rest | rejected rest``, the prompt once;
* ``packed_shared``: those pair rows in one row.

``trl_matched`` checks the losses rather than the speed: TRL trains on the pairs in the order of our
padded run's batches (no shuffling) from the score head our run starts from, so with ``padded`` in
the same invocation the per-step losses can be compared (``loss_agreement`` in the summary).

Each contender runs in its own process, alternating, ``--rounds`` times, over the same pairs in one
pass; every step is timed by default. (Leaving a first step untimed would leave different pairs
untimed on each side: ours puts its heaviest batch first, TRL takes a random one.) A step's time
is forward, backward and optimizer step (data loading excluded on both sides). Reported per mode: real
tokens/s (the tokens of the sequences), processed tokens/s (padding included; below the real tokens when
prompts are shared), the padded share of the processed positions, the ratios to both TRL runs, peak RSS of the
process, and the losses of the timed steps.

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


def gpu_name(args) -> str | None:
    if args.accelerator != "gpu":
        return None
    import torch

    return torch.cuda.get_device_name()


def select_pairs(args, work: Path) -> tuple[list[dict], str]:
    """Pairs that fit, as raw rows (for our trainer) and token ids (for TRL); the backbone folder."""
    from lightning_critrm.backbones import resolve_backbone
    from lightning_critrm.data import PreferenceDataModule

    dm = PreferenceDataModule(source=str(SOURCE), backbone=BACKBONE, max_length=args.max_length,
                              val_fraction=0.0,
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
            raw.write(json.dumps({"prompt": json.loads(row["prompt"]), "chosen": row["chosen"],
                                  "rejected": row["rejected"],
                                  "chosen_critique": row["chosen_critique"],
                                  "rejected_critique": row["rejected_critique"]}) + "\n")
            ids.write(json.dumps({"chosen_ids": row["chosen_input_ids"],
                                  "rejected_ids": row["rejected_input_ids"]}) + "\n")
            rows.append(row)
    print(f"{len(fits)} of {len(data)} pairs fit {args.max_length} tokens; benchmarking {len(chosen)}",
          flush=True)
    return rows, resolve_backbone(BACKBONE)


class RunFailed(RuntimeError):
    """A contender's process failed; the others still run."""


def timed(command: list[str], log: Path, also: Path | None = None) -> tuple[float, int | None, int, str]:
    """Run ``command``; (wall seconds, peak RSS in MB or None where /usr/bin/time is missing, exit
    status, the tails of its output and of ``also`` when it failed)."""
    rss = log.with_suffix(".rss")
    measure = ["/usr/bin/time", "-f", "%M", "-o", str(rss)] if Path("/usr/bin/time").exists() else []
    started = time.monotonic()
    with open(log, "w") as fh:
        code = subprocess.call([*measure, *command], stdout=fh, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    wall = time.monotonic() - started
    lines = rss.read_text().strip().splitlines() if measure and rss.exists() else []
    peak = int(lines[-1]) // 1024 if lines and lines[-1].isdigit() else None
    detail = ""
    if code != 0:
        detail = (log.read_text()[-3000:]
                  + (f"\n{also}:\n" + also.read_text()[-6000:] if also and also.exists() else ""))
    return wall, peak, code, detail


def run_ours(args, work: Path, mode: str, round_: int) -> dict:
    root = work / f"ours_{mode}_{round_}"
    command = [
        sys.executable, "-m", "lightning_critrm", "fit", "--config",
               str(REPO / "conf" / "mtbench_smollm2.yaml"),
        "--model.backbone", args.backbone, "--trainer.accelerator", args.accelerator,
        "--data.source", str(work / "pairs.jsonl"), "--data.val_fraction", "0", "--data.max_length",
               str(args.max_length),
        "--data.batching.batch_size", str(args.pairs_per_step), "--data.layout.packing",
               str(mode in PACKED).lower(),
        # packed: the whole batch in one row (the default)
        "--data.layout.shared_prompt", str(mode in SHARED).lower(),
        "--data.cache_dir", str(work / "cache"), "--data.seed", str(args.seed),
        "--model.lr", str(args.lr), "--model.lr_scheduler", "lightning_critrm.model.schedules.ConstantLR",
        "--model.gradient_checkpointing", "true", "--trainer.precision", args.precision,
        "--trainer.max_steps", str(args.steps + args.warmup), "--trainer.max_epochs", "-1",
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
               "--trainer.log_every_n_steps", "1",
        "--trainer.val_check_interval", "null", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root), "--checkpoint.save_last", "false", "--checkpoint.save_top_k",
               "0",
    ]
    wall, rss, code, detail = timed(command, work / f"ours_{mode}_{round_}.log",
                                    also=root / "logs" / "fit.log")
    if code != 0 and not (root / "lightning_logs").exists():
        raise RunFailed(f"ours {mode} failed ({code}):\n{detail}")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((root / "lightning_logs").iterdir())), size_guidance={"scalars": 0})
    events.Reload()
    speed = {e.step: e.value for e in events.Scalars("train/tokens_per_s")}
    losses = {e.step: e.value for e in events.Scalars("train/loss_step")}
    # What TensorBoard shows on GPUs: model FLOPs utilization over the epoch (every step of it).
    mfu = events.Scalars("train/mfu")[-1].value if "train/mfu" in events.Tags()["scalars"] else None
    batches = our_batches(args, work, mode)
    steps = sorted(speed)  # the k-th logged step trained on the k-th batch
    if len(steps) != args.steps + args.warmup or sorted(losses) != steps:
        raise RunFailed(f"ours {mode}: logged steps {steps}, losses at {sorted(losses)} (exit "
                        f"{code}):\n{detail}")
    timed_steps = range(args.warmup, len(steps))
    shutil.rmtree(root / "checkpoints", ignore_errors=True)
    return {"mode": mode, "round": round_, "wall_s": round(wall, 1), "peak_rss_mb": rss,
            "seconds": [batches[k]["real"] / speed[steps[k]] for k in timed_steps],
            "batches": [batches[k] for k in timed_steps], "losses": [losses[steps[k]] for k in timed_steps],
            "logged_mfu": mfu,
            # A run that trained every step but exited nonzero keeps its figures, and says so.
            **({"exit_code": code, "error": detail[-4000:]} if code else {})}


def our_batches(args, work: Path, mode: str) -> list[dict]:
    """The batches our run trained on, rebuilt (their order depends on data.seed alone)."""
    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.layout import Batching, Layout

    dm = PreferenceDataModule(source=str(work / "pairs.jsonl"), backbone=args.backbone,
                              max_length=args.max_length,
                              val_fraction=0.0, batching=Batching(batch_size=args.pairs_per_step),
                              seed=args.seed,
                              layout=Layout(packing=mode in PACKED, shared_prompt=mode in SHARED),
                              critiques="columns", cache_dir=str(work / "cache"))
    dm.setup("fit")
    return [{"real": b.num_tokens, "processed": b.num_positions, "padding": b.num_padding,
             "pairs": b.ids.tolist()}
            for b in dm.train_dataloader()]


def write_matched_inputs(args, work: Path) -> None:
    """For ``trl_matched``: the pairs in the order of our padded run's batches, and the score head
    our run starts from (the CLI seeds, then builds the model; so do we)."""
    import lightning as L
    import torch

    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.layout import Batching
    from lightning_critrm.model import CritiqueRewardModel

    dm = PreferenceDataModule(source=str(work / "pairs.jsonl"), backbone=args.backbone,
                              max_length=args.max_length,
                              val_fraction=0.0, batching=Batching(batch_size=args.pairs_per_step),
                              seed=args.seed,
                              critiques="columns", cache_dir=str(work / "cache"))
    dm.setup("fit")
    with open(work / "ids_matched.jsonl", "w") as out:
        for batch in our_batches(args, work, "padded"):
            for i in batch["pairs"]:
                row = dm.train_dataset[i]
                out.write(json.dumps({"chosen_ids": row["chosen_input_ids"],
                                      "rejected_ids": row["rejected_input_ids"]}) + "\n")
    L.seed_everything(CONFIG_SEED)
    model = CritiqueRewardModel(backbone=args.backbone)
    model.configure_model()
    torch.save(model.reward_model.score.weight.detach().clone(), work / "head.pt")


def run_trl(args, work: Path, backbone_dir: str, round_: int, mode: str = "trl") -> dict:
    matched = mode == "trl_matched"
    out = work / f"{mode}_{round_}.json"
    ids = work / ("ids_matched.jsonl" if matched else "ids.jsonl")
    command = [args.trl_python, str(REPO / "benchmarks" / "trl_reward_run.py"), "--ids", str(ids),
               "--model", backbone_dir, "--steps", str(args.steps + args.warmup), "--batch",
               str(args.pairs_per_step),
               "--precision", "bf16" if "bf16" in args.precision else "fp32", "--lr", str(args.lr),
               "--max-length", str(args.max_length), "--out", str(out),
               "--device", "cuda" if args.accelerator == "gpu" else "cpu"]
    if matched:
        command += ["--sequential", "--head", str(work / "head.pt")]
    if mode == "trl_grouped":
        command += ["--group-by-length"]
    wall, rss, code, detail = timed(command, out.with_suffix(".log"))
    if code != 0 or not out.exists():
        raise RunFailed(f"TRL {mode} failed ({code}):\n{detail}")
    result = json.loads(out.read_text())
    timed_steps = slice(args.warmup, None)
    return {"mode": mode, "round": round_, "wall_s": round(wall, 1), "peak_rss_mb": rss,
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
            "real_tokens_per_s": round(real / seconds, 1),
                         "processed_tokens_per_s": round(processed / seconds, 1),
            "padded_share": round(padding / processed, 4),
                         "real_tokens_per_s_by_round": [round(x, 1) for x in per_round],
            "peak_rss_mb": max((r["peak_rss_mb"] for r in mine if r["peak_rss_mb"]), default=None),
            "logged_mfu": next((r["logged_mfu"] for r in mine if r.get("logged_mfu") is not None), None),
            "mean_loss_timed_steps": round(sum(sum(r["losses"]) for r in mine)
                                           / sum(len(r["losses"]) for r in mine), 4),
        }
    for mode, entry in by_mode.items():
        for peer in ("trl", "trl_grouped"):
            if peer in by_mode and not mode.startswith("trl"):
                ratio = entry["real_tokens_per_s"] / by_mode[peer]["real_tokens_per_s"]
                entry[f"ratio_to_{peer}"] = round(ratio, 2)
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
    parser.add_argument("--precision", default="bf16-mixed", help="ours; TRL gets the same (bf16 autocast or "
                                                                  "fp32)")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="trl,trl_grouped,padded,packed,shared,packed_shared,trl_matched")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_throughput.json")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"], help="both sides")
    parser.add_argument("--backbone", default=BACKBONE)
    parser.add_argument("--prepare", type=Path, help="only write the pairs and the backbone's "
                                                     "config/tokenizer here")
    parser.add_argument("--work", type=Path, help="a folder written by --prepare: run on it (weights seeded "
                                                  "at random)")
    args = parser.parse_args()
    if args.work:
        random_init(args.work / "backbone", args.seed)
    elif not SOURCE.exists():
        raise SystemExit(f"needs the shared MT-Bench pairs at {SOURCE}")
    if args.work:  # prepared by --prepare (on a machine without ../shared, e.g. a GPU one)
        work = args.work
        backbone_dir = args.backbone = str(work / "backbone")
    else:
        work = Path(tempfile.mkdtemp(prefix="train_throughput-"))
        _, backbone_dir = select_pairs(args, work)
    if args.prepare:
        prepare(work, backbone_dir, args.prepare)
        return
    if "trl_matched" in args.modes.split(","):
        write_matched_inputs(args, work)
    runs, failed = [], []
    for round_ in range(args.rounds):
        for mode in args.modes.split(","):
            try:
                run = run_trl(args, work, backbone_dir, round_, mode) if mode.startswith("trl") else \
                    run_ours(args, work, mode, round_)
            except RunFailed as failure:
                print(failure, flush=True)
                failed.append({"mode": mode, "round": round_, "error": str(failure)[-4000:]})
                continue
            runs.append(run)
            real = sum(b["real"] for b in run["batches"])
            print(f"round {round_} {mode}: {real / sum(run['seconds']):.1f} real tokens/s, losses "
                  f"{[round(x, 4) for x in run['losses']]}, peak RSS {run['peak_rss_mb']} MB", flush=True)
    result = {
        "what": "real tokens/s training SmolLM2-135M-Instruct as a reward model on MT-Bench pairs with GPT-4 "
                "critiques that fit max_length, same token ids, batch and steps; ours vs TRL RewardTrainer",
        "cpu": cpu_name(), "cores": os.cpu_count(), "gpu": gpu_name(args), "precision": args.precision,
        "weights": "seeded random init (--work)" if args.work else "pretrained",
        "settings": {k: str(v) if isinstance(v, Path) else v for k,
                     v in vars(args).items() if k not in ("out", "trl_python")},
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
        "summary": summarize(runs), "runs": runs, **({"failed": failed} if failed else {}),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def prepare(work: Path, backbone_dir: str, target: Path) -> None:
    """The selected pairs and the backbone's config and tokenizer (no weights: ``--random-init``
    makes seeded ones where they run) in ``target``, for ``--work``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("pairs.jsonl", "ids.jsonl"):
        shutil.copy(work / name, target / name)
    (target / "backbone").mkdir(exist_ok=True)
    for path in Path(backbone_dir).iterdir():
        if path.suffix in (".json", ".jinja", ".txt") and path.is_file():
            shutil.copy(path, target / "backbone" / path.name)
    shutil.rmtree(work, ignore_errors=True)
    print(f"prepared {target}", flush=True)


def random_init(backbone_dir: Path, seed: int) -> None:
    """Seeded random weights for a prepared backbone folder that has none (weights too large to
    carry to the machine; speed does not depend on them, and both sides start from the same)."""
    import torch
    from transformers import AutoConfig, AutoModel

    if (backbone_dir / "model.safetensors").exists():
        return
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.from_pretrained(backbone_dir),
                          dtype=torch.float32).save_pretrained(backbone_dir)


if __name__ == "__main__":
    main()
