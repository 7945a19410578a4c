import dataclasses

import pytest

from lightning_critrm.critique.config import CriticConfig

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
        {"sampling.top_p": 0.9},
        {"sampling.max_new_tokens": 32},
        {"sampling.seed": 1},
        {"allow_score": True},
        {"dtype": "bfloat16"},
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


def test_key_is_per_prompt_and_completion():
    assert BASE.key(PROMPT, "A") != BASE.key(PROMPT, "B")
    assert BASE.key(PROMPT, "A") != BASE.key(({"role": "user", "content": "Q2"},), "A")


def test_auto_backend_resolves_to_what_is_installed_and_keys_like_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    auto = dataclasses.replace(BASE, backend="auto")
    assert auto.effective_backend == "transformers"
    assert auto.key(PROMPT, "A") == dataclasses.replace(BASE, backend="transformers").key(PROMPT, "A")


def test_grouped_config_round_trips_through_plain_values():
    config = changed({"sampling.max_new_tokens": 9})
    assert CriticConfig.from_dict(config.as_dict()) == config
    assert config.as_dict()["sampling"]["max_new_tokens"] == 9


def test_keys_are_those_written_before_the_options_were_grouped():
    # Caches filled before the grouping keep every critique: these keys come from that version.
    assert BASE.key(PROMPT, "A") == "737bddc61da8341379bb99b706624c732530426f4265836e76cb886e84f8739f"
    quickstart_like = CriticConfig(backend="vllm", sampling=dataclasses.replace(BASE.sampling, max_new_tokens=48))
    assert quickstart_like.key(PROMPT, "A") == "f3a337f6794c7b30da31974cb4214df5690842e359173e8d255197bd34224e77"
