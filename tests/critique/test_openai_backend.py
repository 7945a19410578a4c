
import pytest
import yaml

from lightning_critrm.critique import CriticConfig, Endpoint
from lightning_critrm.critique.openai_backend import OpenAICritic
from lightning_critrm.errors import InputError

ASK = [[{"role": "user", "content": "[Response]\nfour\n\n[Critique]"}]]


def critic(server, **kw):
    backend = OpenAICritic(CriticConfig(backend="openai", model="m",
                                        endpoint=Endpoint(base_url=server.url, **kw)))
    backend.backoff_s = 0.01
    return backend


def test_retries_after_503_then_succeeds(fake_chat_server):
    fake_chat_server.fail_first = 2
    out = critic(fake_chat_server, max_retries=3).generate(ASK)
    assert out[0].text == "Critique: four looks right." and out[0].completion_tokens == 4
    assert len(fake_chat_server.requests) == 3
    sent = fake_chat_server.requests[-1]
    assert sent["model"] == "m" and sent["temperature"] == 0.0 and sent["max_tokens"] == 256


def test_gives_up_after_max_retries_and_reports_the_error(fake_chat_server):
    fake_chat_server.fail_first = 10
    out = critic(fake_chat_server, max_retries=2).generate(ASK)
    assert out[0].text is None and "HTTP 503" in out[0].error
    assert len(fake_chat_server.requests) == 3


def test_client_errors_are_not_retried(fake_chat_server):
    fake_chat_server.fail_first, fake_chat_server.fail_status = 1, 400
    out = critic(fake_chat_server, max_retries=5).generate(ASK)
    assert "HTTP 400" in out[0].error and len(fake_chat_server.requests) == 1


@pytest.mark.parametrize("fault", ["slow", "drop", "429", "500", "malformed"])
def test_each_fault_is_retried_within_the_bound_and_then_answered(fake_chat_server, fault):
    fake_chat_server.faults = [fault, fault]
    out = critic(fake_chat_server, max_retries=2, timeout_s=2.0).generate(ASK)
    assert out[0].text == "Critique: four looks right.", out[0].error
    assert len(fake_chat_server.requests) == 3


def test_faults_through_the_store_lose_nothing_and_retry_only_what_can_succeed(fake_chat_server, tmp_path):
    # A burst of every fault over 6 requests, two retries each: whatever still fails is recorded,
    # and the next run generates exactly those; the over-long prompt is recorded as too long
    # (HTTP 400 from the server's context check) and never sent again.
    from lightning_critrm.critique.cache import CritiqueCache
    from lightning_critrm.critique.store import CritiqueStore

    prompt = ({"role": "user", "content": "Q"},)
    items = [(prompt, f"answer {i}") for i in range(5)] + [(prompt, "TOO-LONG " * 50)]
    config = CriticConfig(backend="openai", model="m", sampling=dict_sampling(),
                          endpoint=Endpoint(base_url=fake_chat_server.url, max_retries=2, timeout_s=2.0,
                                            max_concurrency=1))
    fake_chat_server.faults = ["500", "500", "500", "drop", "malformed", "429", "slow", "slow", "slow"]
    store = CritiqueStore(config, tmp_path / "c.sqlite", backend_factory=fast_backend)
    first = store.fill(items, progress=False)
    # One request at a time, 3 attempts each: 500/500/500, drop/malformed/429 and slow/slow/slow use up
    # three requests' bounds; two answer at once; the over-long one fails at its first attempt.
    assert (first.generated, first.failed) == (2, 4) and len(fake_chat_server.requests) == 3 * 3 + 2 + 1
    sent = len(fake_chat_server.requests)
    second = store.fill(items, progress=False)
    assert (second.generated, second.failed, second.too_long) == (3, 0, 1)
    assert len(fake_chat_server.requests) - sent == 3  # the over-long prompt was not sent again
    assert store.lookup(items)[:5] == [f"Critique: answer {i} looks right." for i in range(5)]
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        assert cache.count("ok") == 5 and cache.count("failed") == 1


