"""Helpers of ``interop_rewardbench.sh``: the official ``rewardbench`` package against ``score``.

Three steps, each run by the shell script in the right environment:

- ``prepare`` (project venv): a seeded sample of RewardBench rows, written twice: as the
  conversations the official loader reads (``--load_json``: ``chosen``/``rejected`` message lists),
  and as ``score`` rows.
- ``official`` (the rewardbench venv): runs the package's own ``rewardbench`` command. Its
  pipeline (``rewardbench/models/pipeline.py``) sends every batch to ``"cuda"``; on a machine without
  a GPU this launcher makes ``BatchEncoding.to("cuda")`` go to the CPU instead, and changes nothing
  else: the package's files stay as installed, its formatting and padding (left) are its own.
- ``compare`` (project venv): rewards side by side, written to a JSON result.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
from pathlib import Path


def prepare(args) -> None:
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    sample = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "official_rows.jsonl").open("w") as fh:
        for row in sample:
            user = {"role": "user", "content": row["prompt"]}
            fh.write(json.dumps({
                "id": row["id"], "subset": row["subset"],
                "chosen": [user, {"role": "assistant", "content": row["chosen"]}],
                "rejected": [user, {"role": "assistant", "content": row["rejected"]}],
            }) + "\n")
    with (out / "score_rows.jsonl").open("w") as fh:
        for row in sample:
            fh.write(json.dumps({k: row[k] for k in ("id", "subset", "prompt", "chosen", "rejected")}) + "\n")
    print(f"{len(sample)} rows of {args.data} (seed {args.seed}) in {out}")


def official(argv: list[str]) -> None:
    import torch
    from transformers import BatchEncoding

    if not torch.cuda.is_available():
        to = BatchEncoding.to

        def to_cpu_for_cuda(self, device, *a, **kw):
            return to(self, "cpu" if str(device).startswith("cuda") else device, *a, **kw)

        BatchEncoding.to = to_cpu_for_cuda
    from rewardbench.rewardbench import main

    sys.argv = ["rewardbench", *argv]
    main()


def compare(args) -> None:
    from transformers import AutoTokenizer

    model = Path(args.model)
    recipe = json.loads((model / "config.json").read_text())["lightning_critrm"]
    tokenizer = AutoTokenizer.from_pretrained(model)
    ours = [json.loads(line) for line in Path(args.ours).read_text().splitlines()]
    theirs = [json.loads(line) for line in Path(args.official).read_text().splitlines()]
    summary = json.loads(Path(args.official_summary).read_text())
    assert [r["id"] for r in ours] == [r["id"] for r in theirs], "the two tools scored other rows"

    def tokens(conversation) -> int:
        return len(tokenizer.apply_chat_template(conversation, return_dict=False))

    diffs, fitting, agree = [], 0, 0
    fit_diffs, acc_ours_fit, acc_theirs_fit = [], 0, 0
    for mine, row in zip(ours, theirs):
        pair_diffs = [abs(mine["reward_chosen"] - row["scores_chosen"]),
                      abs(mine["reward_rejected"] - row["scores_rejected"])]
        diffs.extend(pair_diffs)
        agree += ((mine["reward_chosen"] > mine["reward_rejected"])
                  == (row["scores_chosen"] > row["scores_rejected"]))
        user = {"role": "user", "content": mine["prompt"]}
        fits = all(tokens([user,
                {"role": "assistant", "content": mine[k]}]) <= recipe["max_length"] for k in ("chosen",
                                                                                              "rejected"))
        if fits:
            fitting += 1
            fit_diffs.extend(pair_diffs)
            acc_ours_fit += mine["reward_chosen"] > mine["reward_rejected"]
            acc_theirs_fit += row["scores_chosen"] > row["scores_rejected"]
    n = len(ours)
    result = {
        "what": "the official rewardbench package (0.1.4, transformers 4.51) and `score` on one export, same "
                "rows",
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "model": str(model),
        "backbone": recipe["backbone"],
        "critiques": recipe["critiques"],
        "max_length": recipe["max_length"],
        "rows": n,
        "dtype": "float32 both; official: --not_quantized --torch_dtype float32, left padding, no truncation",
        "cuda_line": "BatchEncoding.to('cuda') sent to the CPU by the launcher; package files unchanged",
        "rows_that_fit_max_length": fitting,
        "max_abs_difference_fitting_rows": max(fit_diffs) if fit_diffs else None,
        "mean_abs_difference_fitting_rows": sum(fit_diffs) / len(fit_diffs) if fit_diffs else None,
        "max_abs_difference_all_rows": max(diffs),
        "goal_max_abs_difference": 1e-3,
        "accuracy_official_all_rows": summary["accuracy"],
        "accuracy_score_all_rows": sum(r["reward_chosen"] > r["reward_rejected"] for r in ours) / n,
        "accuracy_official_fitting_rows": acc_theirs_fit / fitting if fitting else None,
        "accuracy_score_fitting_rows": acc_ours_fit / fitting if fitting else None,
        "same_preferred_completion_all_rows": agree / n,
        "note": "rows longer than max_length are cut by `score` as in training and read whole by the "
                "official package (it does not truncate by default), so only rows that fit are expected to "
                "agree",
    }
    Path(args.result).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                bf16 = "avx512_bf16" in flags
                return line.split(":", 1)[1].strip() + (" with AVX-512 BF16" if bf16 else " without AVX-512 "
                                                                                          "BF16")
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    if sys.argv[1:2] == ["official"]:
        official(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare")
    p.add_argument("--data", required=True)
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    c = steps.add_parser("compare")
    for name in ("--model", "--ours", "--official", "--official-summary", "--result"):
        c.add_argument(name, required=True)
    args = parser.parse_args()
    prepare(args) if args.step == "prepare" else compare(args)


if __name__ == "__main__":
    main()
