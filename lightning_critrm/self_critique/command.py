"""``python -m lightning_critrm self-critique``: its options, as a subcommand of the one command line."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from lightning_critrm.self_critique.recipe import SelfCritiqueSettings, run_self_critique
from lightning_critrm.study.command import config_file, fit_runs_parser

DESCRIPTION = (
    "Train a reward model that writes its own critiques (the CLoud recipe) from one YAML: fine-tune the LM "
    "on the data's critiques, have it critique the data, train reward head and LM together on its own "
    "critiques, and validate with critiques the final model writes. --fit.<option> VALUE overrides the fit "
    "config of every stage."
)


def self_critique_parser() -> ArgumentParser:
    """The ``self-critique`` options: a YAML with a ``self_critique`` and a ``fit`` section."""
    return fit_runs_parser(DESCRIPTION, "self_critique", SelfCritiqueSettings,
                           "The recipe YAML: a `self_critique` and a `fit` section.",
                           "; its data's critiques are the teacher's")


def run_self_critique_command(options: dict[str, Any], fit_overrides: list[str]) -> None:
    """Run the recipe that parsed ``options`` say."""
    run_self_critique(options["self_critique"], options["fit"], fit_overrides, config_file(options))
