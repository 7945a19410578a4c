"""Any OpenAI-compatible chat endpoint: hosted critics, or ``vllm serve`` on another machine.

Requests run concurrently, at most ``endpoint.max_concurrency`` at once however many threads call
``generate`` together, and 429 / 5xx answers, timeouts, dropped or cut-off connections
and malformed JSON are retried with exponential backoff (honouring ``Retry-After``), at most
``endpoint.max_retries`` times; what still fails is recorded failed and retried by the next run. An
HTTP 400 saying the prompt exceeds the model's context is recorded as too long and not retried. The API key is
read from the environment variable the config names; the key itself is never stored in the config object, the
saved config.yaml, hyperparameters or logs.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from lightning_critrm.critique.backend import CriticBackend, Generation, finished
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.errors import InputError
from lightning_critrm.records import Message

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# How servers say a prompt leaves no room to generate. vLLM's server words a prompt that fills the
# context exactly as a request for 0 new tokens.
CONTEXT_ERROR = re.compile(
    r"maximum context length|context length|too long|longer than the maximum|max_tokens must be at least 1",
    re.I)


def _read_error_body(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return ""


def api_key(config: CriticConfig) -> Optional[str]:
    """The endpoint's API key, read from the environment variable the config names (if any)."""
    if not config.endpoint.api_key_env:
        return None
    key = os.environ.get(config.endpoint.api_key_env)
    if not key:
        raise InputError(
            f"critic.endpoint.api_key_env names {config.endpoint.api_key_env!r}, but that "
            f"environment variable is not set; export it before running"
        )
    return key


def auth_headers(key: Optional[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def chat_request(config: CriticConfig, messages: Sequence[Message]) -> dict:
    """The chat completion request of one critique (the same wherever it is sent from)."""
    s = config.sampling
    return {"model": config.model, "messages": list(messages), "temperature": s.temperature, "top_p": s.top_p,
            "max_tokens": s.max_new_tokens, "seed": s.seed}


def chat_generation(payload: dict) -> Generation:
    """The critique in a chat completion's JSON. Raises KeyError, IndexError or TypeError for
    anything else."""
    text = payload["choices"][0]["message"].get("content") or ""
    usage = payload.get("usage") or {}
    return finished(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


class OpenAICritic(CriticBackend):
    concurrent = True

    def __init__(self, config: CriticConfig):
        super().__init__(config)
        self._slots = threading.BoundedSemaphore(max(1, config.endpoint.max_concurrency))
        self._api_key = api_key(config)
        self.url = config.endpoint.base_url.rstrip("/") + "/chat/completions"
        self.backoff_s = 1.0

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, self.config.endpoint.max_concurrency)) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, messages: Sequence[Message]) -> Generation:
        with self._slots:
            return self._attempts(messages)

    def _attempts(self, messages: Sequence[Message]) -> Generation:
        cfg = self.config
        body = json.dumps(chat_request(cfg, messages)).encode()
        headers = {"Content-Type": "application/json", **auth_headers(self._api_key)}
        error = "no attempt made"
        for attempt in range(cfg.endpoint.max_retries + 1):
            retry_after: Optional[float] = None
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=cfg.endpoint.timeout_s) as response:
                    return chat_generation(json.loads(response.read()))
            except urllib.error.HTTPError as err:
                detail = _read_error_body(err)
                error = f"HTTP {err.code}: {detail[:200]}"
                if err.code == 400 and CONTEXT_ERROR.search(detail):
                    # The prompt does not fit the served model's context: the same server fails
                    # it again, so it is recorded like vLLM's too-long prompts and not retried (a
                    # server with a longer context reports another model entry: other keys).
                    return Generation(None, error, too_long=True)
                if err.code not in RETRY_STATUS:
                    break
                header = err.headers.get("Retry-After") if err.headers else None
                retry_after = float(header) if header and header.replace(".", "", 1).isdigit() else None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
                    http.client.HTTPException) as err:
                # Timeouts, refused or dropped connections, a response cut off midway.
                error = f"{type(err).__name__}: {err}"
            except (KeyError, IndexError, TypeError, ValueError) as err:
                # Not the JSON of a chat completion (a proxy's error page, a truncated body):
                # retried like a dropped connection, within the same bound.
                error = f"malformed response: {type(err).__name__}: {err}"
            if attempt < cfg.endpoint.max_retries:
                delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(delay * (1 + 0.1 * random.random()))
        return Generation(None, error)
