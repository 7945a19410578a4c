"""Critiques generated on a Ray cluster (``critic.ray``): the requests a pass lacks become one Ray
Dataset that a Ray Data LLM batch processor (``ray.data.llm``) runs, and results stream back to this
process, which alone writes the cache, one committed batch at a time.

An ``openai`` critic's requests go to its endpoint from Ray's HTTP processor, byte for byte the
``openai`` backend's; a ``vllm`` critic runs in vLLM engines on the cluster's workers, from the
``vllm`` backend's prompt ids with its sampling. Either way the critiques and their keys are the
backend's own: training, evaluation and ``score`` read them unchanged. A job killed at any instant
loses at most what was in flight; the rerun sends only what the cache lacks. A request the endpoint
or engine refuses is recorded failed, as the backends record it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, Optional

from lightning_critrm.backbones import resolve_backbone
from lightning_critrm.critique.backend import Generation, finished, request_ids, written_critique
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

# What a processor's rows become: the generation of the row's request.
Answer = Callable[[dict], Generation]


def generate_on_ray(todo: Sequence, config: CriticConfig, commit) -> None:
    """Generate the critiques of ``todo`` (``CritiqueRequest``s) on Ray; ``commit(requests,
    generations, seconds)`` stores each batch of ``config.cache.batch_size`` as it completes."""
    try:
        import ray
        import ray.data.llm  # noqa: F401  (its processors are built below)
    except ImportError as err:
        raise ImportError("critic.ray needs Ray Data: pip install 'lightning_critrm[ray]'") from err

    by_key = {r.key: r for r in todo}
    local = config.ray.address is None
    with children_of_this_block() if local else nullcontext():
        started = not ray.is_initialized()
        if started:  # a local cluster for this command alone, or the one config.ray.address names
            ray.init(address=config.ray.address, include_dashboard=False, logging_level=logging.WARNING)
        try:
            # Built once Ray runs: building one earlier starts a cluster of Ray's own choosing.
            if config.effective_backend == "vllm":
                processor, rows, answer = _engine_processor(todo, config, commit)
            else:
                processor, rows, answer = _http_processor(todo, config)
            if rows:
                _collect(processor(ray.data.from_items(rows)).iter_rows(), by_key, answer, config, commit)
        except Exception as err:
            raise NotReadyError(
                f"critique generation on Ray stopped: {type(err).__name__}: {str(err)[:500]}\n"
                "The critiques committed so far are kept; rerunning generates only the rest.") from err
        finally:
            if started:
                ray.shutdown()


def _http_processor(todo: Sequence, config: CriticConfig) -> tuple[Any, list[dict], Answer]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    http = HttpRequestProcessorConfig(
        url=config.endpoint.base_url.rstrip("/") + "/chat/completions",
        headers=auth_headers(api_key(config)),
        max_retries=config.endpoint.max_retries,
        concurrency=_fixed_pool(config),
        batch_size=config.ray.batch_size,
    )
    processor = build_processor(
        http,
        # Rows carry JSON text: answers and error bodies differ in shape, which one column cannot hold.
        preprocess=lambda row: {"key": row["key"], "payload": json.loads(row["request"])},
        postprocess=lambda row: {"key": row["key"], "response": json.dumps(row["http_response"])},
    )
    rows = [{"key": r.key,
             "request": json.dumps(chat_request(config, config.prompt.render(r.prompt, r.completion)))}
            for r in todo]
    return processor, rows, lambda row: answer_generation(json.loads(row["response"]))


def _engine_processor(todo: Sequence, config: CriticConfig, commit) -> tuple[Any, list[dict], Answer]:
    """vLLM engines on the cluster, fed the ``vllm`` backend's prompt ids. A prompt that cannot fit
    ``engine.max_model_len`` fails here, committed at once, as the backend fails it."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from lightning_critrm.critique.vllm_backend import (
        all_cores_env,
        critic_tokenizer,
        engine_kwargs,
        sampling_kwargs,
        too_long,
    )

    tokenizer = critic_tokenizer(config)
    limit = config.engine.max_model_len or 0
    rows, refused = [], []
    for r in todo:
        ids = request_ids(config, tokenizer, config.prompt.render(r.prompt, r.completion))
        if limit and len(ids) >= limit:
            refused.append((r, too_long(len(ids), limit)))
        else:
            rows.append({"key": r.key, "ids": ids})
    if refused:
        commit([r for r, _ in refused], [g for _, g in refused], 0.0)

    on_cpu = not ray.cluster_resources().get("GPU")
    kwargs = engine_kwargs(config)
    kwargs.pop("model")  # the processor's model_source
    engines = vLLMEngineProcessorConfig(
        model_source=resolve_backbone(config.model),
        engine_kwargs=kwargs,
        concurrency=_fixed_pool(config),
        batch_size=config.ray.batch_size,
        # The prompts arrive as ids and the engine's text is the critique: no stage of Ray's own.
        chat_template_stage={"enabled": False},
        tokenize_stage={"enabled": False},
        detokenize_stage={"enabled": False},
        # Without GPUs (a CPU cluster, or this machine) an engine holds CPUs instead.
        placement_group_config=({"bundles": [{"CPU": 1}] * config.engine.tensor_parallel_size}
                                if on_cpu else None),
        # This command's VLLM_* settings (KV cache size on CPUs, logging) reach the engines.
        runtime_env={"env_vars": {**{k: v for k, v in os.environ.items() if k.startswith("VLLM_")},
                                  **all_cores_env(os.environ, on_cpu)}},
        should_continue_on_error=True,  # a refused request is a failed critique, not a failed job
        log_engine_metrics=False,
    )
    sampling = sampling_kwargs(config)
    processor = build_processor(
        engines,
        preprocess=lambda row: {"key": row["key"], "tokenized_prompt": row["ids"],
                                "sampling_params": sampling},
        postprocess=lambda row: {"key": row["key"], "text": row["generated_text"],
                                 "prompt_tokens": row["num_input_tokens"],
                                 "completion_tokens": row["num_generated_tokens"],
                                 "error": row.get("__inference_error__") or ""},
    )
    return processor, rows, lambda row: engine_generation(row, config)


def _fixed_pool(config: CriticConfig) -> tuple[int, int]:
    # All workers from the start: a plain number is a pool that grows from one worker as Ray Data
    # sees a backlog, and an HTTP worker sends its batch's requests one after another, so the pass
    # would run most of its time one request at a time (measured: benchmarks/ray_dispatch.py).
    return (config.ray.concurrency, config.ray.concurrency)


def engine_generation(row: dict, config: CriticConfig) -> Generation:
    """The generation in a row the vLLM processor returned: the critique, or the engine's error."""
    if row["error"]:
        return Generation(None, f"engine error: {row['error'][:200]}",
                          too_long=bool(CONTEXT_ERROR.search(row["error"])))
    return finished(written_critique(config, row["text"]), int(row["prompt_tokens"]),
                    int(row["completion_tokens"]), config.engine.max_model_len or 0)


def _collect(results, by_key: dict, answer: Answer, config: CriticConfig, commit) -> None:
    batch, outputs, began = [], [], time.perf_counter()
    for row in results:
        batch.append(by_key[row["key"]])
        outputs.append(answer(row))
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
