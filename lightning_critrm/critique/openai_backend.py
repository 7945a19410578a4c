"""Any OpenAI-compatible chat endpoint: hosted critics, or ``vllm serve`` on another machine.

Requests run concurrently (bounded), and 429 / 5xx answers, timeouts and dropped connections are
retried with exponential backoff (honouring ``Retry-After``). The API key is read from the
environment variable the config names; the key itself is never stored in the config object, the
saved config.yaml, hyperparameters or logs.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from lightning_critrm.critique.backend import CriticBackend, Generation, finished
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.records import Message

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICritic(CriticBackend):
    def __init__(self, config: CriticConfig):
        super().__init__(config)
        self._api_key: Optional[str] = None
        if config.endpoint.api_key_env:
            self._api_key = os.environ.get(config.endpoint.api_key_env)
            if not self._api_key:
                raise RuntimeError(
                    f"critic.endpoint.api_key_env names {config.endpoint.api_key_env!r}, but that environment "
                    f"variable is not set; export it before running"
                )
        self.url = config.endpoint.base_url.rstrip("/") + "/chat/completions"
        self.backoff_s = 1.0

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, self.config.endpoint.max_concurrency)) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, messages: Sequence[Message]) -> Generation:
        cfg = self.config
        body = json.dumps(
            {
                "model": cfg.model,
                "messages": list(messages),
                "temperature": cfg.sampling.temperature,
                "top_p": cfg.sampling.top_p,
                "max_tokens": cfg.sampling.max_new_tokens,
                "seed": cfg.sampling.seed,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        error = "no attempt made"
        for attempt in range(cfg.endpoint.max_retries + 1):
            retry_after: Optional[float] = None
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=cfg.endpoint.timeout_s) as response:
                    payload = json.loads(response.read())
                text = payload["choices"][0]["message"].get("content") or ""
                usage = payload.get("usage") or {}
                return finished(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
            except urllib.error.HTTPError as err:
                error = f"HTTP {err.code}: {err.read()[:200].decode(errors='replace')}"
                if err.code not in RETRY_STATUS:
                    break
                header = err.headers.get("Retry-After") if err.headers else None
                retry_after = float(header) if header and header.replace(".", "", 1).isdigit() else None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as err:
                error = f"{type(err).__name__}: {err}"
            except (KeyError, IndexError, ValueError) as err:
                error = f"malformed response: {err}"
                break
            if attempt < cfg.endpoint.max_retries:
                delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(delay * (1 + 0.1 * random.random()))
        return Generation(None, error)
