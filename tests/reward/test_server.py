"""`python -m lightning_critrm serve` as users run it: a real server process on 127.0.0.1, its rewards
held to `score`'s, its answers to bad requests, a 10,000-item request, a failed critique, SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psutil
import pytest
import torch

from lightning_critrm.cli import main
from lightning_critrm.reward import RemoteRewardFunction
from tests.conftest import REPO
from tests.critique.conftest import FakeChatServer
from tests.reward.conftest import grpo_rewards, scored_by_score
from tests.test_cli import tiny_endpoint_critic_config

PROMPTS = ["What is 2 + 2?", "What is 2 + 2?", "What is 5 + 5?"]
COMPLETIONS = ["It is 4.", "It is 5.", "It is 10."]


class Served:
    def __init__(self, process, url, lines):
        self.process, self.url, self.lines = process, url, lines

    def post(self, path, body, timeout=120):
        """(status, JSON answer) of POST ``path``; ``body`` bytes are sent as they are."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@contextmanager
def serving(model, *options, cache=None):
    """``serve --port 0`` in its own process, until the block ends (SIGTERM, then its exit)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if cache:
        env["LIGHTNING_CRITRM_CACHE"] = str(cache)
    process = subprocess.Popen([sys.executable, "-m", "lightning_critrm", "serve", "--model", str(model),
                                "--port", "0", *options], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if line.startswith("serving "):
                started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(180) and process.poll() is None, "".join(lines)[-3000:]
        banner = next(x for x in lines if x.startswith("serving "))
        url = re.search(r" on (http://127\.0\.0\.1:\d+): ", banner)
        yield Served(process, url.group(1), lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def critic():
    server = FakeChatServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def export(tmp_path_factory, tiny_decoder_dir, critic):
    """A tiny critique-reading RM exported after two steps, its critic the fake endpoint; its
    critique cache in ``<export>/../cache``."""
    tmp = tmp_path_factory.mktemp("served")
    from tests.conftest import arithmetic_rows, write_jsonl

    pairs = write_jsonl(tmp / "pairs.jsonl", arithmetic_rows())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIGHTNING_CRITRM_CACHE", str(tmp / "cache"))
        cfg = tiny_endpoint_critic_config(tmp, tiny_decoder_dir, pairs, critic.url)
        main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
        main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(tmp / "rm")])
    return tmp / "rm"


@pytest.fixture(scope="module")
def server(export, critic):
    with serving(export, "--critic_base_url", critic.url, cache=export.parent / "cache") as served:
        yield served


def test_a_grpo_trainer_is_rewarded_over_http(tmp_path, export, critic, server, tiny_decoder_dir,
                                              monkeypatch):
    received = grpo_rewards(tmp_path, tiny_decoder_dir, RemoteRewardFunction(server.url))
    prompts, completions, got = ([x for r in received for x in r[k]] for k in range(3))
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(export.parent / "cache"))
    want = scored_by_score(tmp_path, export, critic.url, prompts, completions)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=1e-4)


def test_both_endpoints_answer_score_s_rewards_for_concurrent_requests(tmp_path, export, critic, server,
                                                                      monkeypatch):
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(export.parent / "cache"))
    want = scored_by_score(tmp_path, export, critic.url, PROMPTS, COMPLETIONS)
    with urllib.request.urlopen(server.url + "/health") as response:
        assert json.loads(response.read())["status"] == "ok"

    items = [{"prompt": p, "completion": c} for p, c in zip(PROMPTS, COMPLETIONS)]
    chat = [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}
            for p, c in zip(PROMPTS, COMPLETIONS)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: server.post("/rewards", body), [{"items": items}] * 6
                                + [{"items": chat}] * 2))
    for status, answer in answers:
        assert status == 200, answer
        torch.testing.assert_close(torch.tensor(answer["rewards"]), torch.tensor(want), atol=1e-4, rtol=1e-4)
        assert answer["errors"] == [None, None, None]

    # OpenRLHF: each query is its prompt and the response, ending in EOS (the model's, stripped by default).
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(export).eos_token
    queries = [p + c + eos for p, c in zip(PROMPTS, COMPLETIONS)]
    status, answer = server.post("/get_reward", {"query": queries, "prompts": PROMPTS, "labels": [""] * 3})
    assert status == 200, answer
    assert set(answer) >= {"rewards", "scores", "extra_logs"}
    torch.testing.assert_close(torch.tensor(answer["rewards"]), torch.tensor(want), atol=1e-4, rtol=1e-4)
    assert answer["scores"] == answer["rewards"] and answer["extra_logs"] == {"critique_failed": [0.0] * 3}

    stats = json.loads((export / "config.json").read_text())["lightning_critrm"]["reward_stats"]
    status, answer = server.post("/rewards", {"items": items, "normalize": True})
    assert status == 200, answer
    torch.testing.assert_close(torch.tensor(answer["rewards"]),
                               (torch.tensor(want) - stats["mean"]) / stats["std"], atol=1e-4, rtol=1e-4)


BAD_REQUESTS = [
    (b'{"items": [', 400, "body", "not valid JSON"),
    (b'[1, 2]', 422, "body", "expected a JSON object, got a list"),
    ({"item": []}, 422, "items", "items: missing"),
    ({"items": "x"}, 422, "items", "expected a list, got a string"),
    ({"items": []}, 422, "items", "empty: give at least one item"),
    ({"items": [{"prompt": "a", "completion": "b"}, {"prompt": "a"}]}, 422, "items[1].completion", "missing"),
    ({"items": [{"prompt": "a", "completion": 3}]}, 422, "items[0].completion", "expected a string or chat"),
    ({"items": [{"prompt": [{"role": "user"}], "completion": "b"}]}, 422, "items[0].prompt[0].content",
     "expected a string"),
    ({"items": [{"prompt": "a", "completion": [{"role": "user", "content": "b"}]}]}, 422,
     "items[0].completion[0].role", "the last message must be the assistant's"),
    ({"items": [{"prompt": "a", "completion": "b" * 100_001}]}, 413, "items[0].completion",
     "100001 characters, over the server's --max_text_chars 100000"),
    ({"items": [{"prompt": "a", "completion": "b"}], "normalize": "yes"}, 422, "normalize",
     "expected true or false"),
    ({"query": ["a b"]}, 422, "prompts", "missing"),
    ({"query": ["a b", "c d"], "prompts": ["a"]}, 422, "prompts", "a list of 2 strings"),
    ({"query": ["a b", "c d"], "prompts": ["a", "x"]}, 422, "query[1]", "does not start with prompts[1]"),
]


@pytest.mark.parametrize("body, status, field, message", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_naming_the_field_and_the_server_keeps_serving(server, body, status, field,
                                                                                 message):
    path = "/get_reward" if isinstance(body, dict) and "query" in body else "/rewards"
    got, answer = server.post(path, body)
    assert (got, answer["field"]) == (status, field), answer
    assert message in answer["error"] and answer["error"].startswith(field), answer
    assert server.post("/rewards", {"items": [{"prompt": "a", "completion": "b"}]})[0] == 200


def test_a_failed_critique_is_null_with_its_error_beside_the_others(server):
    status, answer = server.post("/rewards", {"items": [{"prompt": "a", "completion": "fine"},
                                                        {"prompt": "TOO-LONG a", "completion": "b"}]})
    assert status == 200, answer
    assert isinstance(answer["rewards"][0], float) and answer["rewards"][1] is None
    assert answer["errors"][0] is None and "maximum context length" in answer["errors"][1]


def test_ten_thousand_items_are_answered_in_chunks(export, critic):
    """10,000 completions (50 distinct: the critic writes each once) in chunks of 500."""
    items = [{"prompt": f"What is {i % 5} + {i % 5}?", "completion": f"It is {i % 10}."}
             for i in range(10_000)]
    with serving(export, "--critic_base_url", critic.url, "--chunk_items", "500", "--batch_size", "64",
                 cache=export.parent / "cache") as served:
        status, small = served.post("/rewards", {"items": items[:10]})
        assert status == 200, small
        status, answer = served.post("/rewards", {"items": items}, timeout=600)
        assert status == 200, answer
    assert len(answer["rewards"]) == 10_000 and set(answer["errors"]) == {None}
    torch.testing.assert_close(torch.tensor(answer["rewards"]),
                               torch.tensor(small["rewards"] * 1000), atol=1e-4, rtol=1e-4)


def test_sigterm_answers_the_request_in_flight_then_exits_leaving_no_process(export, critic):
    with serving(export, "--critic_base_url", critic.url, cache=export.parent / "cache") as served:
        critic.slow_s, critic.faults = 3.0, ["slow"]
        sent = len(critic.requests)
        with ThreadPoolExecutor(1) as pool:
            slow = {"items": [{"prompt": "new", "completion": "slow one"}]}
            answer = pool.submit(served.post, "/rewards", slow)
            deadline = time.time() + 60
            while len(critic.requests) == sent and time.time() < deadline:
                time.sleep(0.05)
            children = psutil.Process(served.process.pid).children(recursive=True)
            served.process.send_signal(signal.SIGTERM)
            status, body = answer.result(timeout=60)
        assert served.process.wait(60) == 143
    assert status == 200 and isinstance(body["rewards"][0], float), body
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    with pytest.raises(OSError):
        urllib.request.urlopen(served.url + "/health", timeout=2)


def test_normalizing_without_statistics_is_refused_at_start(tmp_path, export, critic):
    import shutil

    copy = shutil.copytree(export, tmp_path / "rm")
    config = json.loads((copy / "config.json").read_text())
    del config["lightning_critrm"]["reward_stats"]
    (copy / "config.json").write_text(json.dumps(config))
    command = ["serve", "--model", str(copy), "--port", "0", "--normalize", "true",
               "--critic_base_url", critic.url]
    done = subprocess.run([sys.executable, "-m", "lightning_critrm", *command], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "no reward statistics to normalize with" in done.stderr, done.stderr


def test_a_shared_prompt_server_answers_the_same_rewards(tmp_path, export, critic, monkeypatch):
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(export.parent / "cache"))
    want = scored_by_score(tmp_path, export, critic.url, PROMPTS, COMPLETIONS)
    items = [{"prompt": p, "completion": c} for p, c in zip(PROMPTS, COMPLETIONS)]
    with serving(export, "--critic_base_url", critic.url, "--shared_prompt", "true",
                 cache=export.parent / "cache") as served:
        status, answer = served.post("/rewards", {"items": items})
    assert status == 200, answer
    torch.testing.assert_close(torch.tensor(answer["rewards"]), torch.tensor(want), atol=1e-5, rtol=1e-5)
