import dataclasses

import pytest

from lightning_critrm.critique.config import CriticConfig

PROMPT = ({"role": "user", "content": "Q"},)
BASE = CriticConfig()


@pytest.mark.parametrize(
    "change",
    [
        {"template": BASE.template + " Be brief."},
        {"template_version": "v2"},
        {"model": "other-critic"},
        {"backend": "vllm"},
        {"temperature": 0.7},
        {"top_p": 0.9},
        {"max_new_tokens": 32},
        {"seed": 1},
        {"allow_score": True},
        {"dtype": "bfloat16"},
    ],
)
def test_key_changes_with_what_changes_the_critique(change):
    assert dataclasses.replace(BASE, **change).key(PROMPT, "A") != BASE.key(PROMPT, "A")


@pytest.mark.parametrize(
    "change",
    [
        {"batch_size": 7},
        {"require_cached": True},
        {"cache_path": "/elsewhere.sqlite"},
        {"tensor_parallel_size": 8},
        {"data_parallel_size": 2},
        {"gpu_memory_utilization": 0.5},
        {"enforce_eager": True},
        {"generation_batch_size": 3},
        {"base_url": "http://other:1/v1"},
        {"api_key_env": "SOME_KEY"},
        {"max_concurrency": 64},
        {"timeout_s": 5.0},
        {"max_retries": 0},
    ],
)
def test_key_stays_with_unrelated_settings(change):
    assert dataclasses.replace(BASE, **change).key(PROMPT, "A") == BASE.key(PROMPT, "A")


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
