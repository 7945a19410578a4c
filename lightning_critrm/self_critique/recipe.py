"""``python -m lightning_critrm self-critique``: the CLoud recipe, a reward model that writes its own
critiques, as stages run from one ``fit`` config.

1. ``1_writer``: fine-tune the backbone's language model on the teacher critiques the fit config
   reads (data columns or its critic): ``model.critique_lm_coef`` 1, ``model.pairwise_coef`` 0;
   export it (``1_writer/model``: a causal LM folder vLLM and transformers generate from).
2. ``2_critiques``: that model writes a critique of every completion of the data
   (``data.critic.prompting: continuation``, any local backend), cached under its fingerprint.
3. ``3_joint``: from the stage-1 weights, train the reward head and the language model together on
   (prompt, completion, self-written critique): Bradley-Terry plus ``critique_lm_coef`` times the
   next-token loss on the critique; export it (``3_joint/model``: the result, its own critic).
4. ``4_self_validation`` (``self_validation``): the held-out pairs scored with critiques the final
   model writes itself; its ``val/acc`` is the recipe's test figure.

Every stage is a ``python -m lightning_critrm`` command in its own process, with its config written
beside it (``<stage>/config.yaml``: rerun a stage by hand from it) and its output in
``<stage>/run.log``. A finished stage is kept; a rerun goes on from the first unfinished one (a
training stage from its ``last.ckpt``), and stops if the settings have changed.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.errors import InputError, NotReadyError
from lightning_critrm.prompts import DEFAULT_CRITIQUE_TEMPLATE
from lightning_critrm.scalars import read_last_scalars
from lightning_critrm.signals import last_lines, run_logged, sigterm_raises_systemexit

STAGE_CONFIG = "config.yaml"
STAGE_LOG = "run.log"
MODEL = "model"  # each training stage's export, inside its folder
WRITER, CRITIQUES, JOINT, SELF_VALIDATION = "1_writer", "2_critiques", "3_joint", "4_self_validation"
# The critic options stage 2 decides: the others (backend, sampling, engine...) are the user's.
_FIXED_CRITIC_OPTIONS = ("model", "prompting", "template")


def _default_critic() -> dict[str, Any]:
    return {"backend": "auto"}


@dataclass
class SelfCritiqueSettings:
    """The stages, all from the ``fit`` section of the same YAML (its data gives the teacher
    critiques: ``data.critiques`` columns, or generate with its critic).

    Args:
        out: Folder of the recipe: one folder per stage, ``3_joint/model`` the exported result.
        writer: Overrides of the fit config for stage 1 (dotted options: ``{trainer.max_epochs: 2}``).
        joint: Overrides of the fit config for stage 3.
        critique_lm_coef: Weight of the next-token loss on the self-written critique in stage 3
            (``model.critique_lm_coef``; the Bradley-Terry loss has weight 1).
        critic: How the models write critiques (stage 1's in stage 2, the final one in stage 4):
            ``data.critic`` options (``backend``: ``auto`` is vLLM where installed, ``sampling``,
            ``engine``...); its ``model``, ``prompting`` and ``template`` are the recipe's.
        self_validation: After stage 3, validate on the held-out pairs with critiques the final
            model writes (a second pass of critique generation over the data).
        keep_checkpoints: Keep the training stages' checkpoints once the recipe has finished (their
            models stay exported either way).
    """

    out: str = "runs/self_critique"
    writer: dict[str, Any] = field(default_factory=dict)
    joint: dict[str, Any] = field(default_factory=dict)
    critique_lm_coef: float = 1.0
    critic: dict[str, Any] = field(default_factory=_default_critic)
    self_validation: bool = True
    keep_checkpoints: bool = True


def check_settings(settings: SelfCritiqueSettings, fit: dict) -> None:
    if not isinstance(fit, dict) or not fit.get("model") or not fit.get("data"):
        raise InputError("the self-critique config needs a `fit` section: a fit config with `model` and "
                         "`data`, as given to `python -m lightning_critrm fit --config`")
    if (fit["data"].get("critiques") or "columns") == "none":
        raise InputError("self-critique: stage 1 learns to write the data's critiques, but "
                         "fit.data.critiques is none; give the teacher's critiques (columns, or "
                         "generate with a critic)")
    if not settings.critique_lm_coef >= 0:
        raise InputError(f"self_critique.critique_lm_coef must be >= 0, got {settings.critique_lm_coef}")
    fixed = sorted(set(settings.critic or {}) & set(_FIXED_CRITIC_OPTIONS))
    if fixed:
        raise InputError(f"self_critique.critic: {fixed} are set by the recipe (the stage-1 model, "
                         "continuing the critique block); leave them out")


def with_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """A copy of ``config`` with each dotted option of ``overrides`` set (``data.critic.model``)."""
    out = copy.deepcopy(config)
    for key, value in (overrides or {}).items():
        *path, option = key.split(".")
        node = out
        for part in path:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[option] = copy.deepcopy(value)
    return out


def stage_configs(settings: SelfCritiqueSettings, fit: dict, out: Path) -> dict[str, dict]:
    """The fit config each stage runs from."""
    writer = with_overrides(fit, {"model.critique_lm_coef": 1.0, "model.pairwise_coef": 0.0})
    writer = with_overrides(writer, settings.writer)
    template = ((fit["data"].get("critique_format") or {}).get("template") or DEFAULT_CRITIQUE_TEMPLATE)
    critic = {**(settings.critic or {}), "model": str(out / WRITER / MODEL), "prompting": "continuation",
              "template": template}
    joint = with_overrides(fit, {"model.backbone": str(out / WRITER / MODEL),
                                 "model.critique_lm_coef": settings.critique_lm_coef,
                                 "data.critiques": "generate", "data.critic": critic})
    joint = with_overrides(joint, settings.joint)
    # The final model as the critic of its own held-out pairs.
    validation = with_overrides(joint, {"data.critic.model": str(out / JOINT / MODEL)})
    return {WRITER: writer, JOINT: joint, SELF_VALIDATION: validation}


@dataclass(frozen=True)
class Stage:
    name: str
    subcommand: str
    config: str  # which of stage_configs
    args: tuple[str, ...] = ()

    def done(self, out: Path) -> bool:
        if self.subcommand == "export":
            return (out / self.name / MODEL / "config.json").exists()
        return (out / self.name / "done.json").exists()


def plan_stages(settings: SelfCritiqueSettings, out: Path) -> list[Stage]:
    stages = [
        Stage(WRITER, "fit", WRITER),
        Stage(WRITER, "export", WRITER, ("--ckpt_path", str(out / WRITER / "checkpoints" / "last.ckpt"),
                                         "--out", str(out / WRITER / MODEL), "--reward_stats", "false")),
        Stage(CRITIQUES, "critique", JOINT),
        Stage(JOINT, "fit", JOINT),
        Stage(JOINT, "export", JOINT, ("--ckpt_path", str(out / JOINT / "checkpoints" / "last.ckpt"),
                                       "--out", str(out / JOINT / MODEL))),
    ]
    if settings.self_validation:
        stages.append(Stage(SELF_VALIDATION, "validate", SELF_VALIDATION,
                            ("--ckpt_path", str(out / JOINT / "checkpoints" / "last.ckpt"))))
    return stages


def run_self_critique(settings: SelfCritiqueSettings, fit: dict, fit_overrides: Sequence[str] = (),
                      config_path: Optional[str] = None) -> Path:
    """Run every stage not finished before; returns the folder of the exported result.
    ``fit_overrides`` (``--model.lr``, ``1e-4``...) go to every stage's command, after its config."""
    check_settings(settings, fit)
    out = Path(settings.out)
    configs = stage_configs(settings, fit, out)
    stages = plan_stages(settings, out)
    source = f" from {config_path}" if config_path else ""
    print(f"self-critique: {len(stages)} steps in {out}{source}", flush=True)
    with sigterm_raises_systemexit():
        for i, stage in enumerate(stages, 1):
            folder = out / stage.name
            _pin(folder, configs[stage.config], list(fit_overrides))
            prefix = f"[{i}/{len(stages)}] {stage.name} {stage.subcommand}:"
            if stage.done(out):
                print(f"{prefix} done before", flush=True)
                continue
            print(f"{prefix} running (log: {folder / STAGE_LOG})", flush=True)
            _run(stage, folder, list(fit_overrides))
    if not settings.keep_checkpoints:  # once every step that reads them has run
        for name in (WRITER, JOINT):
            shutil.rmtree(out / name / "checkpoints", ignore_errors=True)
    result = out / JOINT / MODEL
    _report(out, settings)
    return result


