import dataclasses

import pytest

from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.errors import InputError

PROMPT = ({"role": "user", "content": "Q"},)
BASE = CriticConfig()


def changed(change: dict) -> CriticConfig:
    """BASE with one setting changed; ``"group.field"`` names a setting of a group."""
    (name, value), = change.items()
    group, _, field = name.rpartition(".")
    if not group:
        return dataclasses.replace(BASE, **{name: value})
    return dataclasses.replace(BASE, **{group: dataclasses.replace(getattr(BASE, group), **{field: value})})


@pytest.mark.parametrize(
    "change",
    [
        {"template": BASE.template + " Be brief."},
        {"template_version": "v2"},
        {"model": "other-critic"},
        {"backend": "vllm"},
        {"sampling.temperature": 0.7},
        {"sampling.max_new_tokens": 32},
        {"allow_score": True},
        {"dtype": "float16"},  # never what auto resolves to on a CPU
    ],
)
def test_key_changes_with_what_changes_the_critique(change):
    assert changed(change).key(PROMPT, "A") != BASE.key(PROMPT, "A")


@pytest.mark.parametrize(
    "change",
    [
        {"cache.batch_size": 7},
        {"cache.require_cached": True},
        {"cache.path": "/elsewhere.sqlite"},
        {"engine.tensor_parallel_size": 8},
        {"engine.data_parallel_size": 2},
        {"engine.gpu_memory_utilization": 0.5},
        {"engine.enforce_eager": True},
        {"engine.generation_batch_size": 3},
        {"endpoint.base_url": "http://other:1/v1"},
        {"endpoint.api_key_env": "SOME_KEY"},
        {"endpoint.max_concurrency": 64},
        {"endpoint.timeout_s": 5.0},
        {"endpoint.max_retries": 0},
    ],
)
def test_key_stays_with_unrelated_settings(change):
    assert changed(change).key(PROMPT, "A") == BASE.key(PROMPT, "A")


def test_top_p_and_seed_enter_the_key_only_when_sampling():
    # Greedy decoding (temperature 0, the default) reads neither: changing them keeps every critique.
    for change in ({"top_p": 0.9}, {"seed": 1}):
        greedy = dataclasses.replace(BASE, sampling=dataclasses.replace(BASE.sampling, **change))
        assert greedy.key(PROMPT, "A") == BASE.key(PROMPT, "A")
        hot = dataclasses.replace(BASE, sampling=dataclasses.replace(BASE.sampling, temperature=0.7))
        hot_changed = dataclasses.replace(hot, sampling=dataclasses.replace(hot.sampling, **change))
        assert hot_changed.key(PROMPT, "A") != hot.key(PROMPT, "A")


def test_key_is_per_prompt_and_completion():
    assert BASE.key(PROMPT, "A") != BASE.key(PROMPT, "B")
    assert BASE.key(PROMPT, "A") != BASE.key(({"role": "user", "content": "Q2"},), "A")


def test_auto_backend_resolves_to_what_is_installed_and_keys_like_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name,
                        *a: None if name == "vllm" else real(name, *a))
    auto = dataclasses.replace(BASE, backend="auto")
    assert auto.effective_backend == "transformers"
    assert auto.key(PROMPT, "A") == dataclasses.replace(BASE, backend="transformers").key(PROMPT, "A")


def test_grouped_config_round_trips_through_plain_values():
    config = changed({"sampling.max_new_tokens": 9})
    assert CriticConfig.from_dict(config.as_dict()) == config
    assert config.as_dict()["sampling"]["max_new_tokens"] == 9


@pytest.mark.parametrize("native_bf16, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_is_the_fastest_correct_one_here_and_keys_as_resolved(monkeypatch, native_bf16, expected):
    from lightning_critrm import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(hardware, "local_device", lambda: "cpu")
    auto = CriticConfig(dtype="auto")
    assert auto.effective_dtype == expected
    assert auto.key(PROMPT, "A") == CriticConfig(dtype=expected).key(PROMPT, "A")
    # A remote critic's dtype is not this machine's business.
    assert CriticConfig(backend="openai", dtype="auto").effective_dtype == "auto"


def test_cpu_flags_decide_native_bf16(monkeypatch):
    from lightning_critrm import hardware

    for flags, native in (({"avx2", "fma"}, False), ({"avx512f", "avx512bw"}, False),
                          ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)):
        monkeypatch.setattr(hardware, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert hardware.cpu_has_native_bf16() is native
        assert hardware.fastest_dtype("cpu") == ("bfloat16" if native else "float32")


def test_a_critic_that_continues_the_scored_text_writes_the_block_the_model_reads():
    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.prompts import DEFAULT_CRITIQUE_TEMPLATE, ContinuationPrompt

    critic = CriticConfig(model="some/folder", prompting="continuation", template=DEFAULT_CRITIQUE_TEMPLATE,
                          template_version="critique-block-v1")
    assert isinstance(critic.prompt, ContinuationPrompt) and critic.prompt.close == "[End of critique]"
    assert critic.identity()["prompting"] == "continuation"
    assert "prompting" not in CriticConfig().identity()  # instructed critics keep their keys
    with pytest.raises(InputError, match="local backend"):
        CriticConfig(backend="openai", prompting="continuation", template=DEFAULT_CRITIQUE_TEMPLATE)
    with pytest.raises(InputError, match="exactly once"):
        CriticConfig(prompting="continuation")  # the instruction is no critique block
    with pytest.raises(InputError, match="must be data.critique_format.template"):
        PreferenceDataModule(critiques="generate", critic=CriticConfig(
            prompting="continuation", template="Critique: {critique}"))
