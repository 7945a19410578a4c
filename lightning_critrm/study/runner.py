"""``python -m lightning_critrm study``: a data-efficiency study from one YAML.

Every (condition, size, seed) is one ``fit`` in its own process and folder, with its own
TensorBoard: a crash or an out-of-memory in one run cannot take the study down with it or leak
state into the next, and a finished run is a folder with ``result.json`` that a resumed study skips.
The held-out accuracy of a run is measured once, after its last step, on the held-out prompts that
``data.seed`` chooses (the same for every run): nothing is selected on it, so it is a test figure.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.errors import InputError, NotReadyError
from lightning_critrm.scalars import read_last_scalars
from lightning_critrm.self_critique.recipe import (
    SELF_VALIDATION,
    SelfCritiqueSettings,
    run_self_critique,
    with_overrides,
)
from lightning_critrm.signals import last_lines, run_logged, sigterm_raises_systemexit
from lightning_critrm.study.figure import require_matplotlib, save_figure
from lightning_critrm.study.results import RunResult, equivalence_report, results_csv

FIT_CONFIG = "fit.yaml"
SELF_CRITIQUE = "self_critique"  # the key that makes a condition run the self-critique recipe
RUN_LOG = "run.log"


def _default_conditions() -> dict[str, dict[str, Any]]:
    return {"critiques": {"data.critiques": "columns"}, "none": {"data.critiques": "none"}}


@dataclass
class StudySettings:
    """What to vary. Every run trains from the ``fit`` section of the same YAML.

    Args:
        out: Folder of the study: one folder per run (its TensorBoard, ``run.log`` and
            ``result.json``), ``results.csv``, ``accuracy_vs_pairs.png`` and ``equivalence.json``.
        sizes: Training-set sizes, in pairs (``data.max_train_pairs``). With one seed the smaller
            sets are subsets of the larger ones.
        seeds: Seeds of the training subsample, its order and the model's initialisation
            (``data.sample_seed`` and ``seed_everything``). The held-out prompts stay those of
            ``data.seed``.
        conditions: Name -> overrides of the fit config (``{data.critiques: none}``); any dotted
            option of ``fit`` works, e.g. a third condition with a local critic. A condition with a
            ``self_critique`` entry (the ``self-critique`` recipe's settings, ``{}`` for its
            defaults) trains each run with that recipe, its held-out pairs scored with critiques
            the final model writes.
        baseline: The condition the equivalence factor counts pairs of (the plain reward model).
        epochs: Passes over each training set; steps are ``ceil(epochs * size / pairs per step)``,
            pairs per step counted under each condition's overrides, over every process.
        min_steps: At least this many optimizer steps, so the smallest sets are not judged after a
            step or two.
        keep_checkpoints: Keep each run's checkpoints (a 135M model's are ~1.6 GB each); by default
            a finished run keeps its TensorBoard, log and result only.
    """

    out: str = "runs/study"
    sizes: list[int] = field(default_factory=lambda: [64, 128, 256])
    seeds: list[int] = field(default_factory=lambda: [0])
    conditions: dict[str, dict[str, Any]] = field(default_factory=_default_conditions)
    baseline: str = "none"
    epochs: float = 1.0
    min_steps: int = 1
    keep_checkpoints: bool = False


@dataclass(frozen=True)
class PlannedRun:
    condition: str
    size: int
    seed: int
    steps: int
    args: tuple[str, ...]  # after `fit --config <out>/fit.yaml`
    self_critique: Optional[dict[str, Any]] = None  # the recipe's settings, for a self_critique condition

    @property
    def name(self) -> str:
        return f"{self.condition}-n{self.size}-seed{self.seed}"

    @property
    def record(self) -> list[str]:
        """What ``result.json`` records of how the run was made (a finished run with other settings is
        not reused): its fit arguments, and the recipe's settings after them."""
        if self.self_critique is None:
            return list(self.args)
        return [*self.args, f"# {SELF_CRITIQUE}: {json.dumps(self.self_critique)}"]


def check_settings(settings: StudySettings, fit: dict) -> None:
    if not settings.sizes or any(not isinstance(s, int) or s < 1 for s in settings.sizes):
        raise InputError(f"study.sizes must be positive integers, got {settings.sizes}")
    if not settings.seeds:
        raise InputError("study.seeds is empty")
    if settings.baseline not in settings.conditions:
        raise InputError(f"study.baseline {settings.baseline!r} is not one of study.conditions "
                         f"{sorted(settings.conditions)}")
    bad = [n for n in settings.conditions if not n or "/" in n or n != n.strip()]
    if bad:
        raise InputError(f"study.conditions: names must be plain words (they name folders), got {bad}")
    if not settings.epochs > 0 or settings.min_steps < 1:
        raise InputError(f"study.epochs must be > 0 and study.min_steps >= 1, got {settings.epochs}, "
                         f"{settings.min_steps}")
    if not isinstance(fit, dict) or not fit.get("model") or not fit.get("data"):
        raise InputError("the study config needs a `fit` section: a fit config with `model` and `data`, "
                         "as given to `python -m lightning_critrm fit --config`")


