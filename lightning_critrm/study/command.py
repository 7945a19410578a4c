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
    return fit_runs_parser(DESCRIPTION, "study", StudySettings,
                           "The study YAML: a `study` and a `fit` section.")


def run_study_command(options: dict[str, Any], fit_overrides: list[str]) -> None:
    """Run the study that parsed ``options`` say (``fit_overrides``: see :func:`split_fit_overrides`)."""
    run_study(options["study"], options["fit"], config_path=config_file(options), fit_overrides=fit_overrides)


def fit_runs_parser(description: str, section: str, settings: type, config_help: str,
                    fit_help: str = "") -> ArgumentParser:
    """The parser of a command that runs fit configs (``study``, ``self-critique``): a YAML with the
    command's ``section`` of ``settings`` and a ``fit`` section, and ``--<section>.*`` options."""
    parser = ArgumentParser(description=description, parser_mode="omegaconf")
    parser.add_argument("--config", action=ActionConfigFile, help=config_help)
    parser.add_argument(f"--{section}", type=settings, default=settings())
    parser.add_argument("--fit", type=dict, required=True,
                        help="A fit config, as given to `python -m lightning_critrm fit --config` (in the "
                             f"YAML){fit_help}.")
    return parser


def config_file(options: dict[str, Any]) -> Optional[str]:
    """The YAML the parsed ``options`` came from (the last ``--config``), if any."""
    configs = options.get("config") or []
    return str(configs[-1]) if configs else None


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