def _pin(folder: Path, config: dict, fit_overrides: list[str]) -> None:
    """Write the stage's config; a folder holding a stage run with other settings stops the recipe
    (its finished steps would otherwise be reused for settings they were not made with)."""
    folder.mkdir(parents=True, exist_ok=True)
    path, args = folder / STAGE_CONFIG, folder / "overrides.json"
    text = yaml.safe_dump(config, sort_keys=True)
    if path.exists() and (yaml.safe_load(path.read_text()) != config
                          or json.loads(args.read_text() if args.exists() else "[]") != fit_overrides):
        raise InputError(f"{folder}: holds a stage run with other settings than these; give "
                         "self_critique.out a new folder, or delete this one to run the stage again")
    if not path.exists():
        write_text_atomically(args, json.dumps(fit_overrides) + "\n")
        write_text_atomically(path, text)


def _run(stage: Stage, folder: Path, fit_overrides: list[str]) -> None:
    interrupted = stage.subcommand == "fit" and (folder / "checkpoints" / "last.ckpt").exists()
    resume = ["--ckpt_path", "last"] if interrupted else []  # a training stage goes on from its last save
    command = [sys.executable, "-m", "lightning_critrm", stage.subcommand,
               "--config", str(folder / STAGE_CONFIG), *fit_overrides, *stage.args, *resume,
               "--trainer.default_root_dir", str(folder)]
    code = run_logged(command, folder / STAGE_LOG)
    if code != 0:
        raise NotReadyError(
            f"self-critique: {stage.name} {stage.subcommand} failed (exit status {code}); its log: "
            f"{folder / STAGE_LOG}. Last lines:\n{last_lines(folder / STAGE_LOG)}\n"
            "The steps finished before it are kept; rerunning the recipe goes on from this one.")
    if stage.subcommand != "export":
        write_text_atomically(folder / "done.json", json.dumps({"command": command}) + "\n")


def _report(out: Path, settings: SelfCritiqueSettings) -> None:
    result = out / JOINT / MODEL
    print(f"the reward model that writes its own critiques: {result} (its own critic: score, evaluate "
          "--model and serve run it with no critic configured)")
    if settings.self_validation:
        scalars = read_last_scalars(out / SELF_VALIDATION / "lightning_logs")
        if "val/acc" in scalars:
            print(f"held-out accuracy with the critiques it writes: {scalars['val/acc']:.3f} "
                  f"(stage 3 validated with the stage-1 model's: see {out / JOINT})")