def plan_runs(settings: StudySettings, fit: dict, fit_overrides: Sequence[str] = ()) -> list[PlannedRun]:
    """Every run, smallest sets first (the curve fills in from the left), seeds inside sizes.
    ``fit_overrides`` (``--data.max_length 256``...) go to every run, before the study's own."""
    runs = []
    for size in sorted(set(settings.sizes)):
        for seed in settings.seeds:
            for condition, overrides in settings.conditions.items():
                overrides = dict(overrides or {})
                recipe = overrides.pop(SELF_CRITIQUE, None)
                own = [arg for key, value in overrides.items() for arg in (f"--{key}", _cli_value(value))]
                args = list(fit_overrides) + own
                per_step = pairs_per_step(fit, args)
                steps = max(settings.min_steps, math.ceil(settings.epochs * size / per_step))
                args += [
                    "--data.max_train_pairs", str(size), "--data.sample_seed", str(seed), "--seed_everything",
                         str(seed),
                    # Steps, not epochs, bound each run; it validates once, at its last step.
                    "--trainer.max_epochs", "-1", "--trainer.max_steps", str(steps),
                    "--trainer.val_check_interval", str(steps), "--trainer.check_val_every_n_epoch", "null",
                    "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
                ]
                runs.append(PlannedRun(condition, size, seed, steps, tuple(args), recipe))
    return runs


def pairs_per_step(fit: dict, overrides: Sequence[str] = ()) -> int:
    """Training pairs one optimizer step takes under the ``fit`` config and ``overrides`` (later
    ones win): pairs per batch x accumulated batches x processes (devices x nodes)."""
    config = {"data": fit.get("data") or {}, "trainer": fit.get("trainer") or {}}
    given = {key.removeprefix("--"): yaml.safe_load(value)
             for key, value in zip(overrides[::2], overrides[1::2])}  # the last of a key wins
    config = with_overrides(config, {key: value for key, value in given.items()
                                     if "." in key and key.split(".")[0] in config})
    batching, trainer = config["data"].get("batching") or {}, config["trainer"]
    if batching.get("max_tokens_per_batch") is not None:
        # Batches then hold as many pairs as fit the budget, so a step count cannot say how many
        # passes over the set a run makes, and critiques (longer pairs) would see fewer pairs.
        raise InputError(
            f"study: data.batching.max_tokens_per_batch is {batching['max_tokens_per_batch']}, but the study "
            "gives every run of a size the steps of `study.epochs` passes, counted in pairs per batch: set "
            "data.batching.max_tokens_per_batch: null (data.batching.batch_size sets the pairs per batch)"
        )
    processes = _devices(trainer.get("devices", "auto"), trainer.get("accelerator", "auto"))
    processes *= int(trainer.get("num_nodes") or 1)
    return int(batching.get("batch_size", 8)) * int(trainer.get("accumulate_grad_batches") or 1) * processes


