import pytest

from lightning_critrm.errors import InputError
from lightning_critrm.study import StudySettings
from lightning_critrm.study.command import split_fit_overrides, study_parser
from lightning_critrm.study.runner import check_settings
from tests.conftest import REPO


def test_fit_options_are_split_from_the_study_options():
    own, fit = split_fit_overrides(["--config", "s.yaml", "--fit.model.lr", "1e-4",
                                    "--fit.data.max_length=128",
                                     "--study.sizes", "[8]"])
    assert own == ["--config", "s.yaml", "--study.sizes", "[8]"]
    assert fit == ["--model.lr", "1e-4", "--data.max_length", "128"]
    with pytest.raises(InputError, match="--fit.model.lr needs a value"):
        split_fit_overrides(["--fit.model.lr"])


def test_the_shipped_study_config_parses():
    argv, overrides = split_fit_overrides(
        ["--config", str(REPO / "conf" / "study_mtbench.yaml"), "--study.seeds", "[3]", "--fit.model.lr",
         "1e-4"])
    parser = study_parser()
    options = parser.instantiate_classes(parser.parse_args(argv))
    settings, fit = options.study, options.fit
    assert isinstance(settings, StudySettings) and settings.seeds == [3] and settings.baseline == "none"
    assert set(settings.conditions) == {"critiques", "verdicts_stripped", "none"}
    assert fit["model"]["backbone"] == "all-minilm-l6-v2" and overrides == ["--model.lr", "1e-4"]
    check_settings(settings, fit)
