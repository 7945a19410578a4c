"""``python -m lightning_critrm study``: its options, as a subcommand of the one command line."""

from __future__ import annotations

from typing import Any, Optional

from jsonargparse import ActionConfigFile, ArgumentParser

from lightning_critrm.errors import InputError
from lightning_critrm.study.runner import StudySettings, run_study

DESCRIPTION = (
    "Train at several training-set sizes x conditions x seeds from one YAML; write a CSV, a figure of "
    "accuracy against training pairs, and the equivalence factor of each condition. --fit.<option> VALUE "
    "overrides the fit config of every run."
)


def study_parser() -> ArgumentParser:
    """The ``study`` options: a YAML with a ``study`` and a ``fit`` section, and ``--study.*``."""
    parser = ArgumentParser(description=DESCRIPTION, parser_mode="omegaconf")
    parser.add_argument("--config", action=ActionConfigFile,
                        help="The study YAML: a `study` and a `fit` section.")
    parser.add_argument("--study", type=StudySettings, default=StudySettings())
    parser.add_argument("--fit", type=dict, required=True,
                        help="A fit config, as given to `python -m lightning_critrm fit --config` "
                             "(in the YAML).")
    return parser


def run_study_command(options: dict[str, Any], fit_overrides: list[str]) -> None:
    """Run the study that parsed ``options`` say (``fit_overrides``: see :func:`split_fit_overrides`)."""
    configs = options.get("config") or []
    config_path: Optional[str] = str(configs[-1]) if configs else None
    run_study(options["study"], options["fit"], config_path=config_path, fit_overrides=fit_overrides)


def split_fit_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the study's own arguments, ``--fit.x.y v`` rewritten as ``--x.y v`` for each fit run).
    jsonargparse would replace the whole ``fit`` mapping with an override rather than merge it, so
    these are split off before parsing."""
    own, fit = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--fit."):
            name, has_value, value = arg[len("--fit."):].partition("=")
            if has_value:
                fit += [f"--{name}", value]
            elif i + 1 < len(argv):
                fit += [f"--{name}", argv[i + 1]]
                i += 1
            else:
                raise InputError(f"{arg} needs a value")
            i += 1
            continue
        own.append(arg)
        i += 1
    return own, fit
