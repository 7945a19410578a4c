import pytest

from lightning_critrm.errors import InputError
from lightning_critrm.self_critique.recipe import SelfCritiqueSettings
from lightning_critrm.self_critique.recipe import check_settings as recipe_check
from lightning_critrm.study import StudySettings
from lightning_critrm.study.command import split_fit_overrides, study_parser
from lightning_critrm.study.runner import check_settings, plan_runs
from tests.conftest import REPO


def test_fit_options_are_split_from_the_study_options():
    own, fit = split_fit_overrides(["--config", "s.yaml", "--fit.model.lr", "1e-4",
                                    "--fit.data.max_length=128",
                                     "--study.sizes", "[8]"])
    assert own == ["--config", "s.yaml", "--study.sizes", "[8]"]
    assert fit == ["--model.lr", "1e-4", "--data.max_length", "128"]
    with pytest.raises(InputError, match="--fit.model.lr needs a value"):
        split_fit_overrides(["--fit.model.lr"])


def parsed(name: str, *extra: str):
    argv, overrides = split_fit_overrides(["--config", str(REPO / "conf" / name), *extra])
    parser = study_parser()
    options = parser.instantiate_classes(parser.parse_args(argv))
    check_settings(options.study, options.fit)
    return options.study, options.fit, overrides


def test_the_shipped_encoder_study_config_parses():
    settings, fit, overrides = parsed("study_mtbench_minilm.yaml", "--study.seeds", "[3]",
                                      "--fit.model.lr", "1e-4")
    assert isinstance(settings, StudySettings) and settings.seeds == [3] and settings.baseline == "none"
    assert set(settings.conditions) == {"critiques", "verdicts_stripped", "none"}
    assert fit["model"]["backbone"] == "all-minilm-l6-v2" and overrides == ["--model.lr", "1e-4"]


def test_the_shipped_decoder_study_config_plans_self_critique_runs():
    settings, fit, _ = parsed("study_mtbench.yaml")
    assert fit["model"]["backbone"] == "smollm2-135m-instruct" and settings.baseline == "none"
    runs = plan_runs(settings, fit)
    assert len(runs) == len(settings.sizes) * len(settings.seeds) * 3
    recipes = [run for run in runs if run.self_critique is not None]
    assert {run.condition for run in recipes} == {"self_critique"} and len(recipes) == len(settings.sizes)
    for run in recipes:  # the recipe's own checks accept its settings
        recipe_check(SelfCritiqueSettings(**run.self_critique), fit)
    # Its critic writes within the length the model reads.
    critic = recipes[0].self_critique["critic"]
    assert critic["engine"]["max_model_len"] == fit["data"]["max_length"]
