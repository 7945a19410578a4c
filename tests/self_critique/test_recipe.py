"""The CLoud recipe's stages from one config: what each stage runs from, and a whole run on a tiny model."""

import json
import shlex

import pytest
import yaml

from lightning_critrm.cli import main
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.errors import InputError
from lightning_critrm.prompts import DEFAULT_CRITIQUE_TEMPLATE
from lightning_critrm.self_critique import recipe
from lightning_critrm.self_critique.recipe import SelfCritiqueSettings, stage_configs, with_overrides
from tests.reward.test_self_critique import written_by_hand
from tests.test_cli import tiny_config


def test_with_overrides_sets_dotted_options_on_a_copy():
    config = {"model": {"lr": 1.0}, "data": {"critic": {"backend": "vllm"}}}
    out = with_overrides(config, {"model.lr": 2.0, "data.critic.model": "m", "trainer.max_steps": 3})
    assert out == {"model": {"lr": 2.0}, "data": {"critic": {"backend": "vllm", "model": "m"}},
                   "trainer": {"max_steps": 3}}
    assert config == {"model": {"lr": 1.0}, "data": {"critic": {"backend": "vllm"}}}


def test_each_stage_trains_from_the_fit_config_with_the_recipes_settings(tmp_path):
    fit = {"model": {"backbone": "b", "lr": 1e-4}, "data": {"source": "s.jsonl", "critiques": "columns"}}
    settings = SelfCritiqueSettings(out=str(tmp_path), writer={"model.lr": 1e-3}, critique_lm_coef=0.5,
                                    critic={"backend": "vllm", "sampling": {"max_new_tokens": 64}})
    configs = stage_configs(settings, fit, tmp_path)
    assert configs["1_writer"]["model"] == {"backbone": "b", "lr": 1e-3, "critique_lm_coef": 1.0,
                                            "pairwise_coef": 0.0}
    assert configs["1_writer"]["data"] == fit["data"]  # the teacher's critiques
    writer = str(tmp_path / "1_writer" / "model")
    assert configs["3_joint"]["model"] == {"backbone": writer, "lr": 1e-4, "critique_lm_coef": 0.5}
    assert configs["3_joint"]["data"] == {
        "source": "s.jsonl", "critiques": "generate",
        "critic": {"backend": "vllm", "sampling": {"max_new_tokens": 64}, "model": writer,
                   "prompting": "continuation", "template": DEFAULT_CRITIQUE_TEMPLATE}}
    assert configs["4_self_validation"]["data"]["critic"]["model"] == str(tmp_path / "3_joint" / "model")


@pytest.mark.parametrize("fit_data, critic, message", [
    ({"source": "s", "critiques": "none"}, {}, "teacher's critiques"),
    ({"source": "s"}, {"model": "x"}, r"\['model'\] are set by the recipe"),
])
def test_settings_that_cannot_work_are_refused_before_any_stage(fit_data, critic, message):
    with pytest.raises(InputError, match=message):
        recipe.check_settings(SelfCritiqueSettings(critic=critic),
                              {"model": {"backbone": "b"}, "data": fit_data})


def in_process(command, log):
    """The recipe's commands run in this process (the subprocess path is the study's, tested there)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(shlex.join(command) + "\n")
    main(list(command[3:]))  # after `python -m lightning_critrm`
    return 0


def test_the_recipe_trains_a_model_that_writes_the_critiques_it_is_trained_on(
        tmp_path, pairs_file, tiny_decoder_dir, monkeypatch, capsys):
    monkeypatch.setattr(recipe, "run_logged", in_process)
    fit = yaml.safe_load(tiny_config(tmp_path, tiny_decoder_dir, pairs_file).read_text())
    max_new = 10
    critic = {"backend": "transformers", "sampling": {"max_new_tokens": max_new}}
    settings = SelfCritiqueSettings(out=str(tmp_path / "recipe"), writer={"model.lr": 3e-3}, critic=critic)
    overrides = ["--trainer.max_steps", "6", "--trainer.val_check_interval", "6"]
    result = recipe.run_self_critique(settings, fit, overrides)

    out = tmp_path / "recipe"
    assert result == out / "3_joint" / "model"
    assert json.loads((result / "config.json").read_text())["lightning_critrm"]["writes_critiques"]
    # Stage 2 wrote the stage-1 model's critiques, under its fingerprint; stage 3 read them back.
    writer = out / "1_writer" / "model"
    joint = yaml.safe_load((out / "3_joint" / "config.yaml").read_text())
    store = CritiqueStore.for_critic(CriticConfig.from_dict(joint["data"]["critic"]), tmp_path / "cache")
    prompt = [{"role": "user", "content": "What is 10 + 30?"}]
    items = [(prompt, "The answer is 40."), (prompt, "The answer is 41.")]
    assert store.fill(items, require_cached=True, progress=False).generated == 0
    final = CriticConfig.from_dict({**joint["data"]["critic"], "model": str(result)})
    other = CritiqueStore.for_critic(final, tmp_path / "cache")
    assert store.resolved.fingerprint != other.resolved.fingerprint
    from lightning_critrm.critique.cache import CritiqueCache

    with CritiqueCache(store.path) as cache:
        keys = [store.resolved.key(p, c) for p, c in items]
        cached = cache.get_many(keys)
    assert [cached[k].critique for k in keys] == [written_by_hand(writer, p, c, max_new) for p, c in items]

    printed = capsys.readouterr().out
    assert "held-out accuracy with the critiques it writes: " in printed
    assert (out / "4_self_validation" / "done.json").exists()

    # A rerun redoes nothing; other settings in the same folder stop it.
    recipe.run_self_critique(settings, fit, overrides)
    assert capsys.readouterr().out.count("done before") == 6
    with pytest.raises(InputError, match="other settings"):
        recipe.run_self_critique(settings, fit, ["--trainer.max_steps", "7"])


def test_a_study_condition_runs_the_recipe_and_is_tested_with_the_critiques_the_model_writes(
        tmp_path, tiny_decoder_dir, monkeypatch):
    from lightning_critrm.study import runner
    from lightning_critrm.study.results import RunResult
    from tests.conftest import arithmetic_rows, write_jsonl

    monkeypatch.setattr(recipe, "run_logged", in_process)
    monkeypatch.setattr(runner, "run_logged", in_process)
    fit = yaml.safe_load(tiny_config(tmp_path, tiny_decoder_dir, write_jsonl(tmp_path / "p.jsonl",
                                                                             arithmetic_rows(40))).read_text())
    own = {"critic": {"backend": "transformers", "sampling": {"max_new_tokens": 6}}}
    settings = runner.StudySettings(out=str(tmp_path / "study"), sizes=[8], min_steps=2, conditions={
        "none": {"data.critiques": "none"}, "self_critique": {"self_critique": own}})
    planned = runner.plan_runs(settings, fit)
    assert [r.self_critique for r in planned] == [None, own]
    assert planned[0].args[2:] == planned[1].args  # the recipe's settings are no fit argument

    runner.run_study(settings, fit)
    folder = tmp_path / "study" / "self_critique-n8-seed0"
    result = RunResult.load(folder)
    assert (result.test_pairs, result.train_pairs, result.steps) == (10, 8, 2)
    assert result.args[-1] == '# self_critique: {"critic": {"backend": "transformers", "sampling": ' \
                              '{"max_new_tokens": 6}}}'
    assert (folder / "4_self_validation" / "done.json").exists()
    assert not list(folder.rglob("checkpoints"))  # study.keep_checkpoints is false
    rows = (tmp_path / "study" / "results.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[1] for r in rows) == ["none", "self_critique"]
