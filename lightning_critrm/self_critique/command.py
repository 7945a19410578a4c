"""``python -m lightning_critrm self-critique``: its options, as a subcommand of the one command line."""

from __future__ import annotations

from typing import Any, Optional

from jsonargparse import ActionConfigFile, ArgumentParser

from lightning_critrm.self_critique.recipe import SelfCritiqueSettings, run_self_critique

DESCRIPTION = (
    "Train a reward model that writes its own critiques (the CLoud recipe) from one YAML: fine-tune the LM "
    "on the data's critiques, have it critique the data, train reward head and LM together on its own "
    "critiques, and validate with critiques the final model writes. --fit.<option> VALUE overrides the fit "
    "config of every stage."
)


def self_critique_parser() -> ArgumentParser:
    """The ``self-critique`` options: a YAML with a ``self_critique`` and a ``fit`` section."""
    parser = ArgumentParser(description=DESCRIPTION, parser_mode="omegaconf")
    parser.add_argument("--config", action=ActionConfigFile,
                        help="The recipe YAML: a `self_critique` and a `fit` section.")
    parser.add_argument("--self_critique", type=SelfCritiqueSettings, default=SelfCritiqueSettings())
    parser.add_argument("--fit", type=dict, required=True,
                        help="A fit config, as given to `python -m lightning_critrm fit --config` (in the "
                             "YAML); its data's critiques are the teacher's.")
    return parser


def run_self_critique_command(options: dict[str, Any], fit_overrides: list[str]) -> None:
    """Run the recipe that parsed ``options`` say."""
    configs = options.get("config") or []
    config_path: Optional[str] = str(configs[-1]) if configs else None
    run_self_critique(options["self_critique"], options["fit"], fit_overrides, config_path)