def _devices(devices: Any, accelerator: Any) -> int:
    """Processes per node Lightning starts for ``trainer.devices``."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and "," in devices:  # "0,1": those GPUs
        return len([d for d in devices.split(",") if d.strip()])
    if devices in (None, "auto", -1, "-1"):  # one process on a CPU, one per visible GPU elsewhere
        import torch

        on_gpu = str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.cuda.device_count() if on_gpu else 1
    return int(devices)


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_study(
    settings: StudySettings, fit: dict, config_path: Optional[str] = None, fit_overrides: Sequence[str] = ()
) -> list[RunResult]:
    """Run every planned run not finished before, then write the CSV, figure and factors.
    ``fit_overrides`` are fit options (``--model.lr``, ``1e-4``) given to every run."""
    check_settings(settings, fit)
    require_matplotlib()
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    _pin_fit_config(out / FIT_CONFIG, fit)
    runs = plan_runs(settings, fit, fit_overrides)
    results: list[RunResult] = []
    source = f", from {config_path}" if config_path else ""
    grid = f"{len(set(settings.sizes))} sizes x {len(settings.conditions)} conditions x {len(settings.seeds)}"
    print(f"study: {len(runs)} runs ({grid} seeds) in {out}{source}", flush=True)
    with sigterm_raises_systemexit():
        for i, run in enumerate(runs, 1):
            prefix = f"[{i}/{len(runs)}] {run.condition} n={run.size} seed={run.seed}:"
            folder = out / run.name
            result = RunResult.load(folder)
            if result is not None and result.args == run.record:
                print(f"{prefix} done before, test acc {result.test_acc:.3f}", flush=True)
            else:
                if result is not None:
                    raise InputError(
                        f"{folder / 'result.json'}: this run was made with other settings than the study's "
                        "now; give study.out a new folder, or delete the run's folder to rerun it"
                    )
                result = _run(run, folder, fit, out / FIT_CONFIG, settings.keep_checkpoints, prefix)
            results.append(result)
            write_text_atomically(out / "results.csv", results_csv(results))
    _summarize(out, results, settings.baseline, config_path)
    return results


def _pin_fit_config(path: Path, fit: dict) -> None:
    """The study's runs all train from this file. A resumed study must not mix runs of another
    fit config into one curve, so a different one stops it."""
    text = yaml.safe_dump(fit, sort_keys=True)
    if path.exists() and yaml.safe_load(path.read_text()) != yaml.safe_load(text):
        raise InputError(
            f"{path}: the study folder holds runs of another `fit` config; give study.out a new folder, "
            "or delete it to start over"
        )
    if not path.exists():
        write_text_atomically(path, text)


def _run(run: PlannedRun, folder: Path, fit: dict, fit_config: Path, keep_checkpoints: bool,
         prefix: str) -> RunResult:
    started = time.monotonic()
    if run.self_critique is not None:
        # The recipe keeps its finished stages: an interrupted run goes on from the first unfinished one.
        settings = SelfCritiqueSettings(**{**run.self_critique, "out": str(folder), "self_validation": True,
                                           "keep_checkpoints": keep_checkpoints})
        run_self_critique(settings, fit, run.args)
        logs = folder / SELF_VALIDATION / "lightning_logs"
    else:
        if folder.exists():  # a run that was interrupted: start it again, whole
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        command = [sys.executable, "-m", "lightning_critrm", "fit", "--config", str(fit_config), *run.args,
                   "--trainer.default_root_dir", str(folder)]
        code = run_logged(command, folder / RUN_LOG)  # Ctrl-C, SIGTERM: the run stops too (and saves)
        if code != 0:
            raise NotReadyError(
                f"study run {run.name} failed (exit status {code}); its log: {folder / RUN_LOG}. "
                "Last lines:\n" + last_lines(folder / RUN_LOG)
                + "\nThe runs finished before it are kept; rerunning the study continues from this one."
            )
        logs = folder / "lightning_logs"
    wall = time.monotonic() - started
    scalars = read_last_scalars(logs)
    if "val/acc" not in scalars:
        raise NotReadyError(f"study run {run.name} logged no val/acc (is `trainer.logger` the default "
                            f"TensorBoard logger?); its log: {folder / RUN_LOG}")
    result = RunResult(
        size=run.size, condition=run.condition, seed=run.seed, test_acc=scalars["val/acc"],
        test_loss=scalars.get("val/loss", math.nan), test_pairs=int(scalars.get("data/val_pairs", 0)),
        train_pairs=int(scalars.get("data/train_pairs", run.size)), steps=run.steps, wall_s=round(wall, 1),
        args=run.record, rewardbench={k: v for k, v in scalars.items() if k.startswith("rewardbench")},
    )
    if not keep_checkpoints:
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    result.save(folder)
    note = f" (only {result.train_pairs} training pairs exist)" if result.train_pairs < run.size else ""
    print(f"{prefix} test acc {result.test_acc:.3f} on {result.test_pairs} pairs, {run.steps} steps, "
          f"{wall:.0f} s{note}", flush=True)
    return result


def _summarize(out: Path, results: Sequence[RunResult], baseline: str, config_path: Optional[str]) -> None:
    report = equivalence_report(results, baseline)
    report["command"] = f"python -m lightning_critrm study --config {config_path}" if config_path else None
    write_text_atomically(out / "equivalence.json", json.dumps(report, indent=1) + "\n")
    save_figure(results, out / "accuracy_vs_pairs.png",
                title=f"{Path(config_path).stem}" if config_path else None)
    print(f"results: {out / 'results.csv'}, figure: {out / 'accuracy_vs_pairs.png'}")
    for condition, entry in report["conditions"].items():
        factors = ", ".join(f"n={p['size']}: {p['reads']}" for p in entry["factors"])
        print(f"equivalence factor of {condition} over {baseline} pairs: {entry['range']} ({factors})")
