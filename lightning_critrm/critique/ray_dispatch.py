"""Critiques generated on a Ray cluster (``critic.ray``): the requests a pass lacks become one Ray
Dataset that Ray Data's LLM batch processor (``ray.data.llm``) sends to the critic's endpoint, and
results stream back to this process, which alone writes the cache, one committed batch at a time.

The requests are the ``openai`` backend's, byte for byte, so the critiques and their keys are the
same: training, evaluation and ``score`` read them unchanged. A job killed at any instant loses at
most what was in flight; the rerun sends only what the cache lacks. A request that the endpoint
answers with an error is recorded failed, as the ``openai`` backend records it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Optional

from lightning_critrm.critique.backend import Generation
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.critique.openai_backend import (
    CONTEXT_ERROR,
    api_key,
    auth_headers,
    chat_generation,
    chat_request,
)
from lightning_critrm.errors import NotReadyError
from lightning_critrm.signals import children_of_this_block


def generate_on_ray(todo: Sequence, config: CriticConfig, commit) -> None:
    """Generate the critiques of ``todo`` (``CritiqueRequest``s) on Ray; ``commit(requests,
    generations, seconds)`` stores each batch of ``config.cache.batch_size`` as it completes."""
    try:
        import ray
        from ray.data.llm import HttpRequestProcessorConfig, build_processor
    except ImportError as err:
        raise ImportError("critic.ray needs Ray Data: pip install 'lightning_critrm[ray]'") from err

    by_key = {r.key: r for r in todo}
    rows = [{"key": r.key,
             "request": json.dumps(chat_request(config, config.prompt.render(r.prompt, r.completion)))}
            for r in todo]
    http = HttpRequestProcessorConfig(
        url=config.endpoint.base_url.rstrip("/") + "/chat/completions",
        headers=auth_headers(api_key(config)),
        max_retries=config.endpoint.max_retries,
        concurrency=config.ray.concurrency,
        batch_size=config.ray.batch_size,
    )
    local = config.ray.address is None
    with children_of_this_block() if local else nullcontext():
        started = not ray.is_initialized()
        if started:  # a local cluster for this command alone, or the one config.ray.address names
            ray.init(address=config.ray.address, include_dashboard=False, logging_level=logging.WARNING)
        try:
            # Built once Ray runs: building it earlier starts a cluster of Ray's own choosing.
            processor = build_processor(
                http,
                # Rows carry JSON text: answers and error bodies differ in shape, which one column
                # cannot hold.
                preprocess=lambda row: {"key": row["key"], "payload": json.loads(row["request"])},
                postprocess=lambda row: {"key": row["key"], "response": json.dumps(row["http_response"])},
            )
            _collect(processor(ray.data.from_items(rows)).iter_rows(), by_key, config, commit)
        except Exception as err:
            raise NotReadyError(
                f"critique generation on Ray stopped: {type(err).__name__}: {str(err)[:500]}\n"
                "The critiques committed so far are kept; rerunning generates only the rest.") from err
        finally:
            if started:
                ray.shutdown()


def _collect(results, by_key: dict, config: CriticConfig, commit) -> None:
    batch, outputs, began = [], [], time.perf_counter()
    for row in results:
        batch.append(by_key[row["key"]])
        outputs.append(answer_generation(json.loads(row["response"])))
        if len(batch) == config.cache.batch_size:
            commit(batch, outputs, time.perf_counter() - began)
            batch, outputs, began = [], [], time.perf_counter()
    if batch:
        commit(batch, outputs, time.perf_counter() - began)


def answer_generation(payload: dict) -> Generation:
    """The generation in an endpoint's answer: a chat completion, or the error body of a 4xx (Ray's
    HTTP stage retries 429 and 5xx and returns the body of other answers, without their status)."""
    try:
        return chat_generation(payload)
    except (KeyError, IndexError, TypeError):
        pass
    detail = _error_message(payload)
    error = f"endpoint error: {detail[:200]}"
    return Generation(None, error, too_long=bool(CONTEXT_ERROR.search(detail)))


def _error_message(payload: dict) -> str:
    # vLLM: {"object": "error", "message": ...}; OpenAI: {"error": {"message": ...}}.
    error = payload.get("error") if isinstance(payload, dict) else None
    message: Optional[str] = None
    if isinstance(error, dict):
        message = error.get("message")
    elif isinstance(payload, dict):
        message = payload.get("message")
    return str(message) if message else json.dumps(payload)[:200]
