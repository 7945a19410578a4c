from lightning_critrm.self_critique.command import self_critique_parser
from lightning_critrm.self_critique.recipe import SelfCritiqueSettings, check_settings, stage_configs
from tests.conftest import REPO


def test_the_shipped_recipe_config_parses_and_plans_its_stages(tmp_path):
    parser = self_critique_parser()
    config = REPO / "conf" / "self_critique_mtbench.yaml"
    options = parser.instantiate_classes(parser.parse_args(
        ["--config", str(config), "--self_critique.out", str(tmp_path)]))
    settings, fit = options.self_critique, options.fit
    assert isinstance(settings, SelfCritiqueSettings) and settings.critique_lm_coef == 1.0
    assert fit["model"]["backbone"] == "smollm2-135m-instruct" and fit["data"]["critiques"] == "columns"
    check_settings(settings, fit)
    joint = stage_configs(settings, fit, tmp_path)["3_joint"]
    assert joint["data"]["critic"]["sampling"] == {"max_new_tokens": 256}
    assert joint["model"]["backbone"] == str(tmp_path / "1_writer" / "model")