def dict_sampling():
    from lightning_critrm.critique.config import Sampling

    return Sampling(max_new_tokens=8)


def fast_backend(config):
    backend = OpenAICritic(config)
    backend.backoff_s = 0.01
    return backend


def test_missing_key_variable_is_a_clear_error(monkeypatch, fake_chat_server):
    monkeypatch.delenv("LCRM_NO_SUCH_KEY", raising=False)
    with pytest.raises(InputError, match="LCRM_NO_SUCH_KEY"):
        critic(fake_chat_server, api_key_env="LCRM_NO_SUCH_KEY")


def test_fit_with_an_endpoint_critic_never_writes_the_api_key(tmp_path, fake_chat_server, pairs_file,
                                                              tiny_decoder_dir):
    # Run as a user runs it (a process of its own, so its log file is written too), then read every
    # file under tmp_path: run folder, config.yaml, hparams, checkpoints, TensorBoard events, logs,
    # the critique cache and the tokenized cache.
    import os
    import sqlite3
    import subprocess
    import sys

    from tests.conftest import REPO

    secret = "sk-test-NEVER-WRITE-7f3a9c"
    config = {
        "trainer": {"accelerator": "cpu", "max_steps": 2, "val_check_interval": 2,
                    "check_val_every_n_epoch": None,
                    "default_root_dir": str(tmp_path / "run"), "log_every_n_steps": 1},
        "model": {"backbone": tiny_decoder_dir},
        "data": {
            "source": str(pairs_file), "batching": {"batch_size": 4}, "val_fraction": 0.25,
            "cache_dir": str(tmp_path / "cache"),
            "critiques": "generate",
            "critic": {"backend": "openai", "model": "served-critic",
                       "endpoint": {"base_url": fake_chat_server.url, "api_key_env": "LCRM_TEST_API_KEY",
                                    "max_concurrency": 4}},
        },
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "LCRM_TEST_API_KEY": secret}
    done = subprocess.run([sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg)], cwd=REPO,
                          env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout + done.stderr
    assert fake_chat_server.auth_headers and set(fake_chat_server.auth_headers) == {f"Bearer {secret}"}
    assert len(fake_chat_server.requests) == 48  # 24 pairs x 2 completions, one request each
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"config.yaml", "hparams.yaml", "last.ckpt", "fit.log", "critiques.sqlite",
            "stats.json"} <= names, names
    assert any("tfevents" in n for n in names) and any(n.endswith(".arrow") for n in names)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    saved = yaml.safe_load(next(p for p in written if p.name == "config.yaml").read_text())
    assert saved["data"]["critic"]["endpoint"]["api_key_env"] == "LCRM_TEST_API_KEY"
    with sqlite3.connect(tmp_path / "cache" / "critiques.sqlite") as conn:  # the critiques the RM read
        query = "SELECT COUNT(*) FROM critiques WHERE critique LIKE '%looks right.'"
        assert conn.execute(query).fetchone()[0] == 48


def test_threads_calling_at_once_share_the_bound_on_requests_in_flight(fake_chat_server):
    import threading
    import time

    backend = critic(fake_chat_server, max_concurrency=3)
    in_flight, peak, lock = [0], [0], threading.Lock()
    attempts = backend._attempts

    def counted(messages):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        try:
            return attempts(messages)
        finally:
            with lock:
                in_flight[0] -= 1

    backend._attempts = counted
    outputs = []
    threads = [threading.Thread(target=lambda: outputs.append(backend.generate(ASK * 4))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert backend.concurrent and len(outputs) == 3
    assert [g.text for out in outputs for g in out] == ["Critique: four looks right."] * 12
    assert peak[0] == 3  # 12 requests from 3 threads, never more than max_concurrency at once
