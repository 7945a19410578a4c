"""Critiques generated on a local Ray cluster (critic.ray): what an endpoint answers, a kill -9 of
the driver, the processes it leaves (none). Against a real vLLM server: test_vllm_server.py; a vllm
critic in Ray's engines: test_vllm_backend.py."""

import importlib.util
import os
import signal
import time

import pytest
import yaml

from lightning_critrm.critique import CriticConfig, CritiqueCache
from lightning_critrm.critique.backend import Generation
from lightning_critrm.critique.config import Engine, RayDispatch
from lightning_critrm.critique.ray_dispatch import answer_generation, engine_generation
from lightning_critrm.errors import InputError
from tests.conftest import write_jsonl
from tests.critique.test_kill_resume import committed, start

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install -e '.[ray]')")


def test_an_answer_is_a_critique_or_the_error_it_says():
    ok = answer_generation({"choices": [{"message": {"content": " Fine. "}}],
                            "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    assert (ok.text, ok.error, ok.prompt_tokens, ok.completion_tokens) == ("Fine.", None, 7, 2)
    vllm = answer_generation({"object": "error", "message": "This model's maximum context length is 64 "
                              "tokens. However, you requested 900 tokens", "type": "BadRequestError",
                              "code": 400})
    assert vllm.text is None and vllm.too_long and "maximum context length is 64" in vllm.error
    full = answer_generation({"object": "error", "message": "max_tokens must be at least 1, got 0.",
                              "type": "BadRequestError", "code": 400})  # a prompt that fills the context
    assert full.text is None and full.too_long
    openai = answer_generation({"error": {"message": "Invalid model", "type": "invalid_request_error"}})
    assert (openai.text, openai.error, openai.too_long) == (None, "endpoint error: Invalid model", False)
    empty = answer_generation({"choices": [{"message": {"content": ""}}]})
    assert (empty.text, empty.error) == (None, "empty output")


def test_ray_runs_endpoint_and_vllm_critics_and_stays_out_of_the_key():
    with pytest.raises(InputError, match="backend: vllm"):
        CriticConfig(backend="transformers", ray=RayDispatch(enabled=True))
    # auto would resolve the dtype on this machine, not on the cluster's workers
    with pytest.raises(InputError, match="set critic.dtype"):
        CriticConfig(backend="vllm", ray=RayDispatch(enabled=True))
    with pytest.raises(InputError, match="critic.ray.concurrency"):
        CriticConfig.from_dict({"backend": "vllm", "dtype": "bfloat16", "engine": {"data_parallel_size": 2},
                                "ray": {"enabled": True}})
    for plain in (CriticConfig(backend="openai", model="m"), CriticConfig(backend="vllm", dtype="bfloat16")):
        on_ray = CriticConfig.from_dict({**plain.as_dict(), "ray": {"enabled": True, "concurrency": 4}})
        assert on_ray.ray.concurrency == 4
        prompt = [{"role": "user", "content": "q"}]
        assert on_ray.key(prompt, "a") == plain.key(prompt, "a")


def test_an_engine_row_is_a_critique_or_the_error_the_engine_raised():
    config = CriticConfig(backend="vllm", dtype="float32", engine=Engine(max_model_len=64))
    row = {"text": " Clear and right. ", "prompt_tokens": 30, "completion_tokens": 5, "error": ""}
    assert engine_generation(row, config) == Generation("Clear and right.", None, 30, 5, context=64)
    refused = engine_generation({**row, "error": "ValueError: The decoder prompt (length 90) is longer "
                                                 "than the maximum model length of 64."}, config)
    assert refused.text is None and refused.too_long and refused.error.startswith("engine error: ValueError")
    assert engine_generation({**row, "text": "  "}, config).error == "empty output"


def ray_critique_config(tmp_path, name: str, backbone: str, pairs, base_url: str, ray: bool,
                        model: str = "served-critic") -> str:
    critic = {"backend": "openai", "model": model,
              "endpoint": {"base_url": base_url, "max_retries": 1},
              "sampling": {"max_new_tokens": 16}, "cache": {"batch_size": 8}}
    if ray:
        critic["ray"] = {"enabled": True, "batch_size": 4}
    config = {"model": {"backbone": backbone}, "trainer": {"default_root_dir": str(tmp_path / f"{name}_run")},
              "data": {"source": str(pairs), "cache_dir": str(tmp_path / name), "critiques": "generate",
                       "critic": critic}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@needs_ray
def test_kill_9_of_the_driver_loses_only_what_was_in_flight_and_leaves_no_process(
        tmp_path, tiny_decoder_dir, fake_chat_server):
    import psutil

    rows = [{"prompt": f"Question {i}.", "chosen": f"Answer {i}.", "rejected": f"Other {i}."}
            for i in range(30)]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    total = 60
    fake_chat_server.faults, fake_chat_server.slow_s = ["slow"] * 1000, 0.3  # ~20 s of answers
    config = ray_critique_config(tmp_path, "killed", tiny_decoder_dir, pairs, fake_chat_server.url, ray=True)
    db = tmp_path / "killed" / "critiques.sqlite"
    proc = start(config)
    seen: set = set()

    def note_children():
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                names.add(child.name())
                seen.add(child)
            except psutil.Error:
                pass

    names: set[str] = set()
    deadline = time.time() + 300
    try:
        while committed(db) < 8 and proc.poll() is None and time.time() < deadline:
            note_children()
            time.sleep(0.2)
        note_children()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    at_kill = committed(db)
    assert 0 < at_kill < total and at_kill % 8 == 0, (at_kill, output[-3000:])  # whole batches only
    assert "raylet" in names, names  # a local Ray cluster ran the requests
    # Everything the driver started (the local cluster, its agents, workers) goes with it.
    _, alive = psutil.wait_procs(list(seen), timeout=30)
    assert not alive, [p.cmdline()[:3] for p in alive]

    fake_chat_server.faults = []
    asked = len(fake_chat_server.requests)
    resumed = start(config)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out[-3000:]
    assert f"{total} requested, {at_kill} already cached, {total - at_kill} generated, 0 failed" in out
    assert len(fake_chat_server.requests) - asked == total - at_kill  # only what was missing is sent
    with CritiqueCache(db) as cache:
        assert cache.count() == total
